using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

public abstract partial class StableDiffusionXLPipelineBase
{
    /// <summary>diffusers' SDXL check_inputs for the prompt arguments.</summary>
    protected void CheckPromptInputs(PromptInput prompt, PromptInput prompt2, PromptInput negativePrompt, PromptInput negativePrompt2,
        Tensor? promptEmbeds, Tensor? negativePromptEmbeds) =>
        PipelineSteps.CheckPromptInputs(ClassName, prompt, prompt2, negativePrompt, negativePrompt2, promptEmbeds, negativePromptEmbeds);

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

    /// <summary>Checks denoising_start and denoising_end (each a fraction; the start before the end).</summary>
    private protected void CheckDenoisingWindow(double? denoisingStart, double? denoisingEnd)
    {
        CheckFraction("denoising_start", denoisingStart);
        CheckFraction("denoising_end", denoisingEnd);
        if (denoisingStart is double ds && denoisingEnd is double de && ds >= de)
            throw new DiffusersException($"{ClassName}: denoising_start {ds} cannot be larger than or equal to denoising_end {de}");
    }

    /// <summary>Checks a (height, width) or (top, left) pair of the micro-conditioning.</summary>
    protected void CheckPair(string name, (int, int)? pair, bool allowZero)
    {
        if (pair is not var (a, b)) return;
        if (a < 0 || b < 0 || (!allowZero && (a == 0 || b == 0)))
            throw new DiffusersException($"{ClassName}: {name} must be {(allowZero ? "non-negative" : "positive")} numbers, got ({a}, {b})");
    }

    /// <summary>diffusers' <c>get_guidance_scale_embedding</c> for UNets with <c>time_cond_proj_dim</c> (LCM).</summary>
    protected Tensor? GuidanceScaleEmbedding(double guidanceScale, int batch, ScalarType dtype, Device device) =>
        PipelineSteps.GuidanceScaleEmbedding(Unet, guidanceScale, batch, dtype, device);
}
