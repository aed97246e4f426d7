using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// The steps the Stable Diffusion, SDXL and ControlNet pipelines share, each in one place: diffusers' <c>check_inputs</c>
/// (this file); <c>get_timesteps</c> with strength / denoising_start, <c>prepare_latents</c> for txt2img, img2img and
/// inpainting, the VAE encode with generators, the loop context and the decode + postprocess (<c>PipelineSteps.Latents.cs</c>);
/// reading a pipeline folder's components (<c>PipelineSteps.Loading.cs</c>). Every error names the calling pipeline's
/// class (<c>cls</c>).
/// </summary>
internal static partial class PipelineSteps
{
    /// <summary>The prompt batch: the prompts, or the rows of <paramref name="promptEmbeds"/>.</summary>
    internal static int BatchSize(PromptInput prompt, Tensor? promptEmbeds) =>
        prompt.IsNone ? (int)promptEmbeds!.shape[0] : prompt.Items.Count;

    /// <summary><c>do_classifier_free_guidance</c>: guidance_scale &gt; 1 and no guidance embedding in the UNet.</summary>
    internal static bool DoClassifierFreeGuidance(UNet2DConditionModel unet, double guidanceScale) =>
        guidanceScale > 1 && unet.Config.TimeCondProjDim is null;

    /// <summary>
    /// diffusers' check_inputs for the prompt arguments; <paramref name="prompt2"/> / <paramref name="negativePrompt2"/>
    /// are SDXL's second prompts (none in Stable Diffusion).
    /// </summary>
    internal static void CheckPromptInputs(string cls, PromptInput prompt, PromptInput prompt2, PromptInput negativePrompt,
        PromptInput negativePrompt2, Tensor? promptEmbeds, Tensor? negativePromptEmbeds)
    {
        if (!prompt.IsNone && promptEmbeds is not null)
            throw new DiffusersException($"{cls}: pass either a prompt or prompt_embeds, not both (prompt {prompt})");
        if (!prompt2.IsNone && promptEmbeds is not null)
            throw new DiffusersException($"{cls}: pass either a prompt_2 or prompt_embeds, not both (prompt_2 {prompt2})");
        if (prompt.IsNone && promptEmbeds is null)
            throw new DiffusersException($"{cls}: provide either a prompt or prompt_embeds; both are missing");
        if (prompt.IsList && prompt.Items.Count == 0)
            throw new DiffusersException($"{cls}: the prompt list is empty");
        if (!negativePrompt.IsNone && negativePromptEmbeds is not null)
            throw new DiffusersException($"{cls}: pass either a negative_prompt or negative_prompt_embeds, not both (negative_prompt {negativePrompt})");
        if (!negativePrompt2.IsNone && negativePromptEmbeds is not null)
            throw new DiffusersException($"{cls}: pass either a negative_prompt_2 or negative_prompt_embeds, not both (negative_prompt_2 {negativePrompt2})");
        if (promptEmbeds is not null && negativePromptEmbeds is not null && !promptEmbeds.shape.SequenceEqual(negativePromptEmbeds.shape))
            throw new DiffusersException(
                $"{cls}: prompt_embeds and negative_prompt_embeds must have the same shape when passed directly, but got " +
                $"[{string.Join(", ", promptEmbeds.shape)}] != [{string.Join(", ", negativePromptEmbeds.shape)}]");
    }

    /// <summary>
    /// Prompt embeddings passed by the caller: [batch, sequence, <paramref name="hidden"/>] with at least one row and one
    /// token, <paramref name="hidden"/> being the width the UNet takes (<paramref name="hiddenSource"/> says whose it is).
    /// </summary>
    internal static void CheckPromptEmbeds(string cls, Tensor promptEmbeds, int hidden, string hiddenSource)
    {
        if (promptEmbeds.dim() != 3 || promptEmbeds.shape[0] == 0 || promptEmbeds.shape[1] == 0)
            throw new DiffusersException(
                $"{cls}: prompt_embeds must be [batch, sequence, hidden] with a batch and a sequence of at least 1, got [{string.Join(", ", promptEmbeds.shape)}]");
        if (promptEmbeds.shape[2] != hidden)
            throw new DiffusersException(
                $"{cls}: prompt_embeds have hidden size {promptEmbeds.shape[2]}, but the UNet takes {hidden} ({hiddenSource})");
    }

