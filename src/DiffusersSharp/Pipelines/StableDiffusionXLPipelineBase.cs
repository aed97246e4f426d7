using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// What diffusers' Stable Diffusion XL pipelines (txt2img, img2img / refiner, inpaint; 0.25.1) share: the components
/// (<c>vae</c>, <c>text_encoder</c> and <c>tokenizer</c> (absent in the refiner), <c>text_encoder_2</c>,
/// <c>tokenizer_2</c>, <c>unet</c>, <c>scheduler</c>), the two-encoder <see cref="EncodePrompt"/>, the micro-conditioning
/// checks, the loop context with the added conditioning (<c>add_text_embeds</c>, <c>add_time_ids</c>) and the VAE decode
/// with <c>force_upcast</c>.
/// </summary>
public abstract partial class StableDiffusionXLPipelineBase : DiffusionPipeline, IStableDiffusionFamilyPipeline
{
    /// <summary>The components every SDXL folder needs, in model_index.json's names (the base also needs <c>text_encoder</c>).</summary>
    public static readonly IReadOnlyList<string> RequiredComponents = ["vae", "text_encoder_2", "tokenizer_2", "unet", "scheduler"];

    private IScheduler _scheduler;
    private IVae _vae;

    /// <summary>
    /// Builds the pipeline; <paramref name="textEncoder"/> and <paramref name="tokenizer"/> are both given (base) or both
    /// null (refiner). <paramref name="forceZerosForEmptyPrompt"/> and <paramref name="requiresAestheticsScore"/> are the
    /// model_index.json options of the same names.
    /// </summary>
    protected StableDiffusionXLPipelineBase(IVae vae, CLIPTextModel? textEncoder, CLIPTokenizer? tokenizer,
        CLIPTextModelWithProjection textEncoder2, CLIPTokenizer tokenizer2, UNet2DConditionModel unet, IScheduler scheduler,
        bool forceZerosForEmptyPrompt, bool requiresAestheticsScore, Action<string>? log)
    {
        ArgumentNullException.ThrowIfNull(vae);
        ArgumentNullException.ThrowIfNull(textEncoder2);
        ArgumentNullException.ThrowIfNull(tokenizer2);
        ArgumentNullException.ThrowIfNull(unet);
        ArgumentNullException.ThrowIfNull(scheduler);
        if ((textEncoder is null) != (tokenizer is null))
            throw new ArgumentException($"{GetType().Name}: pass both text_encoder and tokenizer (SDXL base) or neither (refiner)");
        int hidden = (textEncoder?.Config.HiddenSize ?? 0) + textEncoder2.Config.HiddenSize;
        foreach (int dim in unet.Config.CrossAttentionDim.Distinct())
            if (dim != hidden)
                throw new ConfigException(
                    $"{GetType().Name}: the text encoders' hidden sizes add up to {hidden}, but the UNet's cross_attention_dim is {dim}: they do not fit this UNet")
                { Key = "cross_attention_dim" };
        if (unet.Config.AdditionEmbedType != "text_time")
            throw new ConfigException(
                $"{GetType().Name}: the UNet's addition_embed_type is \"{unet.Config.AdditionEmbedType}\"; SDXL pipelines need \"text_time\"")
            { Key = "addition_embed_type" };
        _vae = vae;
        TextEncoder = textEncoder;
        Tokenizer = tokenizer;
        TextEncoder2 = textEncoder2;
        Tokenizer2 = tokenizer2;
        Unet = unet;
        ForceZerosForEmptyPrompt = forceZerosForEmptyPrompt;
        RequiresAestheticsScore = requiresAestheticsScore;
        Log = log ?? StableDiffusionPipelineBase.DefaultLog;
        _scheduler = scheduler;
        Vae.SetEvalMode();
        TextEncoder?.eval();
        TextEncoder2.eval();
        Unet.eval();
    }

    /// <summary>The VAE (the pipeline disposes the one it holds; one that is replaced is left to the caller).</summary>
    public IVae Vae
    {
        get => _vae;
        set => _vae = PipelineSteps.InEvalMode(value);
    }

    /// <summary>The first text encoder (CLIP ViT-L); null in the refiner.</summary>
    public CLIPTextModel? TextEncoder { get; }

    /// <summary>The first tokenizer; null in the refiner.</summary>
    public CLIPTokenizer? Tokenizer { get; }

