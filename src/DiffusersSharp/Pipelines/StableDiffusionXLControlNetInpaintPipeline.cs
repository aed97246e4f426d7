using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// diffusers' <c>StableDiffusionXLControlNetInpaintPipeline</c> (0.25.1, pipelines/controlnet/pipeline_controlnet_inpaint_sd_xl.py):
/// SDXL inpainting (as <see cref="StableDiffusionXLInpaintPipeline"/>: a 4- or 9-channel UNet, denoising_start / _end,
/// guidance_rescale) guided by one or several ControlNets, which get the UNet's added conditioning and the latents
/// without the inpainting channels. Defaults: strength 0.9999, <c>controlnet_conditioning_scale</c> 1.0. Unlike the
/// other SDXL pipelines it has no negative micro-conditioning: the negative time ids row is the positive one (with
/// <c>requires_aesthetics_score</c>, <c>negative_aesthetic_score</c> in place of the score), and guess mode is only the
/// argument (no <c>global_pool_conditions</c>). The pipeline owns (and disposes) the ControlNet it is given.
/// </summary>
public sealed class StableDiffusionXLControlNetInpaintPipeline : StableDiffusionXLControlNetPipelineBase
{
    /// <summary>diffusers' class name.</summary>
    public const string Name = "StableDiffusionXLControlNetInpaintPipeline";

    /// <summary>
    /// diffusers 0.25.1's <c>StableDiffusionXLControlNetInpaintPipeline(DiffusionPipeline, StableDiffusionXLLoraLoaderMixin, FromSingleFileMixin)</c> has no <c>IPAdapterMixin</c> and <see cref="Generate"/> takes no image prompt, so
    /// <c>LoadIPAdapter</c> and <c>SetIPAdapterScale</c> are refused.
    /// </summary>
    protected override LoaderMixins Loaders => LoaderMixins.TextualInversion | LoaderMixins.Lora;

    /// <summary>
    /// Builds the pipeline from its components (the UNet takes 4 or 9 input channels); <paramref name="controlnet"/> is a
    /// <see cref="ControlNetModel"/> or a <see cref="MultiControlNetModel"/> whose nets fit the UNet, else
    /// <see cref="ConfigException"/>.
    /// </summary>
    public StableDiffusionXLControlNetInpaintPipeline(IVae vae, CLIPTextModel textEncoder, CLIPTokenizer tokenizer,
        CLIPTextModelWithProjection textEncoder2, CLIPTokenizer tokenizer2, UNet2DConditionModel unet, nn.Module controlnet,
        IScheduler scheduler, bool requiresAestheticsScore = false, bool forceZerosForEmptyPrompt = true, Action<string>? log = null)
        : base(vae, textEncoder, tokenizer, textEncoder2, tokenizer2, unet, controlnet, scheduler, forceZerosForEmptyPrompt,
            requiresAestheticsScore, log)
    {
        PipelineSteps.CheckInpaintUnet(Name, unet);
    }

    /// <inheritdoc/>
    public override string ClassName => Name;

    /// <summary>
    /// Loads a StableDiffusionXLControlNetInpaintPipeline folder (or Hub id) as diffusers' <c>save_pretrained</c> writes it:
    /// the SDXL components and the <c>controlnet</c> subfolder (a MultiControlNetModel's nets in <c>controlnet</c>,
    /// <c>controlnet_1</c>, …), each with <paramref name="options"/>; <see cref="DiffusionPipeline.FromPretrained"/>
    /// dispatches here by model_index.json's class.
    /// </summary>
    public static new StableDiffusionXLControlNetInpaintPipeline FromPretrained(string idOrPath, LoadOptions? options = null) =>
        StableDiffusionXLLoader.Load(idOrPath, options, Name, [Name],
            c => ControlNetSet.WithControlNets(c.Index, options, controlnet => Create(c, controlnet, options)));

