using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// diffusers' <c>StableDiffusionAdapterPipeline</c> (0.25.1, pipelines/t2i_adapter/pipeline_stable_diffusion_adapter.py):
/// text to image guided by one or several T2I-Adapters, whose states the UNet adds inside its down blocks at every step.
/// <code>
/// using var adapter = T2IAdapter.FromPretrained("TencentARC/t2iadapter_canny_sd15v2");
/// using var pipe = StableDiffusionAdapterPipeline.FromPretrained("runwayml/stable-diffusion-v1-5", adapter);
/// using var result = pipe.Generate("a photo of a cat", [Image.LoadImage("edges.png", grayscale: true)], numInferenceSteps: 30, seed: 0);
/// </code>
/// With the same seed it draws what diffusers draws on the CPU. The pipeline owns (and disposes) the adapter it is given.
/// </summary>
public sealed class StableDiffusionAdapterPipeline : StableDiffusionPipelineBase
{
    /// <summary>diffusers' class name.</summary>
    public const string Name = "StableDiffusionAdapterPipeline";

    /// <summary>
    /// diffusers 0.25.1's <c>StableDiffusionAdapterPipeline(DiffusionPipeline)</c> has no <c>IPAdapterMixin</c> and <see cref="Generate"/> takes no image prompt, so
    /// <c>LoadIPAdapter</c> and <c>SetIPAdapterScale</c> are refused (LoRA and textual inversion load here as on StableDiffusionPipeline, beyond diffusers).
    /// </summary>
    protected override LoaderMixins Loaders => LoaderMixins.TextualInversion | LoaderMixins.Lora;

    private readonly nn.Module _adapter;
    private readonly T2IAdapterSet _set;

    /// <summary>
    /// Builds the pipeline from its components; <paramref name="adapter"/> is a <see cref="T2IAdapter"/> or a
    /// <see cref="MultiAdapter"/> whose states fit the UNet's down blocks, else <see cref="ConfigException"/>.
    /// </summary>
    public StableDiffusionAdapterPipeline(IVae vae, CLIPTextModel textEncoder, CLIPTokenizer tokenizer,
        UNet2DConditionModel unet, nn.Module adapter, IScheduler scheduler, Action<string>? log = null)
        : base(vae, textEncoder, tokenizer, unet, scheduler, log)
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
    /// Loads a StableDiffusionAdapterPipeline folder (or Hub id) as diffusers' <c>save_pretrained</c> writes it: the Stable
    /// Diffusion components and the <c>adapter</c> subfolder (a MultiAdapter's adapters in <c>adapter</c>,
    /// <c>adapter_1</c>, …), each with <paramref name="options"/>; <see cref="DiffusionPipeline.FromPretrained"/> dispatches
    /// here by model_index.json's class.
    /// </summary>
    public static new StableDiffusionAdapterPipeline FromPretrained(string idOrPath, LoadOptions? options = null) =>
        StableDiffusionLoader.Load(idOrPath, options, Name, [Name],
            c => T2IAdapterSet.WithAdapter(c.Index, options, adapter => new StableDiffusionAdapterPipeline(c.Vae, c.TextEncoder, c.Tokenizer, c.Unet, adapter, c.Scheduler, options?.Log)));

    /// <summary>
    /// diffusers' <c>StableDiffusionAdapterPipeline.from_pretrained(sd, adapter=...)</c>: the Stable Diffusion components of
    /// <paramref name="idOrPath"/> (a StableDiffusionPipeline folder or Hub id), each loaded with <paramref name="options"/>,
    /// and <paramref name="adapter"/> (a <see cref="T2IAdapter"/>, or a <see cref="MultiAdapter"/> for several), which the
    /// pipeline then owns.
    /// </summary>
    public static StableDiffusionAdapterPipeline FromPretrained(string idOrPath, nn.Module adapter, LoadOptions? options = null) =>
        StableDiffusionLoader.Load(idOrPath, options, Name, [Name, StableDiffusionPipeline.Name],
            c => new StableDiffusionAdapterPipeline(c.Vae, c.TextEncoder, c.Tokenizer, c.Unet, adapter, c.Scheduler, options?.Log));

