using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// diffusers' <c>StableDiffusionXLAdapterPipeline</c> (0.25.1, pipelines/t2i_adapter/pipeline_stable_diffusion_xl_adapter.py):
/// SDXL text to image guided by one or several T2I-Adapters, whose states the UNet adds inside its down blocks (and, for
/// full_adapter_xl's last state, onto its mid block) during the first <c>adapter_conditioning_factor</c> of the steps.
/// <code>
/// using var adapter = T2IAdapter.FromPretrained("TencentARC/t2i-adapter-canny-sdxl-1.0");
/// using var pipe = StableDiffusionXLAdapterPipeline.FromPretrained("stabilityai/stable-diffusion-xl-base-1.0", adapter);
/// using var result = pipe.Generate("a photo of a cat", [Image.LoadImage("edges.png", grayscale: true)], numInferenceSteps: 30, seed: 0);
/// </code>
/// With the same seed it draws what diffusers draws on the CPU. The pipeline owns (and disposes) the adapter it is given.
/// </summary>
public sealed class StableDiffusionXLAdapterPipeline : StableDiffusionXLPipelineBase
{
    /// <summary>diffusers' class name.</summary>
    public const string Name = "StableDiffusionXLAdapterPipeline";

    /// <summary>
    /// diffusers 0.25.1's <c>StableDiffusionXLAdapterPipeline(DiffusionPipeline, FromSingleFileMixin, StableDiffusionXLLoraLoaderMixin, TextualInversionLoaderMixin)</c> has no <c>IPAdapterMixin</c> and <see cref="Generate"/> takes no image prompt, so
    /// <c>LoadIPAdapter</c> and <c>SetIPAdapterScale</c> are refused.
    /// </summary>
    protected override LoaderMixins Loaders => LoaderMixins.TextualInversion | LoaderMixins.Lora;

    private readonly nn.Module _adapter;
    private readonly T2IAdapterSet _set;

    /// <summary>
    /// Builds the pipeline from its components; <paramref name="adapter"/> is a <see cref="T2IAdapter"/> or a
    /// <see cref="MultiAdapter"/> whose states fit the UNet's down blocks, else <see cref="ConfigException"/>.
    /// </summary>
    public StableDiffusionXLAdapterPipeline(IVae vae, CLIPTextModel textEncoder, CLIPTokenizer tokenizer,
        CLIPTextModelWithProjection textEncoder2, CLIPTokenizer tokenizer2, UNet2DConditionModel unet, nn.Module adapter,
        IScheduler scheduler, bool forceZerosForEmptyPrompt = true, Action<string>? log = null)
        : base(vae, textEncoder ?? throw new ArgumentNullException(nameof(textEncoder)), tokenizer, textEncoder2, tokenizer2, unet,
            scheduler, forceZerosForEmptyPrompt, requiresAestheticsScore: false, log)
    {
        _adapter = adapter;
        _set = new T2IAdapterSet(adapter, Name, unet);
    }

    /// <inheritdoc/>
    public override string ClassName => Name;

    /// <summary>The <c>adapter</c> component as given: a <see cref="T2IAdapter"/> or a <see cref="MultiAdapter"/>.</summary>
    public nn.Module Adapter => _adapter;

    /// <summary>The adapters, in order (one for a single <see cref="T2IAdapter"/>).</summary>
    public IReadOnlyList<T2IAdapter> Adapters => _set.Adapters;

    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Components => new Dictionary<string, object>(base.Components)
    {
        ["adapter"] = _adapter,
    };