    /// <summary>
    /// diffusers' <c>StableDiffusionXLControlNetInpaintPipeline.from_pretrained(sdxl, controlnet=...)</c>: the SDXL components
    /// of <paramref name="idOrPath"/> (an SDXL, SDXL inpaint or SDXL ControlNet folder, or Hub id), each loaded with
    /// <paramref name="options"/>, and <paramref name="controlnet"/>, which the pipeline then owns.
    /// </summary>
    public static StableDiffusionXLControlNetInpaintPipeline FromPretrained(string idOrPath, nn.Module controlnet, LoadOptions? options = null) =>
        StableDiffusionXLLoader.Load(idOrPath, options, Name,
            [Name, StableDiffusionXLPipeline.Name, StableDiffusionXLInpaintPipeline.Name, StableDiffusionXLControlNetPipeline.Name],
            c => Create(c, controlnet, options));

    private static StableDiffusionXLControlNetInpaintPipeline Create(StableDiffusionXLLoader.Loaded c, nn.Module controlnet, LoadOptions? options) =>
        new(c.Vae,
            c.TextEncoder ?? throw new ConfigException($"{c.Index.Path}: {Name} needs a text_encoder (this looks like a refiner folder)")
            { FilePath = c.Index.Path, Key = "text_encoder" },
            c.Tokenizer!, c.TextEncoder2, c.Tokenizer2, c.Unet, controlnet, c.Scheduler, c.RequiresAestheticsScore,
            c.ForceZerosForEmptyPrompt, options?.Log);

