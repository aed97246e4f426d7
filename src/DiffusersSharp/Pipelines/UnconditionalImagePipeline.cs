using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// The shared body of diffusers' unconditional image pipelines (DDPM, DDIM): a <see cref="UNet2DModel"/> and
/// a scheduler; <c>randn_tensor</c> of [B, C, H, W] from the generator, then for each timestep
/// <c>unet(image, t).sample</c> and <c>scheduler.step(...)</c>, then <c>(image / 2 + 0.5).clamp(0, 1)</c>.
/// Runs under <c>torch.no_grad()</c> with the model in eval mode; each step's temporaries are freed by a
/// dispose scope, so memory stays flat over any number of steps.
/// </summary>
public abstract class UnconditionalImagePipeline : DiffusionPipeline
{
    private IScheduler _scheduler;

    /// <summary>
    /// A pipeline of <paramref name="unet"/> and <paramref name="scheduler"/>; the pipeline owns them from now on and
    /// disposes them when it is disposed.
    /// </summary>
    protected UnconditionalImagePipeline(UNet2DModel unet, IScheduler scheduler)
    {
        ArgumentNullException.ThrowIfNull(unet);
        ArgumentNullException.ThrowIfNull(scheduler);
        Unet = unet;
        _scheduler = scheduler;
        Unet.eval();
    }

    /// <summary>
    /// The <c>FromPretrained</c> of the unconditional pipelines: resolves <paramref name="idOrPath"/> with
    /// <paramref name="options"/>, checks that model_index.json names <paramref name="className"/> (or one of
    /// <paramref name="alsoAccepted"/>), loads <c>unet/</c> and <c>scheduler/</c> with the same options and builds the
    /// pipeline with <paramref name="create"/> (the UNet and the scheduler are disposed when that fails).
    /// </summary>
    protected static TPipeline LoadComponents<TPipeline>(string idOrPath, LoadOptions? options, string className,
        string[] alsoAccepted, Func<UNet2DModel, IScheduler, TPipeline> create)
    {
        string folder = PipelinePaths.Resolve(idOrPath, options);
        CheckClass(folder, className, alsoAccepted);
        return PipelineSteps.DisposeOnFailure(loaded =>
        {
            var unet = loaded.Kept(UNet2DModel.FromPretrained(PipelinePaths.Component(folder, "unet"), null, options));
            var scheduler = loaded.Kept(SchedulerFactory.FromPretrained(PipelinePaths.Component(folder, "scheduler"), null, options));
            return create(unet, scheduler);
        });
    }

    /// <summary>The number of steps <c>Generate</c> runs by default (diffusers' <c>num_inference_steps</c> default).</summary>
    public abstract int DefaultNumInferenceSteps { get; }

    /// <summary>The denoising model.</summary>
    public UNet2DModel Unet { get; }

    /// <summary>
    /// The scheduler; swap it like diffusers' <c>pipe.scheduler = X.from_config(pipe.scheduler.config)</c>. The pipeline
    /// disposes the scheduler it holds when it is disposed; one that is replaced is left to the caller, as a replaced
    /// model (<c>using var old = pipe.Scheduler; pipe.Scheduler = X.FromConfig(old.Config);</c>).
    /// </summary>
    public IScheduler Scheduler
    {
        get => _scheduler;
        set => _scheduler = ValidateScheduler(value ?? throw new ArgumentNullException(nameof(value)));
    }

    /// <summary>Checks (and may convert) a scheduler assigned to <see cref="Scheduler"/>.</summary>
    protected virtual IScheduler ValidateScheduler(IScheduler scheduler) => scheduler;

    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Components =>
        new Dictionary<string, object> { ["unet"] = Unet, ["scheduler"] = Scheduler };

