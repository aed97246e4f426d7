using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// diffusers' <c>StableDiffusionXLControlNetImg2ImgPipeline</c> (0.25.1, pipelines/controlnet/pipeline_controlnet_sd_xl_img2img.py):
/// SDXL image to image (as <see cref="StableDiffusionXLImg2ImgPipeline"/>: the init image VAE-encoded, noised to the start
/// timestep, denoised over the last <c>int(num_inference_steps · strength)</c> steps; no denoising_start / _end) guided by
/// one or several ControlNets, which get the UNet's added conditioning. Defaults: strength 0.8,
/// <c>controlnet_conditioning_scale</c> 0.8. Time ids as the SDXL img2img pipeline (with <c>requires_aesthetics_score</c>,
/// the aesthetic scores).
/// <code>
/// using var controlnet = ControlNetModel.FromPretrained("diffusers/controlnet-canny-sdxl-1.0");
/// using var pipe = StableDiffusionXLControlNetImg2ImgPipeline.FromPretrained("stabilityai/stable-diffusion-xl-base-1.0", controlnet);
/// using var result = pipe.Generate("a photo of a cat", Image.LoadImage("photo.png"), [Image.LoadImage("edges.png")], seed: 0);
/// </code>
/// The pipeline owns (and disposes) the ControlNet it is given.
/// </summary>
public sealed class StableDiffusionXLControlNetImg2ImgPipeline : StableDiffusionXLControlNetPipelineBase
{
    /// <summary>diffusers' class name.</summary>
    public const string Name = "StableDiffusionXLControlNetImg2ImgPipeline";

    /// <summary>
    /// diffusers 0.25.1's <c>StableDiffusionXLControlNetImg2ImgPipeline(DiffusionPipeline, TextualInversionLoaderMixin, StableDiffusionXLLoraLoaderMixin)</c> has no <c>IPAdapterMixin</c> and <see cref="Generate"/> takes no image prompt, so
    /// <c>LoadIPAdapter</c> and <c>SetIPAdapterScale</c> are refused.
    /// </summary>
    protected override LoaderMixins Loaders => LoaderMixins.TextualInversion | LoaderMixins.Lora;

    /// <summary>
    /// Builds the pipeline from its components; <paramref name="controlnet"/> is a <see cref="ControlNetModel"/> or a
    /// <see cref="MultiControlNetModel"/> whose nets fit the UNet, else <see cref="ConfigException"/>.
    /// <paramref name="requiresAestheticsScore"/> and <paramref name="forceZerosForEmptyPrompt"/> are model_index.json's options.
    /// </summary>
    public StableDiffusionXLControlNetImg2ImgPipeline(IVae vae, CLIPTextModel textEncoder, CLIPTokenizer tokenizer,
        CLIPTextModelWithProjection textEncoder2, CLIPTokenizer tokenizer2, UNet2DConditionModel unet, nn.Module controlnet,
        IScheduler scheduler, bool requiresAestheticsScore = false, bool forceZerosForEmptyPrompt = true, Action<string>? log = null)
        : base(vae, textEncoder, tokenizer, textEncoder2, tokenizer2, unet, controlnet, scheduler, forceZerosForEmptyPrompt,
            requiresAestheticsScore, log)
    {
    }

    /// <inheritdoc/>
    public override string ClassName => Name;

    /// <summary>
    /// Loads a StableDiffusionXLControlNetImg2ImgPipeline folder (or Hub id) as diffusers' <c>save_pretrained</c> writes it:
    /// the SDXL components and the <c>controlnet</c> subfolder (a MultiControlNetModel's nets in <c>controlnet</c>,
    /// <c>controlnet_1</c>, …), each with <paramref name="options"/>; <see cref="DiffusionPipeline.FromPretrained"/>
    /// dispatches here by model_index.json's class.
    /// </summary>
    public static new StableDiffusionXLControlNetImg2ImgPipeline FromPretrained(string idOrPath, LoadOptions? options = null) =>
        StableDiffusionXLLoader.Load(idOrPath, options, Name, [Name],
            c => ControlNetSet.WithControlNets(c.Index, options, controlnet => Create(c, controlnet, options)));

