using DiffusersSharp.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// What one pipeline call hands its <see cref="DenoisingLoop"/>: the scheduler (timesteps already set), the timesteps
/// the loop runs (img2img's start at its strength), the options every <c>scheduler.Step</c> gets (generators, eta), the
/// named tensors of the loop (<c>latents</c> and the pipeline's conditioning, see <see cref="StepEndCallback"/>), the
/// per-step callback, progress and cancellation. The loop owns <c>latents</c>: each one is freed once replaced and the
/// last is returned to the caller; the other named tensors stay the caller's.
/// </summary>
public sealed class DenoisingContext
{
    /// <summary>The name of the key the loop keeps the current latents under.</summary>
    public const string LatentsKey = "latents";

    /// <summary>
    /// A context for <paramref name="pipeline"/>'s loop over <paramref name="timesteps"/>, starting from <paramref
    /// name="latents"/> (handed over: the loop owns them).
    /// </summary>
    public DenoisingContext(string pipeline, IScheduler scheduler, Tensor timesteps, Tensor latents)
    {
        Pipeline = pipeline;
        Scheduler = scheduler;
        Timesteps = timesteps;
        using (torch.NewDisposeScope())
            TimestepValues = timesteps.to(ScalarType.Float64, CPU).data<double>().ToArray();
        Tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal) { [LatentsKey] = latents };
    }

    /// <summary>The pipeline's class name, for messages.</summary>
    public string Pipeline { get; }

    /// <summary>The scheduler every step calls.</summary>
    public IScheduler Scheduler { get; }

    /// <summary>The timesteps of the loop, one UNet call each (a tail of <see cref="IScheduler.Timesteps"/> for img2img).</summary>
    public Tensor Timesteps { get; }

    /// <summary><see cref="Timesteps"/> as doubles.</summary>
    public IReadOnlyList<double> TimestepValues { get; }

    /// <summary>What every <c>scheduler.Step</c> of the loop receives (diffusers' <c>extra_step_kwargs</c>).</summary>
    public StepOptions StepOptions { get; init; } = StepOptions.Default;

    /// <summary>The loop's named tensors: <c>latents</c> and the pipeline's conditioning, as <see cref="StepEndCallback"/> sees them.</summary>
    public IDictionary<string, Tensor> Tensors { get; }

    /// <summary>The current latents.</summary>
    public Tensor Latents => Tensors[LatentsKey];

    /// <summary>The named tensor <paramref name="name"/> (the callback may have replaced it).</summary>
    public Tensor Get(string name) => Tensors.TryGetValue(name, out var t) ? t
        : throw new DiffusersException($"{Pipeline}: the denoising loop has no tensor named \"{name}\" (did a step-end callback remove it?)");

    /// <summary>
    /// diffusers' <c>callback_on_step_end</c>: called after every step with the named tensors, which it may replace;
    /// null: none.
    /// </summary>
    public StepEndCallback? CallbackOnStepEnd { get; init; }

    /// <summary>Receives one report per step; null: none.</summary>
    public IProgress<PipelineProgress>? Progress { get; init; }

    /// <summary>Stops the loop between steps (an <see cref="OperationCanceledException"/>).</summary>
    public CancellationToken CancellationToken { get; init; }

    /// <summary>For tests: called with (name, step, tensor) for the intermediates diffusers' golden runs record.</summary>
    internal Action<string, int, Tensor>? Trace { get; init; }

    internal void Record(string name, int step, Tensor t) => Trace?.Invoke(name, step, t);
}
