using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// diffusers' <c>StableDiffusionControlNetImg2ImgPipeline</c> (0.25.1): image to image (as
/// <see cref="StableDiffusionImg2ImgPipeline"/>: the init image VAE-encoded, noised to the start timestep, denoised over
/// the last <c>int(num_inference_steps · strength)</c> steps) guided by one or several ControlNets, each with its own
/// control image. Default <c>controlnet_conditioning_scale</c> 0.8. The pipeline owns the ControlNet it is given.
/// </summary>
public sealed class StableDiffusionControlNetImg2ImgPipeline : StableDiffusionControlNetPipelineBase
{
    /// <summary>diffusers' class name.</summary>
    public const string Name = "StableDiffusionControlNetImg2ImgPipeline";

    /// <summary>Builds the pipeline from its components; <paramref name="controlnet"/> is a <see cref="ControlNetModel"/> or a <see cref="MultiControlNetModel"/>.</summary>
    public StableDiffusionControlNetImg2ImgPipeline(IVae vae, CLIPTextModel textEncoder, CLIPTokenizer tokenizer,
        UNet2DConditionModel unet, nn.Module controlnet, IScheduler scheduler, Action<string>? log = null)
        : base(vae, textEncoder, tokenizer, unet, controlnet, scheduler, log) { }

    /// <inheritdoc/>
    public override string ClassName => Name;

    /// <summary>
    /// Loads a StableDiffusionControlNetImg2ImgPipeline folder (or Hub id) as diffusers' <c>save_pretrained</c> writes it: the Stable Diffusion components and
    /// the <c>controlnet</c> subfolder (a MultiControlNetModel's nets in <c>controlnet</c>, <c>controlnet_1</c>, …), each with
    /// <paramref name="options"/>; <see cref="DiffusionPipeline.FromPretrained"/> dispatches here by model_index.json's class.
    /// </summary>
    public static new StableDiffusionControlNetImg2ImgPipeline FromPretrained(string idOrPath, LoadOptions? options = null) =>
        StableDiffusionLoader.Load(idOrPath, options, Name, [Name],
            c => WithControlNets(c.Index, options, controlnet => new StableDiffusionControlNetImg2ImgPipeline(c.Vae, c.TextEncoder, c.Tokenizer, c.Unet, controlnet, c.Scheduler, options?.Log)));

    /// <summary>
    /// The Stable Diffusion components of <paramref name="idOrPath"/> (each loaded with <paramref name="options"/>) and
    /// <paramref name="controlnet"/> (a <see cref="ControlNetModel"/> or <see cref="MultiControlNetModel"/>), as diffusers'
    /// <c>from_pretrained(sd, controlnet=...)</c>.
    /// </summary>
    public static StableDiffusionControlNetImg2ImgPipeline FromPretrained(string idOrPath, nn.Module controlnet, LoadOptions? options = null) =>
        StableDiffusionLoader.Load(idOrPath, options, Name, [Name, StableDiffusionPipeline.Name, StableDiffusionImg2ImgPipeline.Name],
            c => new StableDiffusionControlNetImg2ImgPipeline(c.Vae, c.TextEncoder, c.Tokenizer, c.Unet, controlnet, c.Scheduler, options?.Log));

