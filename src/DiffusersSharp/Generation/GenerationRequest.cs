using DiffusersSharp.Imaging;

namespace DiffusersSharp.Generation;

/// <summary>
/// One generation, as the front ends above the pipelines (the server, <c>IImageGenerator</c>) ask for it: a prompt and
/// the usual settings; with <see cref="InitImage"/> image to image, with <see cref="InitImage"/> and <see cref="Mask"/>
/// inpainting. Unset values take the pipeline's defaults (diffusers' <c>__call__</c> defaults).
/// </summary>
public sealed record GenerationRequest
{
    /// <summary>The text prompt.</summary>
    public string Prompt { get; init; } = "";

    /// <summary>What to steer away from (classifier-free guidance's negative prompt); none when null.</summary>
    public string? NegativePrompt { get; init; }

    /// <summary>Width in pixels, a multiple of 8; the model's default size when null (image to image and inpainting: the init image's, rounded down to a multiple of the VAE scale factor, 8 for Stable Diffusion).</summary>
    public int? Width { get; init; }

    /// <summary>Height in pixels, a multiple of 8; the model's default size when null (image to image and inpainting: the init image's, rounded down to a multiple of the VAE scale factor, 8 for Stable Diffusion).</summary>
    public int? Height { get; init; }

    /// <summary>Denoising steps (diffusers' <c>num_inference_steps</c>, default 50).</summary>
    public int Steps { get; init; } = 50;

    /// <summary>Classifier-free guidance scale (diffusers' <c>guidance_scale</c>, default 7.5).</summary>
    public double GuidanceScale { get; init; } = 7.5;

    /// <summary>The seed (<c>torch.manual_seed(seed)</c> on the CPU generator); a random one, reported back, when null.</summary>
    public long? Seed { get; init; }

    /// <summary>A scheduler class or alias (<see cref="Schedulers.SchedulerAliases"/>); the model's own when null.</summary>
    public string? Scheduler { get; init; }

    /// <summary>Images to generate (diffusers' <c>num_images_per_prompt</c>), one batch with one seed.</summary>
    public int Count { get; init; } = 1;

    /// <summary>The image to start from (image to image, inpainting); text to image when null.</summary>
    public Image? InitImage { get; init; }

    /// <summary>How much of <see cref="InitImage"/> is noised away, in [0, 1]; the pipeline's default (0.8, inpainting 1.0) when null.</summary>
    public double? Strength { get; init; }

    /// <summary>The inpainting mask (white = repaint), with <see cref="InitImage"/>.</summary>
    public Image? Mask { get; init; }

    /// <summary>
    /// LoRA adapters by name → weight: file names in the service's <see cref="GenerationService.LoraDirectory"/> (with or
    /// without <c>.safetensors</c>); the weight scales the adapter's update (1 = as trained).
    /// </summary>
    public IReadOnlyDictionary<string, double>? Loras { get; init; }
}
