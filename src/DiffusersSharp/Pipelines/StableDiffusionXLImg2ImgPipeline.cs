using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// diffusers' <c>StableDiffusionXLImg2ImgPipeline</c> (0.25.1): SDXL image to image, and the SDXL refiner (a folder with
/// only <c>text_encoder_2</c> and <c>requires_aesthetics_score</c>, whose time ids end with an aesthetic score). With
/// <c>denoising_start = d</c> it continues a base run stopped with <c>denoising_end = d</c> (ensemble of experts): the
/// image is then the base run's latents, used as they are, with no noise added.
/// <code>
/// using var refiner = StableDiffusionXLImg2ImgPipeline.FromPretrained("stabilityai/stable-diffusion-xl-refiner-1.0");
/// using var latents = basePipe.Generate(prompt, denoisingEnd: 0.8, outputType: OutputType.Latent, seed: 0);
/// using var result = refiner.Generate(prompt, latents.Tensor!, denoisingStart: 0.8, seed: 0);
/// </code>
/// </summary>
public sealed class StableDiffusionXLImg2ImgPipeline : StableDiffusionXLPipelineBase
{
    /// <summary>diffusers' class name.</summary>
    public const string Name = "StableDiffusionXLImg2ImgPipeline";

    /// <summary>
    /// Builds the pipeline; <paramref name="textEncoder"/> / <paramref name="tokenizer"/> are null for the refiner.
    /// <paramref name="requiresAestheticsScore"/> and <paramref name="forceZerosForEmptyPrompt"/> are model_index.json's options.
    /// </summary>
    public StableDiffusionXLImg2ImgPipeline(IVae vae, CLIPTextModel? textEncoder, CLIPTokenizer? tokenizer,
        CLIPTextModelWithProjection textEncoder2, CLIPTokenizer tokenizer2, UNet2DConditionModel unet, IScheduler scheduler,
        bool requiresAestheticsScore = false, bool forceZerosForEmptyPrompt = true, Action<string>? log = null)
        : base(vae, textEncoder, tokenizer, textEncoder2, tokenizer2, unet, scheduler, forceZerosForEmptyPrompt, requiresAestheticsScore, log) { }

    /// <inheritdoc/>
    public override string ClassName => Name;

    /// <summary>Loads an SDXL img2img or refiner folder, or a StableDiffusionXLPipeline folder (diffusers accepts both).</summary>
    public static new StableDiffusionXLImg2ImgPipeline FromPretrained(string idOrPath, LoadOptions? options = null) =>
        StableDiffusionXLLoader.Load(idOrPath, options, Name, [Name, StableDiffusionXLPipeline.Name],
            c => new StableDiffusionXLImg2ImgPipeline(c.Vae, c.TextEncoder, c.Tokenizer, c.TextEncoder2, c.Tokenizer2, c.Unet, c.Scheduler,
                c.RequiresAestheticsScore, c.ForceZerosForEmptyPrompt, options?.Log));

    /// <summary>
    /// Loads an SDXL base or refiner checkpoint in the original layout, as diffusers' <c>from_single_file</c>; a refiner file
    /// gets <c>requires_aesthetics_score</c> and no <c>force_zeros_for_empty_prompt</c>, as diffusers' refiner folder has.
    /// </summary>
    public static StableDiffusionXLImg2ImgPipeline FromSingleFile(string path, SingleFileOptions? options = null) =>
        StableDiffusionXLSingleFile.Load(path, options, Name, allowRefiner: true, p => new StableDiffusionXLImg2ImgPipeline(
            p.Vae, p.TextEncoder, p.Tokenizer, p.TextEncoder2, p.Tokenizer2, p.Unet, p.Scheduler,
            requiresAestheticsScore: p.IsRefiner, forceZerosForEmptyPrompt: !p.IsRefiner, options?.Log));