    /// <summary>The second text encoder (OpenCLIP bigG with projection): its penultimate states and its pooled <c>text_embeds</c>.</summary>
    public CLIPTextModelWithProjection TextEncoder2 { get; }

    /// <summary>The second tokenizer (its own pad token).</summary>
    public CLIPTokenizer Tokenizer2 { get; }

    /// <summary>The UNet (addition_embed_type "text_time").</summary>
    public UNet2DConditionModel Unet { get; }

    /// <summary>
    /// diffusers' <c>enable_freeu(s1, s2, b1, b2)</c>: FreeU on the pipeline's UNet (<see cref="UNet2DConditionModel.EnableFreeU"/>;
    /// SD 1.5 (0.9, 0.2, 1.2, 1.4), SD 2.1 (0.9, 0.2, 1.1, 1.2), SDXL (0.6, 0.4, 1.1, 1.2) in diffusers' documentation). The
    /// setting lives on the UNet, so every pipeline sharing it (a borrowing pipeline of the generation service) sees it.
    /// </summary>
    public void EnableFreeU(double s1, double s2, double b1, double b2) => Unet.EnableFreeU(s1, s2, b1, b2);

    /// <summary>diffusers' <c>disable_freeu()</c>: FreeU off on the pipeline's UNet (<see cref="UNet2DConditionModel.DisableFreeU"/>).</summary>
    public void DisableFreeU() => Unet.DisableFreeU();

    /// <summary>model_index.json's <c>force_zeros_for_empty_prompt</c>: with no negative prompt, the negative embeddings are zeros.</summary>
    public bool ForceZerosForEmptyPrompt { get; }

    /// <summary>model_index.json's <c>requires_aesthetics_score</c> (refiner): time ids end with an aesthetic score, not the target size.</summary>
    public bool RequiresAestheticsScore { get; }

    /// <summary>
    /// The scheduler; swap it like diffusers' <c>pipe.scheduler = X.from_config(pipe.scheduler.config)</c>. The pipeline
    /// disposes the scheduler it holds when it is disposed; one that is replaced is left to the caller, as a replaced VAE
    /// (<c>using var old = pipe.Scheduler; pipe.Scheduler = X.FromConfig(old.Config);</c>).
    /// </summary>
    public IScheduler Scheduler
    {
        get => _scheduler;
        set => _scheduler = value ?? throw new ArgumentNullException(nameof(value));
    }

    /// <summary>Where warnings go (truncated prompts). Default: standard error.</summary>
    public Action<string> Log { get; set; }

    /// <summary><c>2 ** (len(vae.config.block_out_channels) - 1)</c>.</summary>
    public int VaeScaleFactor => 1 << (Vae.BlockOutChannels.Count - 1);

    /// <summary>The SDXL VAE's latents (their tiny VAE: <see cref="VaeLoader.TaesdXlId"/>).</summary>
    public LatentSpace LatentSpace => LatentSpace.StableDiffusionXL;

    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Components
    {
        get
        {
            var c = new Dictionary<string, object>
            {
                ["vae"] = Vae, ["text_encoder_2"] = TextEncoder2, ["tokenizer_2"] = Tokenizer2, ["unet"] = Unet, ["scheduler"] = Scheduler,
            };
            if (TextEncoder is not null) c["text_encoder"] = TextEncoder;
            if (Tokenizer is not null) c["tokenizer"] = Tokenizer;
            if (ImageEncoder is not null) c["image_encoder"] = ImageEncoder;
            return c;
        }
    }

    /// <summary>For tests: called with (name, step or -1, tensor) for every intermediate diffusers' golden run records.</summary>
    internal Action<string, int, Tensor>? Trace { get; set; }

    private protected void Record(string name, Tensor t, int step = -1) => Trace?.Invoke(name, step, t);

    /// <summary><c>do_classifier_free_guidance</c>: guidance_scale &gt; 1 and no guidance embedding in the UNet.</summary>
    protected bool DoClassifierFreeGuidance(double guidanceScale) => PipelineSteps.DoClassifierFreeGuidance(Unet, guidanceScale);

    /// <summary>Checks the steps / guidance arguments shared by every SDXL call.</summary>
    protected void CheckCommon(int numInferenceSteps, int numImagesPerPrompt, double guidanceScale, double guidanceRescale, double eta) =>
        PipelineSteps.CheckCommon(ClassName, Scheduler, numInferenceSteps, numImagesPerPrompt, guidanceScale, guidanceRescale, eta);

