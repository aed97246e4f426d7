using System.Text.Json.Nodes;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// What diffusers' Stable Diffusion pipelines (txt2img, img2img, inpaint; 0.25.1) share: the components
/// (<c>vae</c>, <c>text_encoder</c>, <c>tokenizer</c>, <c>unet</c>, <c>scheduler</c>), <see cref="EncodePrompt"/>,
/// the scheduler-config fixes of their constructors, the per-step body (scale input, predict noise,
/// classifier-free guidance, step) and the VAE decode + postprocess.
/// </summary>
public abstract partial class StableDiffusionPipelineBase : DiffusionPipeline, IStableDiffusionFamilyPipeline
{
    /// <summary>The components every Stable Diffusion folder needs, in model_index.json's names.</summary>
    public static readonly IReadOnlyList<string> RequiredComponents = ["vae", "text_encoder", "tokenizer", "unet", "scheduler"];

    /// <summary>
    /// Optional components diffusers may load; this library runs none of them, nor downloads them or needs them in the
    /// cache (<see cref="Hub.PipelineFileSelection.NotLoadedComponents"/>, the same list); a local folder's
    /// <c>feature_extractor/</c> is loaded as the IP-Adapter image processor.
    /// </summary>
    public static IReadOnlyList<string> NotRunComponents => Hub.PipelineFileSelection.NotLoadedComponents;

    private IScheduler _scheduler;
    private IVae _vae;

    /// <summary>
    /// Checks that the text encoder's width matches the UNet's cross-attention, corrects the scheduler config's outdated
    /// values that <paramref name="fixes"/> names (what the diffusers class's constructor corrects) and puts every model
    /// in evaluation mode. The pipeline owns the components from now on and disposes them when it is disposed (a
    /// scheduler whose config it corrects is disposed at once, the corrected one kept).
    /// </summary>
    protected StableDiffusionPipelineBase(IVae vae, CLIPTextModel textEncoder, CLIPTokenizer tokenizer,
        UNet2DConditionModel unet, IScheduler scheduler, Action<string>? log, SchedulerConfigFixes fixes = SchedulerConfigFixes.None)
    {
        ArgumentNullException.ThrowIfNull(vae);
        ArgumentNullException.ThrowIfNull(textEncoder);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(unet);
        ArgumentNullException.ThrowIfNull(scheduler);
        CheckTextEncoderMatchesUnet(textEncoder.Config, unet.Config);
        _vae = vae;
        TextEncoder = textEncoder;
        Tokenizer = tokenizer;
        Unet = unet;
        Log = log ?? DefaultLog;
        _scheduler = FixSchedulerConfig(scheduler, fixes);
        Vae.SetEvalMode();
        TextEncoder.eval();
        Unet.eval();
    }

    /// <summary>
    /// A pipeline around <paramref name="lender"/>'s components that borrows them all, and <paramref name="scheduler"/> with
    /// them (the generation service's image to image and inpainting on a text-to-image model): the scheduler is held as
    /// given, as one assigned to <see cref="Scheduler"/> (no config is corrected, so none is built or disposed), and the
    /// pipeline is never disposed: its components stay the lender's, the scheduler its maker's (docs/ARCHITECTURE.md,
    /// "Tensor ownership"). The IP-Adapter's image encoder and feature extractor are borrowed too (the adapter's weights
    /// are in the shared UNet), so an image prompt works on the borrowing pipeline as on the lender.
    /// </summary>
    private protected StableDiffusionPipelineBase(StableDiffusionPipelineBase lender, IScheduler scheduler)
        : this(lender.Vae, lender.TextEncoder, lender.Tokenizer, lender.Unet, scheduler, lender.Log)
    {
        ImageEncoder = lender.ImageEncoder;
        FeatureExtractor = lender.FeatureExtractor;
    }

