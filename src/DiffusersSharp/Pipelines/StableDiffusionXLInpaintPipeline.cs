using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// diffusers' <c>StableDiffusionXLInpaintPipeline</c> (0.25.1). White mask pixels (≥ 0.5 after greyscale conversion) are
/// repainted. With a 9-channel inpainting UNet the UNet input is <c>cat([scaled latents, mask, masked_image_latents], 1)</c>;
/// with an ordinary 4-channel UNet the image latents, noised to the next timestep, are blended back outside the mask after
/// every step. Micro-conditioning and denoising_start / denoising_end as in <see cref="StableDiffusionXLImg2ImgPipeline"/>.
/// </summary>
public sealed class StableDiffusionXLInpaintPipeline : StableDiffusionXLPipelineBase
{
    /// <summary>diffusers' class name.</summary>
    public const string Name = "StableDiffusionXLInpaintPipeline";

    /// <summary>Builds the pipeline (the UNet takes 4 or 9 input channels).</summary>
    public StableDiffusionXLInpaintPipeline(IVae vae, CLIPTextModel? textEncoder, CLIPTokenizer? tokenizer,
        CLIPTextModelWithProjection textEncoder2, CLIPTokenizer tokenizer2, UNet2DConditionModel unet, IScheduler scheduler,
        bool requiresAestheticsScore = false, bool forceZerosForEmptyPrompt = true, Action<string>? log = null)
        : base(vae, textEncoder, tokenizer, textEncoder2, tokenizer2, unet, scheduler, forceZerosForEmptyPrompt, requiresAestheticsScore, log) =>
        PipelineSteps.CheckInpaintUnet(Name, unet);

    /// <inheritdoc/>
    public override string ClassName => Name;

    /// <summary>Loads an SDXL inpaint folder, or a StableDiffusionXLPipeline / Img2Img folder (4-channel UNet path).</summary>
    public static new StableDiffusionXLInpaintPipeline FromPretrained(string idOrPath, LoadOptions? options = null) =>
        StableDiffusionXLLoader.Load(idOrPath, options, Name, [Name, StableDiffusionXLPipeline.Name, StableDiffusionXLImg2ImgPipeline.Name],
            c => new StableDiffusionXLInpaintPipeline(c.Vae, c.TextEncoder, c.Tokenizer, c.TextEncoder2, c.Tokenizer2, c.Unet, c.Scheduler,
                c.RequiresAestheticsScore, c.ForceZerosForEmptyPrompt, options?.Log));

    /// <summary>
    /// Loads an SDXL checkpoint in the original layout (an SDXL inpainting file with a 9-channel UNet, or a 4-channel one), as
    /// diffusers' <c>from_single_file</c>.
    /// </summary>
    public static StableDiffusionXLInpaintPipeline FromSingleFile(string path, SingleFileOptions? options = null) =>
        StableDiffusionXLSingleFile.Load(path, options, Name, allowRefiner: true, p => new StableDiffusionXLInpaintPipeline(
            p.Vae, p.TextEncoder, p.Tokenizer, p.TextEncoder2, p.Tokenizer2, p.Unet, p.Scheduler,
            requiresAestheticsScore: p.IsRefiner, forceZerosForEmptyPrompt: !p.IsRefiner, options?.Log));