    /// <summary>
    /// Transforms <paramref name="image"/> guided by the prompt and the <paramref name="controlImage"/> of each net (diffusers'
    /// <c>__call__</c>; default strength 0.8). Both are resized to <paramref name="height"/> × <paramref name="width"/>
    /// (default: the init image's size; the control images take the init image's) and converted to RGB (a grayscale init
    /// image too, as this pipeline's <c>image_processor</c> has <c>do_convert_rgb</c>). The ControlNet arguments are
    /// <see cref="StableDiffusionControlNetPipeline.Generate"/>'s, with a default scale of 0.8. Random draws in diffusers'
    /// order: the VAE posterior sample of the image, then the noise, then whatever the scheduler draws.
    /// <paramref name="ipAdapterImage"/>: the image prompt of a loaded IP-Adapter (diffusers' <c>ip_adapter_image</c>; <see cref="StableDiffusionPipelineBase.LoadIPAdapter"/>). As in diffusers 0.25.1, this pipeline
    /// encodes it to the image embeds only, so an adapter that reads hidden states (Plus, full-face) is refused.
    /// </summary>
    public ImagePipelineOutput Generate(PromptInput prompt = default, ImageInput image = default,
        IReadOnlyList<ImageInput>? controlImage = null, int? height = null, int? width = null, double strength = 0.8,
        int numInferenceSteps = 50, double guidanceScale = 7.5, PromptInput negativePrompt = default, int numImagesPerPrompt = 1,
        double eta = 0.0, long? seed = null, Generator? generator = null, IReadOnlyList<Generator>? generators = null,
        Tensor? promptEmbeds = null, Tensor? negativePromptEmbeds = null, OutputType outputType = OutputType.Pil,
        IReadOnlyList<double>? controlnetConditioningScale = null, bool guessMode = false,
        IReadOnlyList<double>? controlGuidanceStart = null, IReadOnlyList<double>? controlGuidanceEnd = null,
        int? clipSkip = null, StepEndCallback? callbackOnStepEnd = null, IProgress<PipelineProgress>? progress = null,
        CancellationToken cancellationToken = default, ImageInput ipAdapterImage = default)
    {
        // 1. check inputs
        PipelineSteps.CheckStrengthRange(Name, strength);
        PipelineSteps.RequireImages(Name, image);
        CheckPromptInputs(prompt, negativePrompt, promptEmbeds, negativePromptEmbeds);
        CheckCommon(numInferenceSteps, numImagesPerPrompt, guidanceScale, eta);
        var (scales, start, end) = ControlArguments(controlnetConditioningScale, 0.8, controlGuidanceStart, controlGuidanceEnd);

        // 2. call parameters: batch, generators, no-grad mode and the call's dispose scope
        using var call = BeginCall(prompt, promptEmbeds, numImagesPerPrompt, seed, generator, generators);
        var (total, gens) = call;
        bool cfg = guidanceScale > 1.0;   // diffusers' ControlNet img2img: no time_cond_proj_dim condition, no guidance embedding
        bool guess = GuessMode(guessMode);

        // 3. encode the prompt
        using var embeds = EncodePrompt(prompt, numImagesPerPrompt, cfg, negativePrompt, promptEmbeds, negativePromptEmbeds, clipSkip);
        var imageEmbeds = EncodeIPAdapterImage(ipAdapterImage, numImagesPerPrompt, cfg, embedsOnly: true);
        Record("prompt_embeds", embeds.PromptEmbeds);

        // 4. the init image (converted to RGB: this pipeline's image_processor has do_convert_rgb), then the control images at its size
        var pixels = image.ToRgb().Preprocess("init image", height, width, VaeScaleFactor, normalize: true, grayscale: false, binarize: false)
            .to(ScalarType.Float32);
        PipelineSteps.CheckInitImageChannels(Name, pixels, Vae, allowLatents: true);
        Record("image_preprocessed", pixels);
        int pixelScale = pixels.shape[1] == 4 ? VaeScaleFactor : 1;
        var images = PrepareControlImages(controlImage, "control_image", height ?? (int)pixels.shape[2] * pixelScale,
            width ?? (int)pixels.shape[3] * pixelScale, total, numImagesPerPrompt, cfg, guess);
        RecordControl(images);

        // 5. timesteps
        Scheduler.SetTimesteps(numInferenceSteps, Unet.Device);
        var timesteps = PipelineSteps.Img2ImgTimesteps(Name, Scheduler, numInferenceSteps, strength);

        // 6. latents: encode, duplicate per prompt (diffusers' words when they do not divide it), add noise
        var current = NoisedImageLatents(pixels.to(embeds.PromptEmbeds.dtype, Unet.Device), timesteps, total, gens,
            (n0, n) => $"{Name}: Cannot duplicate `image` of batch size {n0} to {n} text prompts.");

        // 7. denoising loop with the ControlNet residuals
        var loop = new GuidedDenoisingLoop(Unet, cfg, guidanceScale, 0.0, null, null) { ControlNet = Residuals(images, scales, start, end, guess, cfg) };
        current = loop.Run(LoopContext(timesteps, current, embeds, cfg, eta, gens, callbackOnStepEnd, progress, cancellationToken, imageEmbeds));

        // 8. decode and postprocess
        return Finish(current, outputType);
    }
}