    /// <summary>[B, in_channels, H, W] from the UNet config's <c>sample_size</c>.</summary>
    protected long[] ImageShape(int batchSize)
    {
        var cfg = Unet.Config;
        int[] size = cfg.SampleSize ?? throw new DiffusersException(
            $"{ClassName}: the UNet config has no sample_size, so the image size is unknown");
        (long h, long w) = size.Length switch
        {
            1 => (size[0], size[0]),
            2 => (size[0], size[1]),
            _ => throw new DiffusersException($"{ClassName}: UNet sample_size must be one int or [height, width], got [{string.Join(", ", size)}]"),
        };
        // a config may hold such a size (diffusers loads it too, and its pipeline then fails in the UNet's up path)
        long factor = 1L << Unet.NumUpsamplers;
        if (h % factor != 0 || w % factor != 0)
            throw new DiffusersException(
                $"{ClassName}: the UNet config's sample_size {(size.Length == 1 ? $"{size[0]}" : $"[{size[0]}, {size[1]}]")} is not a multiple of {factor} (2^{Unet.NumUpsamplers}, for {Unet.NumUpsamplers} upsampler{(Unet.NumUpsamplers == 1 ? "" : "s")}): like diffusers', UNet2DModel's up path does not resize to the skip connections, so it cannot generate {h}×{w} images")
            { Key = "sample_size" };
        return [batchSize, cfg.InChannels, h, w];
    }

    /// <summary>Argument checks shared by the pipelines (values named in the message).</summary>
    protected void Validate(int batchSize, int numInferenceSteps)
    {
        if (batchSize <= 0)
            throw new DiffusersException($"{ClassName}: batch size must be at least 1, got {batchSize}");
        if (!TakesClassLabels && Unet.Config is { ClassEmbedType: not null } or { NumClassEmbeds: not null })
            throw new DiffusersException(
                $"{ClassName}: the UNet is class-conditional (config key {(Unet.Config.ClassEmbedType is { } t ? $"class_embed_type '{t}'" : $"num_class_embeds {Unet.Config.NumClassEmbeds}")}) and needs class labels, which {ClassName} does not pass (diffusers fails the same way: \"class_labels should be provided when doing class conditioning\")")
            { Key = Unet.Config.ClassEmbedType is not null ? "class_embed_type" : "num_class_embeds" };
        if (TakesClassLabels && Unet.Config.ClassEmbedType is { } type)
            throw new DiffusersException(
                $"{ClassName}: the UNet's class_embed_type '{type}' is not supported: {ClassName} passes class labels only to a UNet with num_class_embeds and no class_embed_type (as diffusers' prepare_class_labels)")
            { Key = "class_embed_type" };
        int max = Scheduler.NumTrainTimesteps;
        if (numInferenceSteps <= 0 || numInferenceSteps > max)
            throw new DiffusersException(
                $"{ClassName}: num_inference_steps must be between 1 and num_train_timesteps = {max} of the {Scheduler.ClassName}, got {numInferenceSteps}");
    }

    /// <summary>
    /// The pipeline passes class labels to a UNet with <c>num_class_embeds</c> (diffusers' ConsistencyModelPipeline);
    /// the others refuse a class-conditional UNet.
    /// </summary>
    protected virtual bool TakesClassLabels => false;

    /// <summary>
    /// For tests: when set, every noise draw of the scheduler steps calls it instead of the generator (the replay of
    /// recorded noise through <see cref="StepOptions.VarianceNoise"/>).
    /// </summary>
    internal Func<long[], Tensor>? ReplayNoise { get; set; }