    /// <summary>
    /// The VAE: the folder's <see cref="AutoencoderKL"/>, or another <see cref="IVae"/> swapped in as diffusers'
    /// <c>pipe.vae = AutoencoderTiny.from_pretrained("madebyollin/taesd")</c>. The pipeline disposes the VAE it holds
    /// when it is disposed; one that is replaced is left to the caller (<c>using var old = pipe.Vae; pipe.Vae = tiny;</c>).
    /// </summary>
    public IVae Vae
    {
        get => _vae;
        set => _vae = PipelineSteps.InEvalMode(value);
    }
    /// <summary>The CLIP text encoder the prompts are encoded with.</summary>
    public CLIPTextModel TextEncoder { get; }
    /// <summary>The CLIP tokenizer of the prompts.</summary>
    public CLIPTokenizer Tokenizer { get; }
    /// <summary>The denoising UNet.</summary>
    public UNet2DConditionModel Unet { get; }

    /// <summary>
    /// diffusers' <c>enable_freeu(s1, s2, b1, b2)</c>: FreeU on the pipeline's UNet (<see cref="UNet2DConditionModel.EnableFreeU"/>;
    /// SD 1.5 (0.9, 0.2, 1.2, 1.4), SD 2.1 (0.9, 0.2, 1.1, 1.2), SDXL (0.6, 0.4, 1.1, 1.2) in diffusers' documentation). The
    /// setting lives on the UNet, so every pipeline sharing it (a borrowing pipeline of the generation service) sees it.
    /// </summary>
    public void EnableFreeU(double s1, double s2, double b1, double b2) => Unet.EnableFreeU(s1, s2, b1, b2);

    /// <summary>diffusers' <c>disable_freeu()</c>: FreeU off on the pipeline's UNet (<see cref="UNet2DConditionModel.DisableFreeU"/>).</summary>
    public void DisableFreeU() => Unet.DisableFreeU();

    /// <summary>
    /// The scheduler; swap it like diffusers' <c>pipe.scheduler = X.from_config(pipe.scheduler.config)</c>. A scheduler
    /// assigned here is used as given (only the constructor corrects outdated configs, see <see cref="SchedulerConfigFixes"/>).
    /// The pipeline disposes the scheduler it holds when it is disposed; one that is replaced is left to the caller, as a
    /// replaced VAE (<c>using var old = pipe.Scheduler; pipe.Scheduler = X.FromConfig(old.Config);</c>).
    /// </summary>
    public IScheduler Scheduler
    {
        get => _scheduler;
        set => _scheduler = value ?? throw new ArgumentNullException(nameof(value));
    }

    /// <summary>Where warnings go (truncated prompts, components that are not run). Default: standard error.</summary>
    public Action<string> Log { get; set; }

    /// <summary>Writes "warning: …" to standard error.</summary>
    public static void DefaultLog(string message) => Console.Error.WriteLine("warning: " + message);

    /// <summary><c>2 ** (len(vae.config.block_out_channels) - 1)</c>.</summary>
    public int VaeScaleFactor => 1 << (Vae.BlockOutChannels.Count - 1);

    /// <summary>The Stable Diffusion 1.x/2.x VAE's latents (their tiny VAE: <see cref="VaeLoader.TaesdId"/>).</summary>
    public LatentSpace LatentSpace => LatentSpace.StableDiffusion;

    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Components
    {
        get
        {
            var c = new Dictionary<string, object>
            {
                ["vae"] = Vae, ["text_encoder"] = TextEncoder, ["tokenizer"] = Tokenizer, ["unet"] = Unet, ["scheduler"] = Scheduler,
            };
            if (ImageEncoder is not null) c["image_encoder"] = ImageEncoder;
            return c;
        }
    }

    /// <summary>For tests: called with (name, step or -1, tensor) for every intermediate diffusers' golden run records.</summary>
    internal Action<string, int, Tensor>? Trace { get; set; }

    private protected void Record(string name, Tensor t, int step = -1) => Trace?.Invoke(name, step, t);

    /// <summary>
    /// The text encoder's hidden size must be what the UNet's cross-attention takes (its <c>encoder_hid_dim</c> when
    /// it projects the text states first).
    /// </summary>
    public static void CheckTextEncoderMatchesUnet(CLIPTextConfig text, UNet2DConditionModelConfig unet)
    {
        int hidden = text.HiddenSize;
        if (unet.EncoderHidDim is int hid)
        {
            if (hid != hidden)
                throw new ConfigException(
                    $"The text encoder's hidden_size is {hidden}, but the UNet's encoder_hid_dim is {hid}: the text encoder does not fit this UNet")
                { Key = "encoder_hid_dim" };
            return;
        }
        foreach (int dim in unet.CrossAttentionDim.Distinct())
            if (dim != hidden)
                throw new ConfigException(
                    $"The text encoder's hidden_size is {hidden}, but the UNet's cross_attention_dim is {dim}: the text encoder does not fit this UNet")
                { Key = "cross_attention_dim" };
    }