    /// <summary>
    /// Repaints the <paramref name="maskImage"/> region of <paramref name="image"/> (diffusers' <c>__call__</c>; default
    /// strength 0.9999, so <c>int(n · 0.9999)</c> of n steps run). Both are resized to <paramref name="height"/> ×
    /// <paramref name="width"/> (default: the UNet's sample_size × vae_scale_factor). Random draws in diffusers' order: the
    /// image's VAE sample (4-channel UNet or strength &lt; 1), the noise, the masked image's VAE sample, the scheduler's.
    /// <paramref name="crossAttentionKwargs"/> (diffusers' <c>cross_attention_kwargs</c>): its <c>Scale</c> weighs the loaded
    /// LoRAs in the UNet for this call and becomes both text encoders' LoRA scale (kept for later calls, as in 0.25.1).
    /// <paramref name="maskedImageLatents"/> (diffusers' <c>masked_image_latents</c>) are used as they are, the masked image
    /// neither made nor encoded; <paramref name="timesteps"/>: custom timesteps, as in <see cref="StableDiffusionPipeline.Generate"/>.
    /// <paramref name="ipAdapterImage"/>: the image prompt of a loaded IP-Adapter (diffusers' <c>ip_adapter_image</c>; <see cref="StableDiffusionXLPipelineBase.LoadIPAdapter"/>).
    /// </summary>
    public ImagePipelineOutput Generate(PromptInput prompt = default, ImageInput image = default, ImageInput maskImage = default,
        PromptInput prompt2 = default, int? height = null, int? width = null, double strength = 0.9999, int numInferenceSteps = 50,
        double? denoisingStart = null, double? denoisingEnd = null, double guidanceScale = 7.5, PromptInput negativePrompt = default,
        PromptInput negativePrompt2 = default, int numImagesPerPrompt = 1, double eta = 0.0, long? seed = null,
        Generator? generator = null, IReadOnlyList<Generator>? generators = null, Tensor? latents = null,
        Tensor? promptEmbeds = null, Tensor? negativePromptEmbeds = null, Tensor? pooledPromptEmbeds = null,
        Tensor? negativePooledPromptEmbeds = null, OutputType outputType = OutputType.Pil, double guidanceRescale = 0.0,
        (int Height, int Width)? originalSize = null, (int Top, int Left) cropsCoordsTopLeft = default,
        (int Height, int Width)? targetSize = null, (int Height, int Width)? negativeOriginalSize = null,
        (int Top, int Left) negativeCropsCoordsTopLeft = default, (int Height, int Width)? negativeTargetSize = null,
        double aestheticScore = 6.0, double negativeAestheticScore = 2.5, int? clipSkip = null,
        StepEndCallback? callbackOnStepEnd = null, IProgress<PipelineProgress>? progress = null, CancellationToken cancellationToken = default, CrossAttentionOptions? crossAttentionKwargs = null,
        Tensor? maskedImageLatents = null, IReadOnlyList<long>? timesteps = null,
        ImageInput ipAdapterImage = default)
    {
        // 0. default height and width to the UNet's
        int[] sample = Unet.Config.SampleSize ?? throw new DiffusersException($"{Name}: the UNet config has no sample_size; pass height and width");
        int vsf = VaeScaleFactor;
        int h = height ?? sample[0] * vsf, w = width ?? sample[^1] * vsf;

        // 1. check inputs
        PipelineSteps.CheckStrengthRange(Name, strength);
        PipelineSteps.CheckSize(Name, h, w, 8);
        PipelineSteps.RequireImages(Name, image, maskImage);
        CheckPromptInputs(prompt, prompt2, negativePrompt, negativePrompt2, promptEmbeds, negativePromptEmbeds);
        CheckCommon(PipelineSteps.StepCount(Name, Scheduler, numInferenceSteps, timesteps), numImagesPerPrompt, guidanceScale, guidanceRescale, eta);
        CheckDenoisingWindow(denoisingStart, denoisingEnd);

        // 2. call parameters: batch, generators, no-grad mode and the call's dispose scope
        using var call = BeginCall(prompt, promptEmbeds, numImagesPerPrompt, seed, generator, generators);
        var (total, gens) = call;
        bool cfg = DoClassifierFreeGuidance(guidanceScale);
        var device = Unet.Device;

        // 3. encode the prompt
        using var embeds = EncodePrompt(prompt, prompt2, numImagesPerPrompt, cfg, negativePrompt, negativePrompt2, promptEmbeds,
            negativePromptEmbeds, pooledPromptEmbeds, negativePooledPromptEmbeds, clipSkip,
            crossAttentionKwargs?.Scale);
        var dtype = embeds.PromptEmbeds.dtype;
        var imageEmbeds = EncodeIPAdapterImage(ipAdapterImage, numImagesPerPrompt, cfg);

        // 4. timesteps
        var (_, stepCount) = PipelineSteps.RetrieveTimesteps(Name, Scheduler, numInferenceSteps, timesteps, device);
        var schedule = Img2ImgTimesteps(stepCount, strength, denoisingStart);
        var latentTimestep = schedule.narrow(0, 0, 1).repeat(total);

        // 5. preprocess image (float32) and mask; the masked image
        var initImage = image.Preprocess("init image", h, w, vsf, normalize: true, grayscale: false, binarize: false).to(ScalarType.Float32);
        PipelineSteps.CheckInitImageChannels(Name, initImage, Vae, allowLatents: true);
        var maskCondition = maskImage.Preprocess("mask image", h, w, vsf, normalize: false, grayscale: true, binarize: true);
        if (maskedImageLatents is not null)
            PipelineSteps.CheckMaskedImageLatents(Name, maskedImageLatents, Vae.LatentChannels, h / vsf, w / vsf);
        Tensor? maskedImage = maskedImageLatents
            ?? (initImage.shape[1] == 4 ? null : PipelineSteps.MaskedImage(Name, initImage, maskCondition));

        // 6-7. latents (diffusers' prepare_latents with return_noise and, for a 4-channel UNet, the image latents), the mask
        //      and the masked image latents, doubled for guidance
        var (imageLatents, noise, current, mask, maskedLatents) = InpaintLatentsAndMask(initImage, maskCondition, maskedImage,
            latents, strength, denoisingStart, latentTimestep, total, h, w, cfg, gens, dtype, device,
            maskedImageIsLatents: maskedImageLatents is not null);

        // 8. added time ids, [negative × batch; positive × batch]
        var (unetTimeIds, negativeAddTimeIds) = Img2ImgTimeIds(current, total, cfg, originalSize, cropsCoordsTopLeft, targetSize,
            negativeOriginalSize, negativeCropsCoordsTopLeft, negativeTargetSize, aestheticScore, negativeAestheticScore);

        // 9. denoising loop; the 4-channel UNet's result is blended with the image latents noised to the next timestep
        schedule = ApplyDenoisingEnd(schedule, denoisingEnd);
        var timestepCond = GuidanceScaleEmbedding(guidanceScale, total, current.dtype, device);
        var loop = new InpaintDenoisingLoop(Unet, cfg, guidanceScale, timestepCond, imageLatents, noise, guidanceRescale, crossAttentionKwargs);
        var ctx = LoopContext(schedule, current, embeds, unetTimeIds, cfg ? negativeAddTimeIds : null, cfg, eta, gens,
            callbackOnStepEnd, progress, cancellationToken, imageEmbeds);
        ctx.Tensors[InpaintDenoisingLoop.MaskKey] = mask;
        if (maskedLatents is not null) ctx.Tensors[InpaintDenoisingLoop.MaskedImageLatentsKey] = maskedLatents;
        current = loop.Run(ctx);

        // 10. decode (upcast when force_upcast) and postprocess
        return Finish(current, outputType);
    }
}
