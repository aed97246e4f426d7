using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// What diffusers passes to <c>scheduler.step(...)</c> as keyword arguments, in one value: every scheduler reads the
/// fields it uses (listed in <see cref="IScheduler.StepArguments"/>) and ignores the others, so a pipeline passes the
/// same options whatever scheduler it holds. Defaults are diffusers' defaults.
/// <code>
/// scheduler.Step(noisePred, t, latents, new StepOptions { Generators = [g], Eta = 0.5 });
/// scheduler.Step(noisePred, t, latents, g);   // a generator converts to options holding just it
/// </code>
/// </summary>
public sealed record StepOptions
{
    /// <summary>diffusers' defaults: no generator (torch's global one), eta 0, no churn, LMS order 4.</summary>
    public static StepOptions Default { get; } = new();

    /// <summary>
    /// <c>generator</c>: one generator, or one per batch item (diffusers' list of generators); null draws from torch's
    /// global generator. Read by every scheduler that draws noise.
    /// </summary>
    public IReadOnlyList<Generator>? Generators { get; init; }

    /// <summary>
    /// <c>variance_noise</c>, generalised: when set, each noise draw of the step calls it with the shape instead of
    /// drawing from <see cref="Generators"/> (replays recorded noise). diffusers accepts it on DDIM; here every
    /// scheduler that draws noise honours it.
    /// </summary>
    public Func<long[], Tensor>? VarianceNoise { get; init; }

    /// <summary><c>eta</c> (DDIM): the weight of the added noise; 0 is deterministic DDIM, 1 is DDPM-like.</summary>
    public double Eta { get; init; }

    /// <summary><c>use_clipped_model_output</c> (DDIM): recompute ε from the clipped x0.</summary>
    public bool UseClippedModelOutput { get; init; }

    /// <summary><c>s_churn</c> (Euler): the stochasticity added per step (Karras et al. 2022, Algorithm 2).</summary>
    public double SChurn { get; init; }

    /// <summary><c>s_tmin</c> (Euler): churn applies for σ ≥ s_tmin.</summary>
    public double STmin { get; init; }

    /// <summary><c>s_tmax</c> (Euler): churn applies for σ ≤ s_tmax.</summary>
    public double STmax { get; init; } = double.PositiveInfinity;

    /// <summary><c>s_noise</c> (Euler): the scale of the churn noise.</summary>
    public double SNoise { get; init; } = 1.0;

    /// <summary><c>order</c> (LMS): the number of past derivatives the linear multistep combines.</summary>
    public int Order { get; init; } = 4;

    /// <summary>Options holding one generator (diffusers' <c>step(..., generator=g)</c>); null gives <see cref="Default"/>.</summary>
    public static implicit operator StepOptions(Generator? generator) =>
        generator is null ? Default : new StepOptions { Generators = [generator] };
}
