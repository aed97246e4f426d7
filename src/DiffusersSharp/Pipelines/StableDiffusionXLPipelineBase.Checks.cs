using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

public abstract partial class StableDiffusionXLPipelineBase
{
    /// <summary>diffusers' SDXL check_inputs for the prompt arguments.</summary>
    protected void CheckPromptInputs(PromptInput prompt, PromptInput prompt2, PromptInput negativePrompt, PromptInput negativePrompt2,
        Tensor? promptEmbeds, Tensor? negativePromptEmbeds)
    {
        if (!prompt.IsNone && promptEmbeds is not null)
            throw new DiffusersException($"{ClassName}: pass either a prompt or prompt_embeds, not both (prompt {prompt})");
        if (!prompt2.IsNone && promptEmbeds is not null)
            throw new DiffusersException($"{ClassName}: pass either a prompt_2 or prompt_embeds, not both (prompt_2 {prompt2})");
        if (prompt.IsNone && promptEmbeds is null)
            throw new DiffusersException($"{ClassName}: provide either a prompt or prompt_embeds; both are missing");
        if (prompt.IsList && prompt.Items.Count == 0)
            throw new DiffusersException($"{ClassName}: the prompt list is empty");
        if (!negativePrompt.IsNone && negativePromptEmbeds is not null)
            throw new DiffusersException($"{ClassName}: pass either a negative_prompt or negative_prompt_embeds, not both (negative_prompt {negativePrompt})");
        if (!negativePrompt2.IsNone && negativePromptEmbeds is not null)
            throw new DiffusersException($"{ClassName}: pass either a negative_prompt_2 or negative_prompt_embeds, not both (negative_prompt_2 {negativePrompt2})");
        if (promptEmbeds is not null && negativePromptEmbeds is not null && !promptEmbeds.shape.SequenceEqual(negativePromptEmbeds.shape))
            throw new DiffusersException(
                $"{ClassName}: prompt_embeds and negative_prompt_embeds must have the same shape when passed directly, but got " +
                $"[{string.Join(", ", promptEmbeds.shape)}] != [{string.Join(", ", negativePromptEmbeds.shape)}]");
    }

    /// <summary>Range checks of the micro-conditioning sizes (positive) and crops (non-negative).</summary>
    protected void CheckMicroConditioning((int, int) originalSize, (int, int) crop, (int, int)? targetSize,
        (int, int)? negativeOriginalSize, (int, int) negativeCrop, (int, int)? negativeTargetSize)
    {
        CheckPair("original_size", originalSize, allowZero: false);
        CheckPair("crops_coords_top_left", crop, allowZero: true);
        CheckPair("target_size", targetSize, allowZero: false);
        CheckPair("negative_original_size", negativeOriginalSize, allowZero: false);
        CheckPair("negative_crops_coords_top_left", negativeCrop, allowZero: true);
        CheckPair("negative_target_size", negativeTargetSize, allowZero: false);
    }

    /// <summary>Checks a denoising_start / denoising_end fraction: null, or in (0, 1).</summary>
    protected void CheckFraction(string name, double? value)
    {
        if (value is double d && (double.IsNaN(d) || d <= 0 || d >= 1))
            throw new DiffusersException($"{ClassName}: {name} must be a fraction in (0, 1) of the schedule, got {d}");
    }

    /// <summary>Checks a (height, width) or (top, left) pair of the micro-conditioning.</summary>
    protected void CheckPair(string name, (int, int)? pair, bool allowZero)
    {
        if (pair is not var (a, b)) return;
        if (a < 0 || b < 0 || (!allowZero && (a == 0 || b == 0)))
            throw new DiffusersException($"{ClassName}: {name} must be {(allowZero ? "non-negative" : "positive")} numbers, got ({a}, {b})");
    }

    /// <summary>diffusers' <c>get_guidance_scale_embedding</c> for UNets with <c>time_cond_proj_dim</c> (LCM).</summary>
    protected Tensor? GuidanceScaleEmbedding(double guidanceScale, int batch, ScalarType dtype, Device device)
    {
        if (Unet.Config.TimeCondProjDim is not int dim) return null;
        using var scope = torch.NewDisposeScope();
        var w = torch.full(new long[] { batch }, guidanceScale - 1, ScalarType.Float32) * 1000.0;
        int half = dim / 2;
        var step = torch.log(torch.tensor(10000.0f)) / (half - 1);
        var freqs = torch.exp(torch.arange(half, ScalarType.Float32) * -step);
        var emb = w.unsqueeze(1) * freqs.unsqueeze(0);
        emb = torch.cat(new[] { torch.sin(emb), torch.cos(emb) }, 1);
        if (dim % 2 == 1) emb = torch.nn.functional.pad(emb, new long[] { 0, 1 });
        return emb.to(dtype, device).MoveToOuterDisposeScope();
    }
}