    /// <summary>
    /// diffusers' <c>denoising_end</c>: keeps the timesteps <c>t ≥ int(round(T − d · T))</c> (T = num_train_timesteps), so
    /// a refiner can take over with <c>denoising_start = d</c>; from 1 on, every timestep (diffusers applies it only in (0, 1)).
    /// </summary>
    protected Tensor ApplyDenoisingEnd(Tensor timesteps, double? denoisingEnd)
    {
        if (denoisingEnd is not double d || d >= 1) return timesteps;
        int cutoff = DiscreteTimestepCutoff(d);
        using var keep = timesteps.ge(cutoff).sum();
        return timesteps.narrow(0, 0, keep.item<long>());
    }

    /// <summary><c>int(round(T − d · T))</c> with T = num_train_timesteps (Python's round: half to even).</summary>
    protected int DiscreteTimestepCutoff(double fraction) => PipelineSteps.DiscreteTimestepCutoff(Scheduler, fraction);

    /// <summary>
    /// One row of micro-conditioning numbers as a [1, n] tensor (diffusers' <c>_get_add_time_ids</c>), after checking that
    /// <c>addition_time_embed_dim · n + projection_dim</c> is the UNet's <c>projection_class_embeddings_input_dim</c>.
    /// </summary>
    protected Tensor TimeIdsRow(IReadOnlyList<double> values, ScalarType dtype)
    {
        int passed = (Unet.Config.AdditionTimeEmbedDim ?? 0) * values.Count + TextEncoder2.Config.ProjectionDim;
        int expected = Unet.Config.ProjectionClassEmbeddingsInputDim ?? 0;
        if (passed != expected)
        {
            string hint = (passed - expected) == Unet.Config.AdditionTimeEmbedDim
                ? " Set requires_aesthetics_score to true in model_index.json (the UNet takes an aesthetic score instead of the target size)."
                : (expected - passed) == Unet.Config.AdditionTimeEmbedDim
                    ? " Set requires_aesthetics_score to false in model_index.json, or use StableDiffusionXLImg2ImgPipeline (the UNet takes original size, crop and target size)."
                    : " The model has an incorrect config: check the UNet's addition_time_embed_dim and text_encoder_2's projection_dim.";
            throw new ConfigException(
                $"{ClassName}: the UNet expects an added time embedding vector of length {expected} (projection_class_embeddings_input_dim), " +
                $"but {values.Count} time ids make one of length {passed}.{hint}")
            { Key = "projection_class_embeddings_input_dim" };
        }
        return torch.tensor(values.Select(v => (float)v).ToArray(), new long[] { 1, values.Count }).to(dtype);
    }

    /// <summary>
    /// Runs <paramref name="use"/> with the VAE in float32 when its config has <c>force_upcast</c> and its weights are fp16
    /// (the SDXL VAE overflows in fp16) or bf16; then puts the VAE back in its dtype; otherwise runs it as is: diffusers
    /// 0.25.1 encodes img2img / inpaint images with the whole VAE in float32 when <c>force_upcast</c>
    /// (<c>prepare_latents</c>). The decode upcasts otherwise (<see cref="Finish"/>).
    /// </summary>
    protected T WithUpcastVae<T>(Func<T> use)
    {
        var dtype = Vae.DType;
        bool lowPrecision = dtype is ScalarType.Float16 or ScalarType.BFloat16;
        if (Vae is not AutoencoderKL { ForceUpcast: true } kl || !lowPrecision)
            return use();
        kl.to(ScalarType.Float32);
        try
        {
            return use();
        }
        finally
        {
            kl.to(dtype);
        }
    }

    /// <summary>
    /// The txt2img initial latents (diffusers' <c>prepare_latents</c>): noise drawn in <paramref name="shape"/>, or the
    /// caller's <paramref name="latents"/> in <paramref name="dtype"/> on the UNet's device, times the initial sigma.
    /// </summary>
    private protected Tensor InitialLatents(Tensor? latents, long[] shape, ScalarType dtype, IReadOnlyList<Generator>? generators)
    {
        var noise = PipelineSteps.LatentsOrNoise(ClassName, latents, shape, generators, dtype, Unet.Device, castGiven: true);
        Record("latent_noise", noise);
        return noise * Scheduler.InitNoiseSigma;
    }