    /// <summary>
    /// Generates images (diffusers' <c>__call__</c>). <paramref name="image"/>: the control image of each adapter, in
    /// adapter order (an Image, kept in its own mode: RGB, or greyscale for a one-channel adapter; a list of Images, one
    /// per prompt; or a [B, C, H, W] tensor in [0, 1] of the output size). The output size defaults to the first control
    /// image's, rounded down to a multiple of the adapter's <c>downscale_factor</c>, and must be a multiple of 8.
    /// <paramref name="adapterConditioningScale"/>: the states' weight, one value or one per adapter (default 1 each).
    /// The other arguments are <see cref="StableDiffusionPipeline.Generate"/>'s.
    /// </summary>
    public ImagePipelineOutput Generate(PromptInput prompt = default, IReadOnlyList<ImageInput>? image = null,
        int? height = null, int? width = null, int numInferenceSteps = 50, double guidanceScale = 7.5,
        PromptInput negativePrompt = default, int numImagesPerPrompt = 1, double eta = 0.0, long? seed = null,
        Generator? generator = null, IReadOnlyList<Generator>? generators = null, Tensor? latents = null,
        Tensor? promptEmbeds = null, Tensor? negativePromptEmbeds = null, OutputType outputType = OutputType.Pil,
        IReadOnlyList<double>? adapterConditioningScale = null, int? clipSkip = null,
        CrossAttentionOptions? crossAttentionKwargs = null, StepEndCallback? callbackOnStepEnd = null,
        IProgress<PipelineProgress>? progress = null, CancellationToken cancellationToken = default, IReadOnlyList<long>? timesteps = null)
    {
        // 0. default height and width to the control image's
        var (h, w) = _set.DefaultSize(image, height, width);

        // 1. check inputs
        PipelineSteps.CheckSize(Name, h, w, 8);
        CheckPromptInputs(prompt, negativePrompt, promptEmbeds, negativePromptEmbeds);
        CheckCommon(PipelineSteps.StepCount(Name, Scheduler, numInferenceSteps, timesteps), numImagesPerPrompt, guidanceScale, eta);
        var scales = _set.Scales(adapterConditioningScale);

        // 2. call parameters: batch, generators, no-grad mode and the call's dispose scope
        using var call = BeginCall(prompt, promptEmbeds, numImagesPerPrompt, seed, generator, generators);
        var (total, gens) = call;
        bool cfg = DoClassifierFreeGuidance(guidanceScale);

        // 3. encode the prompt; CFG batch = [negative, prompt]
        using var embeds = EncodePrompt(prompt, numImagesPerPrompt, cfg, negativePrompt, promptEmbeds, negativePromptEmbeds, clipSkip,
            crossAttentionKwargs?.Scale);
        RecordEmbeddings(embeds);

        // 4. timesteps; 5. latents
        var schedule = PipelineSteps.Timesteps(Scheduler, numInferenceSteps, Unet.Device, Name, timesteps);
        var current = InitialLatents(latents, [total, Unet.Config.InChannels, h / VaeScaleFactor, w / VaeScaleFactor],
            embeds.PromptEmbeds.dtype, gens);

        // 7. the adapter states (every step), then the denoising loop
        var states = _set.States(image!, h, w, scales, numImagesPerPrompt, total, cfg, cutoff: int.MaxValue);
        Record("adapter_state_0", states.States[0]);
        var loop = PipelineSteps.GuidedLoop(Unet, cfg, guidanceScale, 0.0, total, current.dtype, crossAttentionKwargs, adapter: states);
        current = loop.Run(LoopContext(schedule, current, embeds, cfg, eta, gens, callbackOnStepEnd, progress, cancellationToken));

        // 8. decode and postprocess
        return Finish(current, outputType);
    }
}