    /// <summary>
    /// What a diffusers Stable Diffusion constructor does to an outdated scheduler config, for the values
    /// <paramref name="fixes"/> names: <c>steps_offset</c> other than 1 becomes 1, <c>clip_sample: true</c> becomes
    /// false, <c>skip_prk_steps: false</c> becomes true (each with a warning). The scheduler was handed to the pipeline, so
    /// when its config is corrected it is disposed here and the corrected one returned.
    /// </summary>
    private IScheduler FixSchedulerConfig(IScheduler scheduler, SchedulerConfigFixes fixes)
    {
        if (fixes == SchedulerConfigFixes.None) return scheduler;
        var node = JsonNode.Parse(ConfigJson.NormalizePythonLiterals(SerializeConfig(scheduler.Config)))!.AsObject();
        bool changed = false;
        if (fixes.HasFlag(SchedulerConfigFixes.StepsOffset) && node["steps_offset"] is JsonValue so && so.TryGetValue<double>(out var offset) && offset != 1)
        {
            Log($"the scheduler config has steps_offset {offset}; it should be 1: using 1, as diffusers does");
            node["steps_offset"] = 1;
            changed = true;
        }
        if (fixes.HasFlag(SchedulerConfigFixes.ClipSample) && node["clip_sample"] is JsonValue cs && cs.TryGetValue<bool>(out var clip) && clip)
        {
            Log("the scheduler config has clip_sample true; it should be false: using false, as diffusers does");
            node["clip_sample"] = false;
            changed = true;
        }
        if (fixes.HasFlag(SchedulerConfigFixes.SkipPrkSteps) && node["skip_prk_steps"] is JsonValue sp && sp.TryGetValue<bool>(out var skip) && !skip)
        {
            Log("the scheduler config has skip_prk_steps false; it should be true: using true, as diffusers does");
            node["skip_prk_steps"] = true;
            changed = true;
        }
        if (!changed) return scheduler;
        node["_class_name"] = scheduler.ClassName;
        var corrected = SchedulerFactory.FromJson(node.ToJsonString(), scheduler.ClassName + " config");
        if (!Borrows(scheduler)) scheduler.Dispose();   // a lent scheduler (AutoPipeline FromPipe) stays its owner's
        return corrected;
    }

    private static string SerializeConfig(SchedulerConfig config) =>
        System.Text.Json.JsonSerializer.Serialize(config, config.GetType(), ConfigJson.Options);

    /// <summary><c>do_classifier_free_guidance</c>: guidance_scale &gt; 1 and no guidance embedding in the UNet.</summary>
    protected bool DoClassifierFreeGuidance(double guidanceScale) => PipelineSteps.DoClassifierFreeGuidance(Unet, guidanceScale);