    /// <summary>
    /// Loads a StableDiffusionXLAdapterPipeline folder (or Hub id) as diffusers' <c>save_pretrained</c> writes it: the SDXL
    /// components and the <c>adapter</c> subfolder (a MultiAdapter's adapters in <c>adapter</c>, <c>adapter_1</c>, …),
    /// each with <paramref name="options"/>; <see cref="DiffusionPipeline.FromPretrained"/> dispatches here by
    /// model_index.json's class.
    /// </summary>
    public static new StableDiffusionXLAdapterPipeline FromPretrained(string idOrPath, LoadOptions? options = null) =>
        StableDiffusionXLLoader.Load(idOrPath, options, Name, [Name],
            c => T2IAdapterSet.WithAdapter(c.Index, options, adapter => Create(c, adapter, options)));

    /// <summary>
    /// diffusers' <c>StableDiffusionXLAdapterPipeline.from_pretrained(sdxl, adapter=...)</c>: the SDXL components of
    /// <paramref name="idOrPath"/> (a StableDiffusionXLPipeline folder or Hub id), each loaded with <paramref name="options"/>,
    /// and <paramref name="adapter"/>, which the pipeline then owns.
    /// </summary>
    public static StableDiffusionXLAdapterPipeline FromPretrained(string idOrPath, nn.Module adapter, LoadOptions? options = null) =>
        StableDiffusionXLLoader.Load(idOrPath, options, Name, [Name, StableDiffusionXLPipeline.Name], c => Create(c, adapter, options));

    private static StableDiffusionXLAdapterPipeline Create(StableDiffusionXLLoader.Loaded c, nn.Module adapter, LoadOptions? options) =>
        new(c.Vae,
            c.TextEncoder ?? throw new ConfigException($"{c.Index.Path}: {Name} needs a text_encoder (this looks like a refiner folder)")
            { FilePath = c.Index.Path, Key = "text_encoder" },
            c.Tokenizer!, c.TextEncoder2, c.Tokenizer2, c.Unet, adapter, c.Scheduler, c.ForceZerosForEmptyPrompt, options?.Log);