    /// <summary>
    /// diffusers' <c>StableDiffusionXLControlNetImg2ImgPipeline.from_pretrained(sdxl, controlnet=...)</c>: the SDXL components
    /// of <paramref name="idOrPath"/> (an SDXL, SDXL img2img or SDXL ControlNet folder, or Hub id), each loaded with
    /// <paramref name="options"/>, and <paramref name="controlnet"/>, which the pipeline then owns.
    /// </summary>
    public static StableDiffusionXLControlNetImg2ImgPipeline FromPretrained(string idOrPath, nn.Module controlnet, LoadOptions? options = null) =>
        StableDiffusionXLLoader.Load(idOrPath, options, Name,
            [Name, StableDiffusionXLPipeline.Name, StableDiffusionXLImg2ImgPipeline.Name, StableDiffusionXLControlNetPipeline.Name],
            c => Create(c, controlnet, options));

    private static StableDiffusionXLControlNetImg2ImgPipeline Create(StableDiffusionXLLoader.Loaded c, nn.Module controlnet, LoadOptions? options) =>
        new(c.Vae,
            c.TextEncoder ?? throw new ConfigException($"{c.Index.Path}: {Name} needs a text_encoder (this looks like a refiner folder)")
            { FilePath = c.Index.Path, Key = "text_encoder" },
            c.Tokenizer!, c.TextEncoder2, c.Tokenizer2, c.Unet, controlnet, c.Scheduler, c.RequiresAestheticsScore,
            c.ForceZerosForEmptyPrompt, options?.Log);