    /// <summary>
    /// Repaints the <paramref name="maskImage"/> region of <paramref name="image"/> guided by the prompt and the
    /// <paramref name="controlImage"/> of each net (diffusers' <c>__call__</c>; default strength 0.9999). The image, the mask
    /// and the control images are resized to <paramref name="height"/> × <paramref name="width"/> (default: each its own
    /// size rounded down to a multiple of 8, as diffusers: the control image must then be the image's size). The time ids'
    /// sizes default to the latents' size × vae_scale_factor. The ControlNet arguments are
    /// <see cref="StableDiffusionXLControlNetPipeline.Generate"/>'s, the others <see cref="StableDiffusionXLInpaintPipeline.Generate"/>'s.
    /// Random draws in diffusers' order: the image's VAE sample (4-channel UNet or strength &lt; 1), the noise, the masked
    /// image's VAE sample, then the scheduler's.
    /// </summary>
    public ImagePipelineOutput Generate(PromptInput prompt = default, ImageInput image = default, ImageInput maskImage = default,
        IReadOnlyList<ImageInput>? controlImage = null, PromptInput prompt2 = default, int? height = null, int? width = null,
        double strength = 0.9999, int numInferenceSteps = 50, double? denoisingStart = null, double? denoisingEnd = null,
        double guidanceScale = 5.0, PromptInput negativePrompt = default, PromptInput negativePrompt2 = default,
        int numImagesPerPrompt = 1, double eta = 0.0, long? seed = null, Generator? generator = null,
        IReadOnlyList<Generator>? generators = null, Tensor? latents = null, Tensor? promptEmbeds = null,
        Tensor? negativePromptEmbeds = null, Tensor? pooledPromptEmbeds = null, Tensor? negativePooledPromptEmbeds = null,
        OutputType outputType = OutputType.Pil, CrossAttentionOptions? crossAttentionKwargs = null,
        IReadOnlyList<double>? controlnetConditioningScale = null, bool guessMode = false,
        IReadOnlyList<double>? controlGuidanceStart = null, IReadOnlyList<double>? controlGuidanceEnd = null,
        double guidanceRescale = 0.0, (int Height, int Width)? originalSize = null, (int Top, int Left) cropsCoordsTopLeft = default,
        (int Height, int Width)? targetSize = null, double aestheticScore = 6.0, double negativeAestheticScore = 2.5,
        int? clipSkip = null, StepEndCallback? callbackOnStepEnd = null, IProgress<PipelineProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        // 1. check inputs
        PipelineSteps.CheckStrengthRange(Name, strength);
        PipelineSteps.CheckOptionalSize(Name, height, width);
        PipelineSteps.RequireImages(Name, image, maskImage);
        CheckPromptInputs(prompt, prompt2, negativePrompt, negativePrompt2, promptEmbeds, negativePromptEmbeds);
        CheckCommon(numInferenceSteps, numImagesPerPrompt, guidanceScale, guidanceRescale, eta);
        CheckDenoisingWindow(denoisingStart, denoisingEnd);
        var (scales, start, end) = Set.ControlArguments(controlnetConditioningScale, 1.0, controlGuidanceStart, controlGuidanceEnd);

        // 2. call parameters: batch, generators, no-grad mode and the call's dispose scope
        using var call = BeginCall(prompt, promptEmbeds, numImagesPerPrompt, seed, generator, generators);
        var (total, gens) = call;
        bool cfg = guidanceScale > 1.0;   // diffusers' SDXL ControlNet inpaint: no time_cond_proj_dim condition, no guidance embedding
        var device = Unet.Device;
        int vsf = VaeScaleFactor;

        // 3. encode the prompt (both encoders take the LoRA scale)
        using var embeds = EncodePrompt(prompt, prompt2, numImagesPerPrompt, cfg, negativePrompt, negativePrompt2, promptEmbeds,
            negativePromptEmbeds, pooledPromptEmbeds, negativePooledPromptEmbeds, clipSkip, crossAttentionKwargs?.Scale);
        var dtype = embeds.PromptEmbeds.dtype;

        // 4. timesteps
        Scheduler.SetTimesteps(numInferenceSteps, device);
        var timesteps = Img2ImgTimesteps(numInferenceSteps, strength, denoisingStart);
        var latentTimestep = timesteps.narrow(0, 0, 1).repeat(total);

        // 5. the init image (float32), the control images and the mask, each at height × width or its own size; the masked image
        var initImage = image.Preprocess("init image", height, width, vsf, normalize: true, grayscale: false, binarize: false).to(ScalarType.Float32);
        PipelineSteps.CheckInitImageChannels(Name, initImage, Vae, allowLatents: true);
        var images = Set.PrepareControlImages(controlImage, "control_image", height, width, total, numImagesPerPrompt, cfg, guessMode);
        Record("control_image", images[0]);
        int scale = initImage.shape[1] == 4 ? vsf : 1;
        int h = (int)initImage.shape[2] * scale, w = (int)initImage.shape[3] * scale;
        if (images[0].shape[2] != h || images[0].shape[3] != w)
            throw new DiffusersException(
                $"{Name}: the init image is {h}x{w} (height x width) but the control image {images[0].shape[2]}x{images[0].shape[3]}: pass height and width, or images of the same size");
        var maskCondition = maskImage.Preprocess("mask image", height, width, vsf, normalize: false, grayscale: true, binarize: true);
        Tensor? maskedImage = initImage.shape[1] == 4 ? null : PipelineSteps.MaskedImage(Name, initImage, maskCondition);

        // 6-7. latents (diffusers' prepare_latents with return_noise and, for a 4-channel UNet, the image latents), the mask
        //      and the masked image latents, doubled for guidance
        var (imageLatents, noise, current, mask, maskedImageLatents) = InpaintLatentsAndMask(initImage, maskCondition, maskedImage,
            latents, strength, denoisingStart, latentTimestep, total, h, w, cfg, gens, dtype, device);

        // 8. added time ids, [negative × batch; positive × batch]: the negative row is the positive one (its crop and
        //    sizes; with requires_aesthetics_score the negative score)
        var (unetTimeIds, negativeAddTimeIds) = Img2ImgTimeIds(current, total, cfg, originalSize, cropsCoordsTopLeft, targetSize,
            null, cropsCoordsTopLeft, null, aestheticScore, negativeAestheticScore);

        // 9. denoising loop with the ControlNet residuals (on the latents without the inpainting channels); the 4-channel
        //    UNet's result is blended with the image latents noised to the next timestep
        timesteps = ApplyDenoisingEnd(timesteps, denoisingEnd);
        var loop = new InpaintDenoisingLoop(Unet, cfg, guidanceScale, null, imageLatents, noise, guidanceRescale, crossAttentionKwargs)
        {
            ControlNet = Set.Residuals(images, scales, start, end, guessMode, cfg),
        };
        var ctx = LoopContext(timesteps, current, embeds, unetTimeIds, cfg ? negativeAddTimeIds : null, cfg, eta, gens,
            callbackOnStepEnd, progress, cancellationToken);
        ctx.Tensors[InpaintDenoisingLoop.MaskKey] = mask;
        if (maskedImageLatents is not null) ctx.Tensors[InpaintDenoisingLoop.MaskedImageLatentsKey] = maskedImageLatents;
        current = loop.Run(ctx);

        // 10. decode (upcast when force_upcast) and postprocess
        return Finish(current, outputType);
    }
}