    /// <summary>
    /// Negative embeddings passed by the caller (<paramref name="name"/>: <c>negative_prompt_embeds</c> or
    /// <c>negative_pooled_prompt_embeds</c>) must have the shape of the prompt's, given or encoded
    /// (<paramref name="promptShape"/>): the guidance batch stacks them (diffusers fails on the stacking otherwise).
    /// </summary>
    internal static void CheckNegativeEmbeds(string cls, string name, Tensor negative, long[] promptShape)
    {
        if (!negative.shape.SequenceEqual(promptShape))
            throw new DiffusersException(
                $"{cls}: {name} have shape [{string.Join(", ", negative.shape)}], but the prompt's are [{string.Join(", ", promptShape)}]; they must have the same shape");
    }

    /// <summary>
    /// Checks the steps / guidance arguments every call shares; <paramref name="guidanceRescale"/> (SDXL's calls) is
    /// checked between guidance_scale and eta, null skips it.
    /// </summary>
    internal static void CheckCommon(string cls, IScheduler scheduler, int numInferenceSteps, int numImagesPerPrompt,
        double guidanceScale, double? guidanceRescale, double eta)
    {
        if (numInferenceSteps < 1)
            throw new DiffusersException($"{cls}: num_inference_steps must be at least 1, got {numInferenceSteps}");
        if (numInferenceSteps > scheduler.NumTrainTimesteps)
            throw new DiffusersException(
                $"{cls}: num_inference_steps must be at most num_train_timesteps = {scheduler.NumTrainTimesteps} of the {scheduler.ClassName}, got {numInferenceSteps}");
        if (numImagesPerPrompt < 1)
            throw new DiffusersException($"{cls}: num_images_per_prompt must be at least 1, got {numImagesPerPrompt}");
        if (double.IsNaN(guidanceScale) || double.IsInfinity(guidanceScale))
            throw new DiffusersException($"{cls}: guidance_scale must be a finite number, got {guidanceScale}");
        if (guidanceRescale is double rescale) CheckGuidanceRescale(cls, rescale);
        if (double.IsNaN(eta) || eta < 0)
            throw new DiffusersException($"{cls}: eta must be a number ≥ 0, got {eta}");
    }

    /// <summary>
    /// The step count a call's checks see: <paramref name="numInferenceSteps"/>, or, with <paramref name="timesteps"/>
    /// (diffusers' <c>timesteps</c>, which replace num_inference_steps), their count, once the scheduler is known to take
    /// custom timesteps (diffusers' <c>retrieve_timesteps</c> refusal, in its words) and the list is not empty.
    /// </summary>
    internal static int StepCount(string cls, IScheduler scheduler, int numInferenceSteps, IReadOnlyList<long>? timesteps)
    {
        if (timesteps is null) return numInferenceSteps;
        if (!scheduler.AcceptsCustomTimesteps)
            throw new DiffusersException(
                $"{cls}: The current scheduler class {scheduler.ClassName}'s `set_timesteps` does not support custom timestep schedules. " +
                "Please check whether you are using the correct scheduler.");
        if (timesteps.Count == 0)
            throw new DiffusersException($"{cls}: timesteps is empty; pass at least one timestep, or none to use num_inference_steps");
        return timesteps.Count;
    }

    /// <summary>guidance_rescale ∈ [0, 1].</summary>
    internal static void CheckGuidanceRescale(string cls, double guidanceRescale)
    {
        if (double.IsNaN(guidanceRescale) || guidanceRescale < 0 || guidanceRescale > 1)
            throw new DiffusersException($"{cls}: guidance_rescale must be in [0, 1], got {guidanceRescale}");
    }

