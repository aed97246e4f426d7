using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// The surface every diffusers scheduler shares (diffusers' <c>SchedulerMixin</c> + the per-class methods a
/// pipeline calls). Timesteps are passed as <see cref="double"/> (every int64 timestep below 2^53 and every
/// float32 timestep is exact in a double) or as a 0-dim tensor taken from <see cref="Timesteps"/>.
/// <para>A scheduler owns the tensors it holds (tables, timesteps, sigmas, a solver's history) and frees them on
/// <see cref="IDisposable.Dispose"/>; after that its operations and tensors throw <see cref="ObjectDisposedException"/>.
/// Whoever makes a scheduler disposes it (<c>using var s = DDPMScheduler.FromConfig(c);</c>), unless it hands it to a
/// pipeline, which disposes the scheduler it holds when it is disposed; a scheduler that replaces another in a pipeline
/// (<c>pipe.Scheduler = …</c>) leaves the replaced one to the caller, as a replaced VAE (docs/ARCHITECTURE.md, "Tensor ownership").</para>
/// </summary>
public interface IScheduler : IDisposable
{
    /// <summary>The diffusers class name, e.g. <c>DDPMScheduler</c>.</summary>
    string ClassName { get; }

    /// <summary>The typed config the scheduler was built from.</summary>
    SchedulerConfig Config { get; }

    /// <summary><c>num_train_timesteps</c>.</summary>
    int NumTrainTimesteps { get; }

    /// <summary>Model calls per step of the solver (diffusers' <c>order</c>: 1, Heun 2, PNDM/DPM-Solver per config).</summary>
    int Order { get; }

    /// <summary>The timesteps of the loop, in the library's dtype (int64, or float32 for the sigma-based Euler/LMS/Heun).</summary>
    Tensor Timesteps { get; }

    /// <summary>The steps requested by the last <see cref="SetTimesteps(int, Device?)"/> (null before).</summary>
    int? NumInferenceSteps { get; }

    /// <summary>
    /// diffusers' <c>scheduler.sigmas</c>: the sigma table of the schedulers that have one (the sigma-space and the
    /// VP-solver classes, after <see cref="SetTimesteps(int, Device?)"/>); null where diffusers' class has no
    /// <c>sigmas</c> (<c>hasattr(scheduler, "sigmas")</c> is false: DDIM, DDPM, PNDM, LCM).
    /// </summary>
    Tensor? Sigmas => null;

    /// <summary>The standard deviation of the initial noise: multiply the first <c>randn</c> draw by it.</summary>
    double InitNoiseSigma { get; }

    /// <summary>
    /// diffusers' names of the <c>step</c> keyword arguments this scheduler reads from <see cref="StepOptions"/>
    /// (e.g. <c>generator</c>, <c>eta</c>, <c>s_churn</c>); what a caller may ask before passing an option that
    /// would otherwise be ignored.
    /// </summary>
    IReadOnlySet<string> StepArguments { get; }

    /// <summary>
    /// Why a step of this scheduler at <paramref name="timestep"/> turns finite inputs into NaN or ±Inf under its config
    /// (diffusers' arithmetic does the same there), or null where nothing in the config does. The denoising loop names it
    /// when the latents stop being finite, right after the step that made them so; a class with such a case overrides
    /// <c>SchedulerBase.NonFiniteCauseCore</c>. The stateful classes read the step just taken from their step counter
    /// (a timestep may occur more than once in a schedule) and name the cause from their schedule.
    /// </summary>
    string? NonFiniteCause(double timestep) => null;

    /// <summary>Sets the discrete timesteps of the loop (diffusers' <c>set_timesteps(num_inference_steps, device)</c>).</summary>
    void SetTimesteps(int numInferenceSteps, Device? device = null);

    /// <summary>
    /// Whether <see cref="SetTimesteps(IReadOnlyList{long}, Device?)"/> takes custom timesteps (diffusers' class has a
    /// <c>timesteps</c> argument in <c>set_timesteps</c>: DDPM, LCM, CMStochasticIterative), what the pipelines'
    /// <c>retrieve_timesteps</c> asks before passing them.
    /// </summary>
    bool AcceptsCustomTimesteps => false;

    /// <summary>Custom timesteps (descending), where the diffusers class accepts them; others throw.</summary>
    void SetTimesteps(IReadOnlyList<long> timesteps, Device? device = null);

    /// <summary>Scales the denoising model input for timestep <paramref name="timestep"/> (identity for most).</summary>
    Tensor ScaleModelInput(Tensor sample, double timestep);

    /// <summary>
    /// One step of the reverse process. <paramref name="options"/> carries what diffusers passes as keyword arguments
    /// (generator, eta, churn, ...); the scheduler reads the fields named in <see cref="StepArguments"/>.
    /// </summary>
    SchedulerOutput Step(Tensor modelOutput, double timestep, Tensor sample, StepOptions? options = null);

    /// <summary>The forward process: <c>original</c> noised to <c>timesteps</c> (one per batch item).</summary>
    Tensor AddNoise(Tensor originalSamples, Tensor noise, Tensor timesteps);
}