    /// <summary>
    /// Generates images (diffusers' <c>__call__</c>). <paramref name="image"/>: the control image of each adapter, as in
    /// <see cref="StableDiffusionAdapterPipeline.Generate"/>; the output size defaults to the first control image's,
    /// rounded down to a multiple of the adapter's <c>downscale_factor</c> (16 for SDXL's adapters), and so do
    /// <paramref name="originalSize"/> and <paramref name="targetSize"/>. <paramref name="adapterConditioningScale"/>: the
    /// states' weight, one value or one per adapter (default 1 each); <paramref name="adapterConditioningFactor"/> (0 to
    /// 1, default 1): the fraction of the steps that get the states (the first <c>int(steps · factor)</c>). The other
    /// arguments are <see cref="StableDiffusionXLPipeline.Generate"/>'s.
    /// </summary>
    public ImagePipelineOutput Generate(PromptInput prompt = default, IReadOnlyList<ImageInput>? image = null,
        PromptInput prompt2 = default, int? height = null, int? width = null, int numInferenceSteps = 50, double? denoisingEnd = null,
        double guidanceScale = 5.0, PromptInput negativePrompt = default, PromptInput negativePrompt2 = default,
        int numImagesPerPrompt = 1, double eta = 0.0, long? seed = null, Generator? generator = null,
        IReadOnlyList<Generator>? generators = null, Tensor? latents = null, Tensor? promptEmbeds = null,
        Tensor? negativePromptEmbeds = null, Tensor? pooledPromptEmbeds = null, Tensor? negativePooledPromptEmbeds = null,
        OutputType outputType = OutputType.Pil, CrossAttentionOptions? crossAttentionKwargs = null, double guidanceRescale = 0.0,
        (int Height, int Width)? originalSize = null, (int Top, int Left) cropsCoordsTopLeft = default,
        (int Height, int Width)? targetSize = null, (int Height, int Width)? negativeOriginalSize = null,
        (int Top, int Left) negativeCropsCoordsTopLeft = default, (int Height, int Width)? negativeTargetSize = null,
        IReadOnlyList<double>? adapterConditioningScale = null, double adapterConditioningFactor = 1.0, int? clipSkip = null,
        StepEndCallback? callbackOnStepEnd = null, IProgress<PipelineProgress>? progress = null, CancellationToken cancellationToken = default, IReadOnlyList<long>? timesteps = null)
    {
        // 0. default height and width to the control image's
        var (h, w) = _set.DefaultSize(image, height, width);
        var original = originalSize ?? (h, w);
        var target = targetSize ?? (h, w);

        // 1. check inputs
        PipelineSteps.CheckSize(Name, h, w, 8);
        CheckPromptInputs(prompt, prompt2, negativePrompt, negativePrompt2, promptEmbeds, negativePromptEmbeds);
        CheckCommon(PipelineSteps.StepCount(Name, Scheduler, numInferenceSteps, timesteps), numImagesPerPrompt, guidanceScale, guidanceRescale, eta);
        CheckDenoisingEnd(denoisingEnd);
        CheckMicroConditioning(original, cropsCoordsTopLeft, target, negativeOriginalSize, negativeCropsCoordsTopLeft, negativeTargetSize);
        var scales = _set.Scales(adapterConditioningScale);
        if (!(adapterConditioningFactor >= 0 && adapterConditioningFactor <= 1))
            throw new DiffusersException($"{Name}: adapter_conditioning_factor must be between 0 and 1 (the fraction of the steps the adapter acts in), got {adapterConditioningFactor}");

        // 2. call parameters: batch, generators, no-grad mode and the call's dispose scope
        using var call = BeginCall(prompt, promptEmbeds, numImagesPerPrompt, seed, generator, generators);
        var (total, gens) = call;
        bool cfg = DoClassifierFreeGuidance(guidanceScale);

        // 3. encode the prompt (both encoders take the LoRA scale)
        using var embeds = EncodePrompt(prompt, prompt2, numImagesPerPrompt, cfg, negativePrompt, negativePrompt2, promptEmbeds,
            negativePromptEmbeds, pooledPromptEmbeds, negativePooledPromptEmbeds, clipSkip, crossAttentionKwargs?.Scale);
        Record("prompt_embeds", embeds.PromptEmbeds);

        // 4. timesteps; 5. latents
        var schedule = PipelineSteps.Timesteps(Scheduler, numInferenceSteps, Unet.Device, Name, timesteps);
        var dtype = embeds.PromptEmbeds.dtype;
        var current = InitialLatents(latents, [total, Unet.Config.InChannels, h / VaeScaleFactor, w / VaeScaleFactor], dtype, gens);

        // 7. added time ids; with guidance the [negative; positive] pair is repeated per image, as in the txt2img pipeline
        var (unetTimeIds, negativeAddTimeIds) = Txt2ImgTimeIds(total, cfg, dtype, original, cropsCoordsTopLeft, target,
            negativeOriginalSize, negativeCropsCoordsTopLeft, negativeTargetSize);

        // 8. denoising loop: denoising_end keeps the timesteps at or above its cutoff, and diffusers then counts the steps
        // left for adapter_conditioning_factor
        int steps = numInferenceSteps;
        if (denoisingEnd is double d && d < 1)
        {
            schedule = ApplyDenoisingEnd(schedule, d);
            steps = (int)schedule.shape[0];
        }
        var states = _set.States(image!, h, w, scales, numImagesPerPrompt, total, cfg, cutoff: (int)(steps * adapterConditioningFactor));
        Record("adapter_state_0", states.States[0]);
        var loop = PipelineSteps.GuidedLoop(Unet, cfg, guidanceScale, guidanceRescale, total, current.dtype, crossAttentionKwargs, adapter: states);
        current = loop.Run(LoopContext(schedule, current, embeds, unetTimeIds, cfg ? negativeAddTimeIds : null, cfg, eta, gens,
            callbackOnStepEnd, progress, cancellationToken));

        // 9. decode (upcast when force_upcast) and postprocess
        return Finish(current, outputType);
    }
}