    /// <summary>Height and width given (or defaulted) must be positive multiples of <paramref name="multiple"/>.</summary>
    internal static void CheckSize(string cls, int height, int width, int multiple)
    {
        if (height <= 0 || width <= 0 || height % multiple != 0 || width % multiple != 0)
            throw new DiffusersException($"{cls}: height and width have to be positive and divisible by {multiple} but are {height} and {width}");
    }

    /// <summary>Height and width, where given, must be positive multiples of 8 (the ControlNet calls: the control image sizes them otherwise).</summary>
    internal static void CheckOptionalSize(string cls, int? height, int? width)
    {
        if (height is int hh && (hh <= 0 || hh % 8 != 0) || width is int ww && (ww <= 0 || ww % 8 != 0))
            throw new DiffusersException($"{cls}: height and width have to be positive and divisible by 8 but are {height} and {width}");
    }

    /// <summary>strength ∈ [0, 1] (img2img and inpaint calls).</summary>
    internal static void CheckStrengthRange(string cls, double strength)
    {
        if (double.IsNaN(strength) || strength < 0 || strength > 1)
            throw new DiffusersException($"{cls}: the value of strength should be in [0.0, 1.0] but is {strength}");
    }

    /// <summary>The init image (img2img, inpaint) and, for inpainting, the mask image must be given.</summary>
    internal static void RequireImages(string cls, ImageInput image, ImageInput? maskImage = null)
    {
        if (image.IsNone) throw new DiffusersException($"{cls}: an init image is required");
        if (maskImage is { IsNone: true }) throw new DiffusersException($"{cls}: a mask image is required");
    }

    /// <summary>An init image must have the VAE's channels (or, where <paramref name="allowLatents"/>, 4: latents).</summary>
    internal static void CheckInitImageChannels(string cls, Tensor pixels, IVae vae, bool allowLatents)
    {
        if ((!allowLatents || pixels.shape[1] != 4) && pixels.shape[1] != vae.InChannels)
            throw new DiffusersException(
                $"{cls}: the init image has {pixels.shape[1]} channels, the VAE takes {vae.InChannels} (RGB); convert it with Image.ToRgb()");
    }

    /// <summary>
    /// Latents passed by the caller must have the shape the call draws and, where they are not cast (<paramref name="dtype"/>
    /// given: the Stable Diffusion calls, which use them as given, as diffusers does), a floating-point type only if it is the
    /// UNet's, an integer type only if the UNet runs in float32 (scaled by init_noise_sigma, a Python float, they become
    /// float32, torch's default dtype; diffusers' UNet then fails on the dtype mismatch).
    /// </summary>
    internal static void CheckLatents(string cls, Tensor latents, long[] shape, ScalarType? dtype)
    {
        if (!latents.shape.SequenceEqual(shape))
            throw new DiffusersException($"{cls}: latents have shape [{string.Join(", ", latents.shape)}], expected [{string.Join(", ", shape)}]");
        if (dtype is ScalarType d && latents.is_floating_point() && latents.dtype != d)
            throw new DiffusersException($"{cls}: latents are {latents.dtype}, but the UNet runs in {d}; pass them in {d}");
        if (dtype is ScalarType u && latents.is_integral() && u != ScalarType.Float32)
            throw new DiffusersException(
                $"{cls}: latents are {latents.dtype}, which scaling by init_noise_sigma turns into Float32, but the UNet runs in {u}; pass them in {u}");
    }

    /// <summary>A ControlNet / inpainting UNet takes 4 (ordinary) or 9 (inpainting) input channels.</summary>
    internal static void CheckInpaintUnet(string cls, UNet2DConditionModel unet)
    {
        int inChannels = unet.Config.InChannels;
        if (inChannels != 4 && inChannels != 9)
            throw new ConfigException($"{cls}: the UNet should have either 4 or 9 input channels, not {inChannels}") { Key = "in_channels" };
    }
}
