using DiffusersSharp.Imaging;
using DiffusersSharp.Models;

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

    /// <summary>
    /// Width in pixels, a multiple of 8; the model's default size when null (image to image and inpainting: the init image's,
    /// rounded down to a multiple of the VAE scale factor, 8 for Stable Diffusion; the init image and mask are resized to a
    /// width and height given). With <see cref="PaddingMaskCrop"/> the width the area around the mask is inpainted at, the
    /// model's default when null; the image keeps its size.
    /// </summary>
    public int? Width { get; init; }

    /// <summary>Height in pixels, as <see cref="Width"/>.</summary>
    public int? Height { get; init; }

    /// <summary>
    /// Denoising steps (diffusers' <c>num_inference_steps</c>, default 50). Not used with <see cref="Timesteps"/>, which set
    /// the steps (one per timestep).
    /// </summary>
    public int Steps { get; init; } = 50;

    /// <summary>
    /// Custom timesteps in descending order (diffusers' <c>timesteps</c>, e.g. LCM's 999, 759, 499, 259) instead of
    /// <see cref="Steps"/>; null (the default): <see cref="Steps"/> evenly spaced by the scheduler. As diffusers'
    /// <c>retrieve_timesteps</c>, they replace <c>num_inference_steps</c>: the run takes one step per timestep whatever
    /// <see cref="Steps"/> holds, and the result's <see cref="GenerationResult.Request"/> has <see cref="Steps"/> set to their
    /// count (the server and <c>IImageGenerator</c>, where steps are optional, refuse a <c>steps</c> that differs from it, as
    /// the CLI refuses <c>--timesteps</c> with <c>--steps</c>). Only schedulers whose diffusers class takes custom timesteps
    /// run them (DDPM, LCM: <see cref="Scheduler"/> <c>DDPMScheduler</c>, <c>lcm</c>); any other is refused with diffusers'
    /// message, and the scheduler refuses values it cannot take (not descending, beyond its training timesteps) in its words.
    /// Image to image and inpainting start at the timestep <see cref="Strength"/> picks among them, as diffusers'
    /// <c>get_timesteps</c>.
    /// </summary>
    public IReadOnlyList<long>? Timesteps { get; init; }

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
    /// Inpaint only the area around the mask (diffusers' <c>padding_mask_crop</c>, A1111's "only masked"; off when null, as
    /// diffusers' default None): the box around the mask's non-black pixels, this many pixels wider and grown to the aspect
    /// ratio of <see cref="Width"/> × <see cref="Height"/>, is inpainted at that size and put back into
    /// <see cref="InitImage"/>, which keeps its size and, outside the mask, its pixels. Needs a <see cref="Mask"/> (the
    /// mask is resized to the image's size first) and a Stable Diffusion model with a 4-channel UNet, as diffusers 0.25.1's
    /// <c>StableDiffusionInpaintPipeline</c> (<see cref="Pipelines.StableDiffusionInpaintPipeline.Generate"/>). The
    /// result's <see cref="GenerationResult.Request"/> holds the size the area was inpainted at (the default filled in).
    /// </summary>
    public int? PaddingMaskCrop { get; init; }

    /// <summary>
    /// LoRA adapters by name → weight: file names in the service's <see cref="GenerationService.LoraDirectory"/> (with or
    /// without <c>.safetensors</c>); the weight scales the adapter's update (1 = as trained).
    /// </summary>
    public IReadOnlyDictionary<string, double>? Loras { get; init; }

    /// <summary>
    /// FreeU (diffusers' <c>enable_freeu(s1, s2, b1, b2)</c>, <see cref="Models.UNet2DConditionModel.EnableFreeU"/>) for this
    /// request only: the service sets these factors on the model's UNet for the run and puts back the UNet's previous
    /// FreeU state afterwards, also when the run fails or is cancelled, so the next request runs as it would have without
    /// this one. Null (the default): the UNet as loaded, FreeU off (unless it was enabled on
    /// <see cref="GenerationService.Pipeline"/> itself). Finite factors; a 0 leaves FreeU off, as in diffusers
    /// (<see cref="FreeUFactors.IsEnabled"/>). Values diffusers documents: SD 1.5 (0.9, 0.2, 1.2, 1.4), SD 2.1
    /// (0.9, 0.2, 1.1, 1.2), SDXL (0.6, 0.4, 1.1, 1.2).
    /// </summary>
    public FreeUFactors? FreeU { get; init; }

    /// <summary>
    /// The image prompt of the service's IP-Adapter (diffusers' <c>ip_adapter_image</c>; the adapter is loaded once, by
    /// <see cref="GenerationService.LoadIPAdapter"/> or <c>serve --ip-adapter</c>). A request with one on a service without
    /// an adapter is refused (<c>ip_adapter_image: …</c>); so is a request without one on a service with an adapter: diffusers
    /// 0.25.1 runs a pipeline with an IP-Adapter loaded only with an image prompt (its UNet asks for <c>image_embeds</c>), as
    /// <c>diffusers generate --ip-adapter</c> needs <c>--ip-adapter-image</c>.
    /// </summary>
    public Image? IPAdapterImage { get; init; }

    /// <summary>
    /// The IP-Adapter's weight for this request only (diffusers' <c>set_ip_adapter_scale</c>; finite, between -100 and 100):
    /// the service sets it for the run and puts back the scale the adapter had before (1, or what
    /// <see cref="GenerationService.SetIPAdapterScale"/> / <c>serve --ip-adapter-scale</c> set) afterwards, also when the run
    /// fails or is cancelled. Null (the default): that scale. Needs <see cref="IPAdapterImage"/>.
    /// </summary>
    public double? IPAdapterScale { get; init; }
}
