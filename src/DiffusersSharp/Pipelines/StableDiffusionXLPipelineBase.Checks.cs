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

    /// <summary>
    /// Checks denoising_start: null, or a fraction in (0, 1). diffusers 0.25.1 applies any other value too (its
    /// <c>denoising_value_valid</c> guard is passed uncalled) and computes garbage: no noise is added to the image latents,
    /// and the loop denoises them from the schedule's first timestep (at 0 and below; at 1 and above too with a
    /// first-order scheduler, whose timesteps[-0:] is the whole schedule; a second-order one takes the last step only);
    /// NaN fails in its <c>int(round(nan))</c>.
    /// </summary>
    private protected void CheckDenoisingStart(double? value)
    {
        if (value is double d && (double.IsNaN(d) || d <= 0 || d >= 1))
            throw new DiffusersException(
                $"{ClassName}: denoising_start must be a fraction in (0, 1) of the schedule, got {d}" +
                (double.IsNaN(d) ? " (diffusers 0.25.1 fails on it: int(round(nan)))"
                    : " (diffusers 0.25.1 takes it and denoises the image latents, without noise, from the schedule's first timestep)"));
    }

    /// <summary>
    /// Checks denoising_end: null, a fraction in (0, 1), or 1 and above, which keep every step (diffusers 0.25.1 applies
    /// denoising_end only inside (0, 1) and ignores other values; at 1 its cutoff, timestep 0, would keep them all too).
    /// 0 and below, which would stop before the first step and which diffusers turns into a full run, and NaN are refused.
    /// </summary>
    private protected void CheckDenoisingEnd(double? value)
    {
        if (value is double d && (double.IsNaN(d) || d <= 0))
            throw new DiffusersException(
                $"{ClassName}: denoising_end must be a fraction in (0, 1) of the schedule, or 1 (or more) for every step, got {d}");
    }

    /// <summary>Checks denoising_start and denoising_end (see the two checks; the start before an end below 1).</summary>
    private protected void CheckDenoisingWindow(double? denoisingStart, double? denoisingEnd)
    {
        CheckDenoisingStart(denoisingStart);
        CheckDenoisingEnd(denoisingEnd);
        if (denoisingStart is double ds && denoisingEnd is double de && de < 1 && ds >= de)
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