    /// <summary>
    /// Draws (or takes) the initial noise, then runs the shared <see cref="DenoisingLoop"/> (<c>unet(scale_model_input(image,
    /// t), t)</c>, then <c>scheduler.step</c> with <paramref name="stepOptions"/> plus the generator) and makes the output.
    /// <paramref name="latents"/> replaces the initial noise draw when given. <paramref name="timesteps"/>, when given,
    /// replaces the <paramref name="numInferenceSteps"/> schedule (<c>set_timesteps(timesteps=...)</c>). On a pipeline that
    /// <see cref="TakesClassLabels"/> and a UNet with <c>num_class_embeds</c>, <paramref name="classLabels"/> (or, when
    /// null, <c>torch.randint(0, num_class_embeds, (B,))</c> drawn after the initial noise) go to every UNet call.
    /// </summary>
    protected ImagePipelineOutput Run(int batchSize, int numInferenceSteps, long? seed, Generator? generator,
        Tensor? latents, OutputType outputType, StepOptions stepOptions, IProgress<PipelineProgress>? progress,
        CancellationToken cancellationToken, StepEndCallback? callbackOnStepEnd, IReadOnlyList<long>? timesteps = null,
        IReadOnlyList<long>? classLabels = null)
    {
        Validate(batchSize, timesteps?.Count ?? numInferenceSteps);
        if (seed is not null && generator is not null)
            throw new DiffusersException($"{ClassName}: pass either a seed or a generator, not both");
        using var ownGenerator = seed is { } s ? new Generator((ulong)s) : null;
        var gen = generator ?? ownGenerator;
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var (device, dtype) = ModelPlacement();
        long[] shape = ImageShape(batchSize);

        if (timesteps is not null) Scheduler.SetTimesteps(timesteps, device);
        else Scheduler.SetTimesteps(numInferenceSteps, device);
        Tensor image;
        if (latents is not null)
        {
            if (!latents.shape.SequenceEqual(shape))
                throw new DiffusersException(
                    $"{ClassName}: latents have shape [{string.Join(", ", latents.shape)}], expected [{string.Join(", ", shape)}]");
            image = latents.to(dtype, device, copy: true);
        }
        // diffusers' randn_tensor(shape, generator) draws float32 on the generator's device; the model's dtype follows
        else image = Runtime.TorchUtils.RandnTensor(shape, gen, ScalarType.Float32, device).to(dtype);
        // init_noise_sigma is 1 for DDPM and DDIM (diffusers' unconditional pipelines leave it out); sigma-based
        // schedulers need it, so that any scheduler can be swapped in
        image = image * Scheduler.InitNoiseSigma;
        var labels = PrepareClassLabels(batchSize, classLabels, gen, device);

        var ctx = new DenoisingContext(ClassName, Scheduler, Scheduler.Timesteps, image)
        {
            StepOptions = stepOptions with { Generators = gen is null ? null : [gen], VarianceNoise = ReplayNoise },
            CallbackOnStepEnd = callbackOnStepEnd,
            Progress = progress,
            CancellationToken = cancellationToken,
        };
        var final = new UNet2DDenoisingLoop(Unet, labels).Run(ctx);
        return MakeOutput(LatentsToImage(final), outputType);
    }

    /// <summary>
    /// The image in [-1, 1] of the final sample (called inside the run's dispose scope): the sample itself for the pixel
    /// pipelines; LDMPipeline decodes its latents with the VQ-VAE.
    /// </summary>
    protected virtual Tensor LatentsToImage(Tensor latents) => latents;

    // diffusers' prepare_class_labels: the given labels, or randint(0, num_class_embeds, (B,)) from the generator (after
    // the initial noise); none for a UNet without num_class_embeds (given labels are then not used)
    private Tensor? PrepareClassLabels(int batchSize, IReadOnlyList<long>? classLabels, Generator? gen, Device device)
    {
        if (!TakesClassLabels || Unet.Config.NumClassEmbeds is not int n) return null;
        if (classLabels is null)
            return torch.randint(0, n, [batchSize], ScalarType.Int64, generator: gen).to(device);
        if (classLabels.Count != batchSize)
            throw new DiffusersException(
                $"{ClassName}: class_labels has {classLabels.Count} label{(classLabels.Count == 1 ? "" : "s")}, expected one per image (batch size {batchSize})");
        foreach (long label in classLabels)
            if (label < 0 || label >= n)
                throw new DiffusersException(
                    $"{ClassName}: class label {label} is out of range: the UNet has num_class_embeds {n} (labels 0 to {n - 1})")
                { Key = "num_class_embeds" };
        return torch.tensor(classLabels.ToArray(), ScalarType.Int64, device);
    }

    private (Device device, ScalarType dtype) ModelPlacement() => (Unet.Device, Unet.DType);

    /// <summary>Denormalizes the final sample into the requested output.</summary>
    protected static ImagePipelineOutput MakeOutput(Tensor image, OutputType outputType)
    {
        using var scope = torch.NewDisposeScope();
        // float32 before denormalizing, so a bf16/fp16 model's result is not rounded once more
        var x = ImageProcessor.Denormalize(image.to(ScalarType.Float32));
        switch (outputType)
        {
            case OutputType.Pt:
                return new ImagePipelineOutput(tensor: x.to(ScalarType.Float32).cpu().DetachFromDisposeScope());
            case OutputType.Np:
                return new ImagePipelineOutput(array: ImageProcessor.PtToNumpy(x).DetachFromDisposeScope());
            default:
                return new ImagePipelineOutput(images: ImageProcessor.NumpyToImages(ImageProcessor.PtToNumpy(x)));
        }
    }
}