    /// <summary>
    /// Transforms <paramref name="image"/> (an image, or with <paramref name="denoisingStart"/> the latents of a base run)
    /// guided by the prompt (diffusers' <c>__call__</c>; default strength 0.3). Sizes default to the latents' size ×
    /// vae_scale_factor; the negative row takes <paramref name="negativeOriginalSize"/> / <paramref name="negativeTargetSize"/>
    /// (defaults: the positive ones) with the positive crop, or — with <see cref="StableDiffusionXLPipelineBase.RequiresAestheticsScore"/> —
    /// <c>[original, crop, aesthetic_score]</c> and <c>[negative original, negative crop, negative_aesthetic_score]</c>. Random
    /// draws in diffusers' order: the VAE posterior sample of the image, the noise added to it (not with denoising_start),
    /// then the scheduler's.
    /// <paramref name="crossAttentionKwargs"/> (diffusers' <c>cross_attention_kwargs</c>): its <c>Scale</c> weighs the loaded
    /// LoRAs in the UNet for this call and becomes both text encoders' LoRA scale (kept for later calls, as in 0.25.1).
    /// <paramref name="ipAdapterImage"/>: the image prompt of a loaded IP-Adapter (diffusers' <c>ip_adapter_image</c>; <see cref="StableDiffusionXLPipelineBase.LoadIPAdapter"/>).
    /// </summary>
    public ImagePipelineOutput Generate(PromptInput prompt = default, ImageInput image = default, PromptInput prompt2 = default,
        double strength = 0.3, int numInferenceSteps = 50, double? denoisingStart = null, double? denoisingEnd = null,
        double guidanceScale = 5.0, PromptInput negativePrompt = default, PromptInput negativePrompt2 = default,
        int numImagesPerPrompt = 1, double eta = 0.0, long? seed = null, Generator? generator = null,
        IReadOnlyList<Generator>? generators = null, Tensor? promptEmbeds = null, Tensor? negativePromptEmbeds = null,
        Tensor? pooledPromptEmbeds = null, Tensor? negativePooledPromptEmbeds = null, OutputType outputType = OutputType.Pil,
        double guidanceRescale = 0.0, (int Height, int Width)? originalSize = null, (int Top, int Left) cropsCoordsTopLeft = default,
        (int Height, int Width)? targetSize = null, (int Height, int Width)? negativeOriginalSize = null,
        (int Top, int Left) negativeCropsCoordsTopLeft = default, (int Height, int Width)? negativeTargetSize = null,
        double aestheticScore = 6.0, double negativeAestheticScore = 2.5, int? clipSkip = null,
        StepEndCallback? callbackOnStepEnd = null, IProgress<PipelineProgress>? progress = null, CancellationToken cancellationToken = default, CrossAttentionOptions? crossAttentionKwargs = null, IReadOnlyList<long>? timesteps = null,
        ImageInput ipAdapterImage = default)
    {
        // 1. check inputs
        PipelineSteps.CheckStrengthRange(Name, strength);
        PipelineSteps.RequireImages(Name, image);
        CheckPromptInputs(prompt, prompt2, negativePrompt, negativePrompt2, promptEmbeds, negativePromptEmbeds);
        CheckCommon(PipelineSteps.StepCount(Name, Scheduler, numInferenceSteps, timesteps), numImagesPerPrompt, guidanceScale, guidanceRescale, eta);
        CheckDenoisingWindow(denoisingStart, denoisingEnd);

        // 2. call parameters (the generators are checked against the batch when the image is encoded, as diffusers does)
        using var call = BeginCall(prompt, promptEmbeds, numImagesPerPrompt, seed, generator, generators, checkGeneratorCount: false);
        var (total, gens) = call;
        bool cfg = DoClassifierFreeGuidance(guidanceScale);

        // 3. encode the prompt
        using var embeds = EncodePrompt(prompt, prompt2, numImagesPerPrompt, cfg, negativePrompt, negativePrompt2, promptEmbeds,
            negativePromptEmbeds, pooledPromptEmbeds, negativePooledPromptEmbeds, clipSkip,
            crossAttentionKwargs?.Scale);
        var imageEmbeds = EncodeIPAdapterImage(ipAdapterImage, numImagesPerPrompt, cfg);

        // 4. preprocess the image; 5. timesteps
        var pixels = image.Preprocess("init image", null, null, VaeScaleFactor, normalize: true, grayscale: false, binarize: false);
        PipelineSteps.CheckInitImageChannels(Name, pixels, Vae, allowLatents: true);
        var (_, stepCount) = PipelineSteps.RetrieveTimesteps(Name, Scheduler, numInferenceSteps, timesteps, Unet.Device);
        var schedule = Img2ImgTimesteps(stepCount, strength, denoisingStart);

        // 6. latents: encode, duplicate per prompt, add noise (not when continuing a base run)
        if (pixels.shape[1] != 4) CheckGeneratorCount(gens, total);
        var current = PipelineSteps.InitImageLatents(Name, pixels.to(embeds.PromptEmbeds.dtype, Unet.Device), total, gens,
            p => EncodeVaeImage(p, gens, "vae_encode_0"));
        if (denoisingStart is null)
        {
            var noise = Runtime.TorchUtils.RandnTensor(current.shape, gens, current.dtype, current.device);
            Record("latent_noise", noise);
            current = PipelineSteps.NoiseToFirstTimestep(Scheduler, current, noise, schedule);
        }

        // 7. added time ids, [negative × batch; positive × batch]
        var (unetTimeIds, negativeAddTimeIds) = Img2ImgTimeIds(current, total, cfg, originalSize, cropsCoordsTopLeft, targetSize,
            negativeOriginalSize, negativeCropsCoordsTopLeft, negativeTargetSize, aestheticScore, negativeAestheticScore);

        // 8. denoising loop (denoising_end keeps the timesteps at or above its cutoff)
        schedule = ApplyDenoisingEnd(schedule, denoisingEnd);
        var loop = PipelineSteps.GuidedLoop(Unet, cfg, guidanceScale, guidanceRescale, total, current.dtype, crossAttentionKwargs);
        current = loop.Run(LoopContext(schedule, current, embeds, unetTimeIds, cfg ? negativeAddTimeIds : null, cfg, eta, gens,
            callbackOnStepEnd, progress, cancellationToken, imageEmbeds));

        // 9. decode (upcast when force_upcast) and postprocess
        return Finish(current, outputType);
    }
}