    /// <summary>
    /// diffusers' <c>encode_prompt</c>: tokenizes (padding to model_max_length, truncating with a warning), runs the
    /// text encoder (with <paramref name="clipSkip"/>: <c>hidden_states[-(clip_skip + 1)]</c> through the final
    /// LayerNorm), repeats for <paramref name="numImagesPerPrompt"/>, and with guidance encodes the negative prompt
    /// (empty strings when none) the same way without clip skip. <paramref name="loraScale"/> (diffusers' <c>lora_scale</c>):
    /// the scale of the text encoder's LoRA layers, kept for later calls as diffusers 0.25.1 keeps it. The embeddings are
    /// returned in the UNet's dtype (diffusers: the text encoder's; the same unless the text encoder was kept in fp32 under
    /// bf16, see <see cref="TextEncoderDtype"/>).
    /// </summary>
    public PromptEmbeddings EncodePrompt(PromptInput prompt, int numImagesPerPrompt = 1, bool doClassifierFreeGuidance = true,
        PromptInput negativePrompt = default, Tensor? promptEmbeds = null, Tensor? negativePromptEmbeds = null, int? clipSkip = null,
        double? loraScale = null)
    {
        // diffusers: the text encoder's LoRA layers take the call's scale and keep it for later calls (0.25.1)
        if (loraScale is double ls) TextEncoder.LoraScale.Value = ls;
        if (numImagesPerPrompt < 1)
            throw new DiffusersException($"{ClassName}: num_images_per_prompt must be at least 1, got {numImagesPerPrompt}");
        if (prompt.IsNone && promptEmbeds is null)
            throw new DiffusersException($"{ClassName}: provide either a prompt or prompt_embeds; both are missing");
        int layers = TextEncoder.Config.NumHiddenLayers;
        if (clipSkip is int cs && (cs < 0 || cs > layers))
            throw new DiffusersException($"{ClassName}: clip_skip must be between 0 and the text encoder's {layers} layers, got {cs}");
        var device = Unet.Device;
        var dtype = Unet.DType;   // the embeddings feed the UNet (the text encoder may be kept in fp32: TextEncoderDtype)
        int batchSize = prompt.IsNone ? (int)promptEmbeds!.shape[0] : prompt.Items.Count;

        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        Tensor embeds;
        if (promptEmbeds is null)
        {
            // textual inversion: a multi-vector token T stands for "T T_1 … T_(n-1)" (diffusers' maybe_convert_prompt)
            var tokens = Tokenizer.Call(MaybeConvertPrompt(prompt.Items), PaddingStrategy.MaxLength, Tokenizer.ModelMaxLength, truncation: true);
            foreach (var w in tokens.Warnings) Log(w);
            var ids = tokens.InputIdsTensor(TextEncoder.Device);
            var mask = TextEncoder.Config.UseAttentionMask == true ? tokens.AttentionMaskTensor(TextEncoder.Device) : null;
            using var output = TextEncoder.Forward(ids, mask, outputHiddenStates: clipSkip is not null);
            embeds = clipSkip is int skip
                ? TextEncoder.FinalLayerNorm(output.HiddenStates![output.HiddenStates.Count - (skip + 1)])
                : output.LastHiddenState.alias();
        }
        else
        {
            PipelineSteps.CheckPromptEmbeds(ClassName, promptEmbeds, TextEncoder.Config.HiddenSize, "the text encoder's hidden_size");
            embeds = promptEmbeds;
        }
        embeds = embeds.to(dtype, device);
        long[] promptShape = embeds.shape;
        long seq = embeds.shape[1];
        embeds = embeds.repeat(1, numImagesPerPrompt, 1).view(batchSize * numImagesPerPrompt, seq, -1);

        Tensor? negative = null;
        if (doClassifierFreeGuidance)
        {
            if (negativePromptEmbeds is null)
            {
                IReadOnlyList<string> uncond;
                if (negativePrompt.IsNone) uncond = Enumerable.Repeat("", batchSize).ToArray();
                else if (!prompt.IsNone && prompt.IsList != negativePrompt.IsList)
                    throw new DiffusersException(
                        $"{ClassName}: negative_prompt should be the same type as prompt (a {(prompt.IsList ? "list" : "string")}), but got {negativePrompt}");
                else if (!negativePrompt.IsList) uncond = negativePrompt.Items;
                else if (negativePrompt.Items.Count != batchSize)
                    throw new DiffusersException(
                        $"{ClassName}: negative_prompt {negativePrompt} has batch size {negativePrompt.Items.Count}, but prompt {prompt} has batch size {batchSize}");
                else uncond = negativePrompt.Items;

                var tokens = Tokenizer.Call(MaybeConvertPrompt(uncond), PaddingStrategy.MaxLength, (int)seq, truncation: true);
                var ids = tokens.InputIdsTensor(TextEncoder.Device);
                var mask = TextEncoder.Config.UseAttentionMask == true ? tokens.AttentionMaskTensor(TextEncoder.Device) : null;
                using var output = TextEncoder.Forward(ids, mask);
                negative = output.LastHiddenState.alias();
            }
            else
            {
                PipelineSteps.CheckNegativeEmbeds(ClassName, "negative_prompt_embeds", negativePromptEmbeds, promptShape);
                negative = negativePromptEmbeds;
            }
            negative = negative.to(dtype, device);
            long nseq = negative.shape[1];
            negative = negative.repeat(1, numImagesPerPrompt, 1).view(batchSize * numImagesPerPrompt, nseq, -1);
        }
        return new PromptEmbeddings(embeds.contiguous().MoveToOuterDisposeScope(), negative?.contiguous().MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The dtype the loaders give the text encoder when the pipeline's models are asked for <paramref name="requested"/>:
    /// the same, except bfloat16, under which the text encoder stays float32. A bf16 text encoder moves the prompt
    /// embeddings by up to 1.3 % (tiny-sd) and 2.7 % (an SD 1.5-sized CLIP) of their largest value, 3-7 times the
    /// error of rounding the fp32 embeddings to bf16 (which the bf16 UNet does anyway; docs/BENCHMARKS.md, 2026-12-04),
    /// for one pass per prompt. <see cref="EncodePrompt"/> casts the embeddings to the UNet's dtype.
    /// </summary>
    public static ScalarType? TextEncoderDtype(ScalarType? requested) =>
        requested == ScalarType.BFloat16 ? ScalarType.Float32 : requested;

    /// <summary>diffusers' check_inputs for the prompt arguments.</summary>
    protected void CheckPromptInputs(PromptInput prompt, PromptInput negativePrompt, Tensor? promptEmbeds, Tensor? negativePromptEmbeds) =>
        PipelineSteps.CheckPromptInputs(ClassName, prompt, default, negativePrompt, default, promptEmbeds, negativePromptEmbeds);

    /// <summary>Checks and normalises the steps / guidance arguments.</summary>
    protected void CheckCommon(int numInferenceSteps, int numImagesPerPrompt, double guidanceScale, double eta) =>
        PipelineSteps.CheckCommon(ClassName, Scheduler, numInferenceSteps, numImagesPerPrompt, guidanceScale, null, eta);

    /// <summary>The default image size: <c>unet.config.sample_size * vae_scale_factor</c>.</summary>
    protected internal (int Height, int Width) DefaultSize()
    {
        int[] size = Unet.Config.SampleSize ?? throw new DiffusersException(
            $"{ClassName}: the UNet config has no sample_size; pass height and width");
        return (size[0] * VaeScaleFactor, size[^1] * VaeScaleFactor);
    }

    /// <summary>Records the prompt embeddings (and the negative ones) for tests.</summary>
    private protected void RecordEmbeddings(PromptEmbeddings embeds)
    {
        Record("prompt_embeds", embeds.PromptEmbeds);
        if (embeds.NegativePromptEmbeds is { } negative) Record("negative_prompt_embeds", negative);
    }

    /// <summary>
    /// The txt2img initial latents (diffusers' <c>prepare_latents</c>): noise drawn in <paramref name="shape"/>, or the
    /// caller's <paramref name="latents"/> (moved to the UNet's device), times the scheduler's initial sigma.
    /// </summary>
    private protected Tensor InitialLatents(Tensor? latents, long[] shape, ScalarType dtype, IReadOnlyList<Generator>? generators)
    {
        var current = PipelineSteps.LatentsOrNoise(ClassName, latents, shape, generators, dtype, Unet.Device, castGiven: false)
            * Scheduler.InitNoiseSigma;
        Record("initial_latents", current);
        return current;
    }

    /// <summary>
    /// diffusers' img2img <c>prepare_latents</c>: <paramref name="pixels"/> (4 channels: latents) encoded, duplicated to
    /// <paramref name="total"/> and noised to the first of <paramref name="timesteps"/>. <paramref name="cannotDuplicate"/>
    /// words the error when the images do not divide the batch (default: ours).
    /// </summary>
    private protected Tensor NoisedImageLatents(Tensor pixels, Tensor timesteps, int total, IReadOnlyList<Generator>? generators,
        Func<long, int, string>? cannotDuplicate = null)
    {
        var initLatents = PipelineSteps.InitImageLatents(ClassName, pixels, total, generators,
            p => EncodeVaeImage(p, generators, "image_latent"), cannotDuplicate);
        Record("image_latents", initLatents);
        var noise = Runtime.TorchUtils.RandnTensor(initLatents.shape, generators, pixels.dtype, pixels.device);
        Record("noise", noise);
        var current = PipelineSteps.NoiseToFirstTimestep(Scheduler, initLatents, noise, timesteps);
        Record("initial_latents", current);
        return current;
    }

    /// <summary>
    /// diffusers' <c>retrieve_latents(vae.encode(image), generator)</c> (a posterior sample, or the latents of a VAE
    /// without a distribution) times <c>scaling_factor</c>.
    /// </summary>
    protected Tensor EncodeVaeImage(Tensor image, IReadOnlyList<Generator>? generators, string traceName)
    {
        using var scope = torch.NewDisposeScope();
        var latents = PipelineSteps.RetrieveVaeLatents(Vae, image, generators, (name, t) => Record(traceName + "_" + name, t));
        return (Vae.ScalingFactor * latents).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The context of the shared denoising loop for one call: the loop's timesteps and initial latents, the scheduler
    /// options diffusers passes (<c>generator</c>, <c>eta</c>: each scheduler reads what it uses), and the named tensors
    /// the UNet and the step-end callback see: <c>prompt_embeds</c> (with guidance the [negative; prompt] batch, as
    /// diffusers passes it) and <c>negative_prompt_embeds</c>; with an IP-Adapter image, its embeds
    /// (<see cref="EncodeIPAdapterImage"/>) as the UNet's <c>added_cond_kwargs["image_embeds"]</c>.
    /// </summary>
    protected DenoisingContext LoopContext(Tensor timesteps, Tensor latents, PromptEmbeddings embeds, bool cfg, double eta,
        IReadOnlyList<Generator>? generators, StepEndCallback? callbackOnStepEnd, IProgress<PipelineProgress>? progress,
        CancellationToken cancellationToken, Tensor? imageEmbeds = null)
    {
        var ctx = PipelineSteps.LoopContext(ClassName, Scheduler, timesteps, latents, embeds.PromptEmbeds, embeds.NegativePromptEmbeds, cfg,
            eta, generators, callbackOnStepEnd, progress, cancellationToken, Trace);
        if (embeds.NegativePromptEmbeds is { } negative) ctx.Tensors["negative_prompt_embeds"] = negative;
        if (imageEmbeds is not null) ctx.Tensors[GuidedDenoisingLoop.ImageEmbedsKey] = imageEmbeds;
        return ctx;
    }

    /// <summary>diffusers' <c>rescale_noise_cfg</c> (Lin et al. 2023, section 3.4).</summary>
    public static Tensor RescaleNoiseCfg(Tensor noiseCfg, Tensor noisePredText, double guidanceRescale)
    {
        using var scope = torch.NewDisposeScope();
        long[] dims = Enumerable.Range(1, (int)noisePredText.dim() - 1).Select(d => (long)d).ToArray();
        var stdText = noisePredText.std(dims, unbiased: true, keepdim: true);
        var stdCfg = noiseCfg.std(dims, unbiased: true, keepdim: true);
        var rescaled = noiseCfg * (stdText / stdCfg);
        return (guidanceRescale * rescaled + (1 - guidanceRescale) * noiseCfg).MoveToOuterDisposeScope();
    }

    /// <summary>diffusers' <c>get_guidance_scale_embedding</c> for UNets with <c>time_cond_proj_dim</c> (LCM).</summary>
    protected Tensor? GuidanceScaleEmbedding(double guidanceScale, int batch, ScalarType dtype, Device device) =>
        PipelineSteps.GuidanceScaleEmbedding(Unet, guidanceScale, batch, dtype, device);

    /// <summary>Decodes (unless the output is latents) and postprocesses, as diffusers' pipelines end.</summary>
    protected ImagePipelineOutput Finish(Tensor latents, OutputType outputType) =>
        PipelineSteps.Finish(latents, outputType, l => Vae.Decode(l / Vae.ScalingFactor).Sample, (name, t) => Record(name, t));
}
