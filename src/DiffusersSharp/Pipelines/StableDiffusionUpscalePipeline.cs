using System.Globalization;
using System.Text.Json;
using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// diffusers' <c>StableDiffusionUpscalePipeline</c> (0.25.1): text-guided 4× super-resolution
/// (<c>stabilityai/stable-diffusion-x4-upscaler</c>). The low-resolution image is not encoded: it is noised to
/// <c>noise_level</c> by the <see cref="LowResScheduler"/> (DDPM) and concatenated to the latents on the channels at every
/// step (<c>in_channels</c> 7 = 4 latent + 3 image), the noise level being the UNet's <c>class_labels</c> (its
/// <c>num_class_embeds</c> table). The latents have the image's size; the VAE (three blocks: scale factor 4) decodes them
/// to four times that.
/// <code>
/// using var pipe = StableDiffusionUpscalePipeline.FromPretrained("stabilityai/stable-diffusion-x4-upscaler");
/// using var result = pipe.Generate("a white cat", Image.Load("cat-128.png"), seed: 0);
/// result.Images[0].Save("cat-512.png");
/// </code>
/// </summary>
public sealed class StableDiffusionUpscalePipeline : StableDiffusionPipelineBase
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>model_index.json</c>.</summary>
    public const string Name = "StableDiffusionUpscalePipeline";

    /// <summary>The VAE <c>scaling_factor</c> diffusers' constructor imposes (the x4 upscaler's).</summary>
    public const double UpscalerScalingFactor = 0.08333;

    /// <summary>diffusers' default <c>max_noise_level</c> (the pipeline config's, in <c>model_index.json</c>).</summary>
    public const int DefaultMaxNoiseLevel = 350;

    /// <summary>The model_index.json key of <see cref="MaxNoiseLevel"/>.</summary>
    public const string MaxNoiseLevelKey = "max_noise_level";

    private const string LowResSchedulerName = "low_res_scheduler";
    private const string ImageKey = "image";
    private const string NoiseLevelKey = "noise_level";

    private readonly IVae _constructedVae;
    private IScheduler _lowResScheduler;

    /// <summary>
    /// A pipeline of loaded components (the pipeline disposes them); <paramref name="log"/> receives its notes (null:
    /// stderr). As diffusers' constructor, a VAE whose <c>scaling_factor</c> is not 0.08333 is used with 0.08333 (with a
    /// warning); diffusers corrects no scheduler config here.
    /// </summary>
    public StableDiffusionUpscalePipeline(IVae vae, CLIPTextModel textEncoder, CLIPTokenizer tokenizer, UNet2DConditionModel unet,
        IScheduler lowResScheduler, IScheduler scheduler, int maxNoiseLevel = DefaultMaxNoiseLevel, Action<string>? log = null)
        : base(vae, textEncoder, tokenizer, unet, scheduler, log)
    {
        _lowResScheduler = lowResScheduler ?? throw new ArgumentNullException(nameof(lowResScheduler));
        CheckUnet(Name, null, unet.Config, vae.LatentChannels);
        _constructedVae = vae;
        MaxNoiseLevel = maxNoiseLevel;
        if (vae.ScalingFactor != UpscalerScalingFactor)
            Log($"the VAE config's scaling_factor is {vae.ScalingFactor.ToString(CultureInfo.InvariantCulture)}, which seems highly unlikely " +
                $"for {Name}: using {UpscalerScalingFactor.ToString(CultureInfo.InvariantCulture)}, as diffusers does (fix 'scaling_factor' in vae/config.json)");
    }

    /// <inheritdoc/>
    public override string ClassName => Name;

    /// <summary>
    /// Textual inversion and LoRA: diffusers 0.25.1's class is <c>StableDiffusionUpscalePipeline(DiffusionPipeline,
    /// TextualInversionLoaderMixin, LoraLoaderMixin, FromSingleFileMixin)</c>, without <c>IPAdapterMixin</c>, and
    /// <see cref="Generate"/> takes no IP-Adapter image; so <c>LoadIPAdapter</c> and <c>SetIPAdapterScale</c> are refused.
    /// </summary>
    protected override LoaderMixins Loaders => LoaderMixins.TextualInversion | LoaderMixins.Lora;

    /// <summary>
    /// The scheduler that noises the low-resolution image to <c>noise_level</c> (<c>low_res_scheduler.add_noise</c>; a
    /// <see cref="DDPMScheduler"/> on the real model). Assigned ones are used as given; the replaced one is the caller's.
    /// </summary>
    public IScheduler LowResScheduler
    {
        get => _lowResScheduler;
        set => _lowResScheduler = value ?? throw new ArgumentNullException(nameof(value));
    }

    /// <summary><c>max_noise_level</c> (model_index.json; default 350): the largest <c>noise_level</c> a call takes.</summary>
    public int MaxNoiseLevel { get; }

    /// <summary>
    /// The scaling factor the latents are divided by before decoding: 0.08333 for the VAE the pipeline was built with (as
    /// diffusers' constructor sets it), the VAE's own <c>scaling_factor</c> for one assigned to <see cref="StableDiffusionPipelineBase.Vae"/> later.
    /// </summary>
    public double VaeScalingFactor => ReferenceEquals(Vae, _constructedVae) ? UpscalerScalingFactor : Vae.ScalingFactor;

    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Components =>
        new Dictionary<string, object>(base.Components) { [LowResSchedulerName] = LowResScheduler };

    /// <summary>
    /// Loads a StableDiffusionUpscalePipeline folder (or Hub id): <c>vae</c>, <c>text_encoder</c>, <c>tokenizer</c>,
    /// <c>unet</c>, <c>scheduler</c> and <c>low_res_scheduler</c>, each with <paramref name="options"/>, and
    /// <c>max_noise_level</c> from model_index.json (default 350). safety_checker / feature_extractor / watermarker entries
    /// are not loaded (logged when present).
    /// </summary>
    public static new StableDiffusionUpscalePipeline FromPretrained(string idOrPath, LoadOptions? options = null) =>
        StableDiffusionLoader.Load(idOrPath, options, Name, [Name], c =>
        {
            string folder = Path.GetDirectoryName(c.Index.Path)!;
            c.Index.Require(LowResSchedulerName);
            string unetConfig = Path.Combine(folder, "unet", UNet2DConditionModel.ConfigName);
            CheckUnet(unetConfig, unetConfig, c.Unet.Config, c.Vae.LatentChannels);
            int maxNoiseLevel = ReadMaxNoiseLevel(c.Index);
            if (c.Index.Component("watermarker") is { } w)
                (options?.Log ?? DefaultLog)($"{c.Index.Path}: the 'watermarker' component ({w.Library}.{w.ClassName}) is not loaded or run by DiffusersSharp");
            var lowRes = SchedulerFactory.FromPretrained(folder, LowResSchedulerName, options);
            try
            {
                return new StableDiffusionUpscalePipeline(c.Vae, c.TextEncoder, c.Tokenizer, c.Unet, lowRes, c.Scheduler, maxNoiseLevel, options?.Log);
            }
            catch
            {
                lowRes.Dispose();
                throw;
            }
        });

    /// <summary>
    /// diffusers' check that <c>num_channels_latents + num_channels_image == unet.config.in_channels</c> (the image is RGB:
    /// 3 channels), made when the UNet is loaded, as a <see cref="ConfigException"/> on the key <c>in_channels</c> of
    /// <paramref name="file"/> when known.
    /// </summary>
    private static void CheckUnet(string source, string? file, UNet2DConditionModelConfig unet, int latentChannels)
    {
        int sum = latentChannels + ImageChannels;
        if (unet.InChannels != sum)
            throw new ConfigException(
                $"{source}: config key 'in_channels': incorrect configuration settings! The UNet's in_channels is {unet.InChannels}, but {Name} feeds it " +
                $"num_channels_latents {latentChannels} + num_channels_image {ImageChannels} = {sum} (the latents and the RGB low-resolution image, " +
                $"concatenated). Please verify the config of the UNet (an x4 upscaler UNet, such as stabilityai/stable-diffusion-x4-upscaler's, takes {sum}).")
            {
                FilePath = file,
                Key = "in_channels",
            };
        // the pipeline passes noise_level to the UNet as its class label: diffusers' UNet without a class embedding drops
        // it without a word (every noise level gives the same image), ours refuses class labels it cannot embed
        if (unet.ClassEmbedType is null && unet.NumClassEmbeds is null)
            throw new ConfigException(
                $"{source}: config key 'num_class_embeds': {Name} passes noise_level to the UNet as its class label, but this UNet has no class " +
                "embedding (num_class_embeds and class_embed_type are null): it would ignore the noise level. An x4 upscaler UNet, such as " +
                "stabilityai/stable-diffusion-x4-upscaler's, has num_class_embeds 1000")
            {
                FilePath = file,
                Key = "num_class_embeds",
            };
    }

    /// <summary>The channels of the low-resolution image the UNet sees beside the latents (RGB).</summary>
    private const int ImageChannels = 3;

    private static int ReadMaxNoiseLevel(PipelineIndex index)
    {
        if (!index.Options.TryGetValue(MaxNoiseLevelKey, out var value)) return DefaultMaxNoiseLevel;
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt32(out int level) || level < 0)
            throw new ConfigException($"{index.Path}: config key '{MaxNoiseLevelKey}': must be an integer ≥ 0, got {value.GetRawText()}")
            { FilePath = index.Path, Key = MaxNoiseLevelKey };
        return level;
    }

    /// <summary>
    /// Upscales <paramref name="image"/> 4× guided by the prompt (diffusers' <c>__call__</c>; defaults 75 steps, guidance
    /// 9.0, noise_level 20). The random draws, in diffusers' order: the noise added to the image (one row per image; with
    /// one generator per output image, the first ones draw it), then the initial latents, then whatever the scheduler
    /// draws. The noised image is repeated for guidance and <paramref name="numImagesPerPrompt"/> as diffusers repeats it
    /// (<c>cat([image] * 2 * n)</c>: the whole batch each time). <paramref name="callbackOnStepEnd"/> sees the named
    /// tensors <c>latents</c>, <c>prompt_embeds</c>, <c>image</c> (that batch) and <c>noise_level</c> (diffusers 0.25.1 has
    /// only the old <c>callback</c> here, which <c>latents</c> gives).
    /// </summary>
    public ImagePipelineOutput Generate(PromptInput prompt = default, ImageInput image = default, int numInferenceSteps = 75,
        double guidanceScale = 9.0, int noiseLevel = 20, PromptInput negativePrompt = default, int numImagesPerPrompt = 1,
        double eta = 0.0, long? seed = null, Generator? generator = null, IReadOnlyList<Generator>? generators = null,
        Tensor? latents = null, Tensor? promptEmbeds = null, Tensor? negativePromptEmbeds = null,
        OutputType outputType = OutputType.Pil, StepEndCallback? callbackOnStepEnd = null, IProgress<PipelineProgress>? progress = null,
        CancellationToken cancellationToken = default, CrossAttentionOptions? crossAttentionKwargs = null, int? clipSkip = null)
    {
        // 1. check inputs
        CheckPromptInputs(prompt, negativePrompt, promptEmbeds, negativePromptEmbeds);
        if (image.IsNone)
            throw new DiffusersException($"{Name}: image input cannot be undefined; pass the low-resolution image to upscale");
        if (noiseLevel > MaxNoiseLevel)
            throw new DiffusersException($"{Name}: noise_level has to be <= {MaxNoiseLevel} but is {noiseLevel}");
        if (noiseLevel < 0)
            throw new DiffusersException($"{Name}: noise_level has to be >= 0 but is {noiseLevel}");
        // noise_level is a timestep of low_res_scheduler.add_noise and a row of the UNet's class embedding (diffusers
        // fails on an index out of range in either)
        if (noiseLevel >= LowResScheduler.NumTrainTimesteps)
            throw new DiffusersException(
                $"{Name}: noise_level {noiseLevel} is not a timestep of the low_res_scheduler ({LowResScheduler.ClassName}, num_train_timesteps " +
                $"{LowResScheduler.NumTrainTimesteps}): it must be below {LowResScheduler.NumTrainTimesteps} (max_noise_level {MaxNoiseLevel} allows more)");
        if (Unet.Config is { ClassEmbedType: null, NumClassEmbeds: int classes } && noiseLevel >= classes)
            throw new DiffusersException(
                $"{Name}: noise_level {noiseLevel} is the UNet's class label, but its class embedding has num_class_embeds {classes} rows: it must be " +
                $"below {classes} (max_noise_level {MaxNoiseLevel} allows more)");
        CheckCommon(numInferenceSteps, numImagesPerPrompt, guidanceScale, eta);

        // 2. call parameters
        using var call = BeginCall(prompt, promptEmbeds, numImagesPerPrompt, seed, generator, generators);
        var (total, gens) = call;
        bool cfg = DoClassifierFreeGuidance(guidanceScale);

        // 3. encode the prompt
        using var embeds = EncodePrompt(prompt, numImagesPerPrompt, cfg, negativePrompt, promptEmbeds, negativePromptEmbeds, clipSkip,
            crossAttentionKwargs?.Scale);
        RecordEmbeddings(embeds);
        var dtype = embeds.PromptEmbeds.dtype;
        var device = Unet.Device;

        // 4. preprocess the image (VaeImageProcessor(resample="bicubic")); it must pair with the prompts
        var pixels = image.Preprocess("image", null, null, VaeScaleFactor, normalize: true, grayscale: false, binarize: false,
            resample: ResampleFilter.Bicubic).to(dtype, device);
        int batchSize = total / numImagesPerPrompt;
        if (pixels.shape[0] != batchSize)
            throw new DiffusersException(
                $"{Name}: prompt has batch size {batchSize} and image has batch size {pixels.shape[0]}. Please make sure that passed prompt matches the batch size of image.");
        int latentChannels = Vae.LatentChannels;
        long imageChannels = pixels.shape[1];
        if (latentChannels + imageChannels != Unet.Config.InChannels)
            throw new DiffusersException(
                $"{Name}: incorrect configuration settings! The UNet's config expects in_channels {Unet.Config.InChannels} but received " +
                $"num_channels_latents: {latentChannels} + num_channels_image: {imageChannels} = {latentChannels + imageChannels}. " +
                "Please verify the config of the UNet or your image input.");
        Record("image", pixels);

        // 5. timesteps
        var timesteps = PipelineSteps.Timesteps(Scheduler, numInferenceSteps, device);

        // 5. noise the image to noise_level, then repeat it for guidance and the images per prompt
        var level = torch.tensor(new long[] { noiseLevel }, ScalarType.Int64, device);
        var imageGenerators = gens is { Count: > 1 } ? gens.Take((int)pixels.shape[0]).ToList() : gens;
        var noise = Runtime.TorchUtils.RandnTensor(pixels.shape, imageGenerators, dtype, device);
        Record("image_noise", noise);
        var noised = LowResScheduler.AddNoise(pixels, noise, level);
        Record("noised_image", noised);
        var conditioning = torch.cat(Enumerable.Repeat(noised, (cfg ? 2 : 1) * numImagesPerPrompt).ToArray());
        var levels = level.repeat(conditioning.shape[0]);

        // 6. latents of the image's size
        var current = InitialLatents(latents, [total, latentChannels, pixels.shape[2], pixels.shape[3]], dtype, gens);

        // 9. denoising loop: the UNet sees cat([scaled latents, image], 1) and class_labels = noise_level
        var loop = new UpscaleDenoisingLoop(Unet, cfg, guidanceScale, crossAttentionKwargs);
        var ctx = LoopContext(timesteps, current, embeds, cfg, eta, gens, callbackOnStepEnd, progress, cancellationToken);
        ctx.Tensors[ImageKey] = conditioning;
        ctx.Tensors[NoiseLevelKey] = levels;
        current = loop.Run(ctx);

        // 10. decode (upcast when force_upcast) and postprocess
        return PipelineSteps.Finish(current, outputType, l => PipelineSteps.DecodeUpcasting(Vae, l, VaeScalingFactor), (name, t) => Record(name, t));
    }

    /// <summary>The loop of the upscaler: the noised image's channels after the scaled latents, the noise level as class label.</summary>
    private sealed class UpscaleDenoisingLoop(UNet2DConditionModel unet, bool cfg, double guidanceScale, CrossAttentionOptions? crossAttentionKwargs)
        : GuidedDenoisingLoop(unet, cfg, guidanceScale, 0.0, null, crossAttentionKwargs)
    {
        protected override Tensor ExtendModelInput(DenoisingContext ctx, Tensor scaledInput) =>
            torch.cat(new[] { scaledInput, ctx.Get(ImageKey) }, 1);

        protected override Tensor? ClassLabels(DenoisingContext ctx) => ctx.Get(NoiseLevelKey);
    }
}