    /// <summary>
    /// Transforms <paramref name="image"/> guided by the prompt and the <paramref name="controlImage"/> of each net (diffusers'
    /// <c>__call__</c>; default strength 0.8). The init image is converted to RGB and resized to <paramref name="height"/> ×
    /// <paramref name="width"/> (default: its own size rounded down to a multiple of 8); so are the control images (default:
    /// the first control image's own size, as diffusers: it must then equal the init image's). <paramref name="originalSize"/>
    /// and <paramref name="targetSize"/> default to the control image's size, the negative sizes to the positive ones; the
    /// time ids are <see cref="StableDiffusionXLImg2ImgPipeline.Generate"/>'s (<c>[negative × batch; positive × batch]</c>;
    /// without <see cref="StableDiffusionXLPipelineBase.RequiresAestheticsScore"/> the negative row takes the positive crop).
    /// The ControlNet arguments are <see cref="StableDiffusionXLControlNetPipeline.Generate"/>'s, with a default scale of 0.8.
    /// Random draws in diffusers' order: the VAE posterior sample of the image, the noise added to it, then the scheduler's.
    /// </summary>
    public ImagePipelineOutput Generate(PromptInput prompt = default, ImageInput image = default,
        IReadOnlyList<ImageInput>? controlImage = null, PromptInput prompt2 = default, int? height = null, int? width = null,
        double strength = 0.8, int numInferenceSteps = 50, double guidanceScale = 5.0, PromptInput negativePrompt = default,
        PromptInput negativePrompt2 = default, int numImagesPerPrompt = 1, double eta = 0.0, long? seed = null,
        Generator? generator = null, IReadOnlyList<Generator>? generators = null, Tensor? promptEmbeds = null,
        Tensor? negativePromptEmbeds = null, Tensor? pooledPromptEmbeds = null, Tensor? negativePooledPromptEmbeds = null,
        OutputType outputType = OutputType.Pil, CrossAttentionOptions? crossAttentionKwargs = null,
        IReadOnlyList<double>? controlnetConditioningScale = null, bool guessMode = false,
        IReadOnlyList<double>? controlGuidanceStart = null, IReadOnlyList<double>? controlGuidanceEnd = null,
        (int Height, int Width)? originalSize = null, (int Top, int Left) cropsCoordsTopLeft = default,
        (int Height, int Width)? targetSize = null, (int Height, int Width)? negativeOriginalSize = null,
        (int Top, int Left) negativeCropsCoordsTopLeft = default, (int Height, int Width)? negativeTargetSize = null,
        double aestheticScore = 6.0, double negativeAestheticScore = 2.5, int? clipSkip = null,
        StepEndCallback? callbackOnStepEnd = null, IProgress<PipelineProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        // 1. check inputs
        PipelineSteps.CheckStrengthRange(Name, strength);
        PipelineSteps.RequireImages(Name, image);
        PipelineSteps.CheckOptionalSize(Name, height, width);
        CheckPromptInputs(prompt, prompt2, negativePrompt, negativePrompt2, promptEmbeds, negativePromptEmbeds);
        CheckCommon(numInferenceSteps, numImagesPerPrompt, guidanceScale, 0.0, eta);
        var (scales, start, end) = Set.ControlArguments(controlnetConditioningScale, 0.8, controlGuidanceStart, controlGuidanceEnd);

        // 2. call parameters (the generators are checked against the batch when the image is encoded, as diffusers does)
        using var call = BeginCall(prompt, promptEmbeds, numImagesPerPrompt, seed, generator, generators, checkGeneratorCount: false);
        var (total, gens) = call;
        bool cfg = guidanceScale > 1.0;   // diffusers' SDXL ControlNet img2img: no time_cond_proj_dim condition, no guidance embedding
        bool guess = Set.GuessMode(guessMode);

        // 3. encode the prompt (both encoders take the LoRA scale)
        using var embeds = EncodePrompt(prompt, prompt2, numImagesPerPrompt, cfg, negativePrompt, negativePrompt2, promptEmbeds,
            negativePromptEmbeds, pooledPromptEmbeds, negativePooledPromptEmbeds, clipSkip, crossAttentionKwargs?.Scale);
        Record("prompt_embeds", embeds.PromptEmbeds);

        // 4. the init image (RGB: this pipeline's image_processor has do_convert_rgb) and the control images, each at
        //    height × width or its own size; the control images set the size of the time ids
        var pixels = image.ToRgb().Preprocess("init image", height, width, VaeScaleFactor, normalize: true, grayscale: false, binarize: false)
            .to(ScalarType.Float32);
        PipelineSteps.CheckInitImageChannels(Name, pixels, Vae, allowLatents: true);
        Record("image_preprocessed", pixels);
        var images = Set.PrepareControlImages(controlImage, "control_image", height, width, total, numImagesPerPrompt, cfg, guess);
        Record("control_image", images[0]);
        int h = (int)images[0].shape[2], w = (int)images[0].shape[3];
        int scale = pixels.shape[1] == 4 ? VaeScaleFactor : 1;
        if (pixels.shape[2] * scale != h || pixels.shape[3] * scale != w)
            throw new DiffusersException(
                $"{Name}: the init image is {pixels.shape[2] * scale}x{pixels.shape[3] * scale} (height x width) but the control image {h}x{w}: pass height and width, or images of the same size");

        // 5. timesteps (the last int(n · strength) steps)
        Scheduler.SetTimesteps(numInferenceSteps, Unet.Device);
        var timesteps = Img2ImgTimesteps(numInferenceSteps, strength, null);

        // 6. latents: encode, duplicate per prompt, add noise
        if (pixels.shape[1] != 4) CheckGeneratorCount(gens, total);
        var current = PipelineSteps.InitImageLatents(Name, pixels.to(embeds.PromptEmbeds.dtype, Unet.Device), total, gens,
            p => EncodeVaeImage(p, gens, "vae_encode_0"));
        var noise = Runtime.TorchUtils.RandnTensor(current.shape, gens, current.dtype, current.device);
        Record("latent_noise", noise);
        current = PipelineSteps.NoiseToFirstTimestep(Scheduler, current, noise, timesteps);

        // 7. added time ids, [negative × batch; positive × batch], sizes from the control image
        var (unetTimeIds, negativeAddTimeIds) = Img2ImgTimeIds(current, total, cfg, originalSize ?? (h, w), cropsCoordsTopLeft,
            targetSize ?? (h, w), negativeOriginalSize, negativeCropsCoordsTopLeft, negativeTargetSize, aestheticScore, negativeAestheticScore);

        // 8. denoising loop with the ControlNet residuals (the nets get the UNet's added conditioning)
        var loop = new GuidedDenoisingLoop(Unet, cfg, guidanceScale, 0.0, null, crossAttentionKwargs)
        {
            ControlNet = Set.Residuals(images, scales, start, end, guess, cfg),
        };
        current = loop.Run(LoopContext(timesteps, current, embeds, unetTimeIds, cfg ? negativeAddTimeIds : null, cfg, eta, gens,
            callbackOnStepEnd, progress, cancellationToken));

        // 9. decode (upcast when force_upcast) and postprocess
        return Finish(current, outputType);
    }
}
