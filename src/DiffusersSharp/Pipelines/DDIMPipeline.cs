using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// diffusers' <c>DDIMPipeline</c>: like <see cref="DDPMPipeline"/> but always with a <see cref="DDIMScheduler"/>
/// (any other scheduler given is converted with <c>DDIMScheduler.from_config(scheduler.config)</c>, as diffusers
/// does), with <c>eta</c> (0 = DDIM, 1 = DDPM-like) and <c>use_clipped_model_output</c>.
/// </summary>
public sealed class DDIMPipeline : UnconditionalImagePipeline
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>model_index.json</c>.</summary>
    public const string Name = "DDIMPipeline";

    /// <summary>
    /// A pipeline of <paramref name="unet"/> and <paramref name="scheduler"/>, converted to a DDIMScheduler from its
    /// config unless it is one; the pipeline owns both (a converted scheduler is disposed at once, the conversion kept).
    /// </summary>
    public DDIMPipeline(UNet2DModel unet, IScheduler scheduler) : base(unet, ToDdim(scheduler)) { }

    /// <inheritdoc/>
    public override string ClassName => Name;

    /// <inheritdoc/>
    public override int DefaultNumInferenceSteps => 50;

    /// <summary>The scheduler, always a <see cref="DDIMScheduler"/>.</summary>
    public DDIMScheduler DdimScheduler => (DDIMScheduler)Scheduler;

    /// <inheritdoc/>
    protected override IScheduler ValidateScheduler(IScheduler scheduler) => ToDdim(scheduler);

    /// <summary>
    /// diffusers' <c>DDIMScheduler.from_config(scheduler.config)</c>: a DDIMScheduler as it is (the same config), any other
    /// converted. The scheduler was handed to the pipeline (constructor, <see cref="UnconditionalImagePipeline.Scheduler"/>),
    /// so one that is converted is disposed here: the pipeline holds, and disposes, only the conversion.
    /// </summary>
    private static DDIMScheduler ToDdim(IScheduler scheduler)
    {
        if (scheduler is DDIMScheduler ddim) return ddim;
        var converted = DDIMScheduler.FromConfig(scheduler.Config);
        scheduler.Dispose();
        return converted;
    }

    /// <summary>
    /// Loads <c>unet/</c> and <c>scheduler/</c> of a pipeline folder. diffusers' <c>DDIMPipeline.from_pretrained</c>
    /// also accepts a DDPMPipeline folder (the scheduler is converted), and so does this. Every component is loaded
    /// with <paramref name="options"/> (variant, dtype, device, revision, cache and Hub settings).
    /// </summary>
    public static new DDIMPipeline FromPretrained(string idOrPath, LoadOptions? options = null) =>
        LoadComponents(idOrPath, options, Name, [DDPMPipeline.Name], (unet, scheduler) => new DDIMPipeline(unet, scheduler));

    /// <summary>
    /// Generates <paramref name="batchSize"/> images (diffusers' <c>__call__</c>, default 50 steps).
    /// <paramref name="eta"/> scales the added noise (drawn from the generator only when eta &gt; 0);
    /// <paramref name="useClippedModelOutput"/> is passed to <c>DDIMScheduler.step</c> (null = its default, false).
    /// <paramref name="callbackOnStepEnd"/> sees (and may replace) the latents after every step.
    /// </summary>
    public ImagePipelineOutput Generate(int batchSize = 1, int numInferenceSteps = 50, double eta = 0.0,
        bool? useClippedModelOutput = null, long? seed = null, Generator? generator = null,
        OutputType outputType = OutputType.Pil, Tensor? latents = null,
        IProgress<PipelineProgress>? progress = null, CancellationToken cancellationToken = default,
        StepEndCallback? callbackOnStepEnd = null)
    {
        if (double.IsNaN(eta) || eta < 0)
            throw new DiffusersException($"{Name}: eta must be a number ≥ 0 (0 = DDIM, 1 = DDPM-like), got {eta}");
        return Run(batchSize, numInferenceSteps, seed, generator, latents, outputType,
            new StepOptions { Eta = eta, UseClippedModelOutput = useClippedModelOutput ?? false }, progress, cancellationToken,
            callbackOnStepEnd);
    }
}