    /// <summary>
    /// <c>retrieve_latents(vae.encode(image), generator)</c> times <c>scaling_factor</c>, one image per generator when
    /// there is a list; the traced names are <paramref name="traceName"/><c>_mean</c> / <c>_std</c>.
    /// </summary>
    protected Tensor EncodeVaeImage(Tensor image, IReadOnlyList<Generator>? generators, string traceName)
    {
        using var scope = torch.NewDisposeScope();
        var dtype = image.dtype;
        Tensor latents = WithUpcastVae(() => PipelineSteps.RetrieveVaeLatents(Vae, image.to(Vae.DType), generators,
            (name, t) => Record(traceName + "_" + name, t))).to(dtype);
        return (Vae.ScalingFactor * latents).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The loop's context: timesteps, initial latents, scheduler options and the named tensors the UNet and the step-end
    /// callback see: <c>prompt_embeds</c>, <c>add_text_embeds</c> and <c>add_time_ids</c> (with guidance the [negative;
    /// prompt] batches) and, with guidance, <c>negative_prompt_embeds</c>, <c>negative_pooled_prompt_embeds</c> and
    /// <c>negative_add_time_ids</c>; with an IP-Adapter image, its embeds (<see cref="EncodeIPAdapterImage"/>) as the UNet's
    /// <c>added_cond_kwargs["image_embeds"]</c>.
    /// </summary>
    protected DenoisingContext LoopContext(Tensor timesteps, Tensor latents, StableDiffusionXLPromptEmbeddings embeds,
        Tensor unetTimeIds, Tensor? negativeAddTimeIds, bool cfg, double eta, IReadOnlyList<Generator>? generators,
        StepEndCallback? callbackOnStepEnd, IProgress<PipelineProgress>? progress, CancellationToken cancellationToken,
        Tensor? imageEmbeds = null)
    {
        var ctx = PipelineSteps.LoopContext(ClassName, Scheduler, timesteps, latents, embeds.PromptEmbeds, embeds.NegativePromptEmbeds, cfg,
            eta, generators, callbackOnStepEnd, progress, cancellationToken, Trace);
        ctx.Tensors[GuidedDenoisingLoop.TextEmbedsKey] =
            cfg ? torch.cat(new[] { embeds.NegativePooledPromptEmbeds!, embeds.PooledPromptEmbeds }) : embeds.PooledPromptEmbeds;
        ctx.Tensors[GuidedDenoisingLoop.TimeIdsKey] = unetTimeIds;
        if (imageEmbeds is not null) ctx.Tensors[GuidedDenoisingLoop.ImageEmbedsKey] = imageEmbeds;
        Record("unet_encoder_hidden_states", ctx.Tensors[GuidedDenoisingLoop.PromptEmbedsKey]);
        Record("unet_added_text_embeds", ctx.Tensors[GuidedDenoisingLoop.TextEmbedsKey]);
        Record("unet_added_time_ids", unetTimeIds);
        if (cfg)
        {
            ctx.Tensors["negative_prompt_embeds"] = embeds.NegativePromptEmbeds!;
            ctx.Tensors["negative_pooled_prompt_embeds"] = embeds.NegativePooledPromptEmbeds!;
            if (negativeAddTimeIds is not null) ctx.Tensors["negative_add_time_ids"] = negativeAddTimeIds;
        }
        return ctx;
    }

    /// <summary>
    /// Decodes (unless the output is latents) and postprocesses, as diffusers 0.25.1's SDXL pipelines decode: with
    /// <c>force_upcast</c> in the VAE config and fp16 VAE weights (<c>needs_upcasting</c>; a bf16 VAE decodes in bf16), the
    /// VAE is upcast by <c>upcast_vae</c> (<see cref="AutoencoderKL.UpcastVae"/>: float32 but for post_quant_conv,
    /// decoder.conv_in and decoder.mid_block, which stay fp16), the latents are cast to post_quant_conv's dtype and then
    /// divided by the scaling factor, and the VAE goes back to fp16 after. The SDXL VAE overflows in fp16 only in its up
    /// blocks, which run in float32.
    /// </summary>
    protected ImagePipelineOutput Finish(Tensor latents, OutputType outputType) =>
        PipelineSteps.Finish(latents, outputType, l => PipelineSteps.DecodeUpcasting(Vae, l, Vae.ScalingFactor), (name, t) => Record(name, t));
}
