using DiffusersSharp.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// diffusers' <c>DPMSolverMultistepScheduler</c> (0.25.1): DPM-Solver / DPM-Solver++ (arXiv 2206.00927,
/// 2211.01095) multistep solvers of order 1–3, their SDE variants (noise drawn in every step from the
/// generator, as diffusers does), Karras or Lu (uniform-λ) sigmas, lower-order warm-up and final steps.
/// Scalar coefficients are computed in float32 as diffusers computes them on 0-dim float32 tensors.
/// </summary>
public sealed class DPMSolverMultistepScheduler : DPMSolverMultistepBase<DPMSolverMultistepScheduler, DPMSolverMultistepSchedulerConfig>
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>scheduler_config.json</c>.</summary>
    public const string Name = "DPMSolverMultistepScheduler";
    internal static readonly string[] Algorithms = ["dpmsolver", "dpmsolver++", "sde-dpmsolver", "sde-dpmsolver++"];
    internal static readonly string[] Predictions = ["epsilon", "sample", "v_prediction"];

    /// <summary>
    /// Builds the scheduler from <paramref name="config"/> (null: diffusers' defaults); a value out of range is a
    /// <see cref="ConfigException"/> naming the key.
    /// </summary>
    public DPMSolverMultistepScheduler(DPMSolverMultistepSchedulerConfig? config = null) : base(Normalize(config)) { }

    /// <inheritdoc/>
    protected override Tensor InitialTimesteps() => torch.arange(TypedConfig.NumTrainTimesteps - 1, -1, -1, ScalarType.Int64);

    /// <summary>diffusers' renames of the other solvers' option values (register_to_config in its constructor).</summary>
    private static DPMSolverMultistepSchedulerConfig Normalize(DPMSolverMultistepSchedulerConfig? config)
    {
        var c = config ?? new DPMSolverMultistepSchedulerConfig();
        if (c.AlgorithmType == "deis") c = c with { AlgorithmType = "dpmsolver++" };
        if (c.SolverType is "logrho" or "bh1" or "bh2") c = c with { SolverType = "midpoint" };
        return c;
    }

    internal static string Quote(IEnumerable<string> names) => string.Join(", ", names.Select(n => "\"" + n + "\""));

    /// <inheritdoc/>
    protected override void SetTimestepsCore(int numInferenceSteps, Device? device)
    {
        CheckInferenceSteps(numInferenceSteps);
        var (ts, sigmas) = Schedule(numInferenceSteps, TypedConfig.TimestepSpacing);
        var t = torch.tensor(ts, ScalarType.Int64);
        SetSchedule(device is null ? t : t.to(device, disposeAfter: true), sigmas, numInferenceSteps);
        ResetState();
    }

    /// <summary>set_timesteps' timesteps and sigmas for <paramref name="n"/> steps and <paramref name="spacing"/>.</summary>
    private (long[] Timesteps, float[] Sigmas) Schedule(int n, string spacing)
    {
        int last = LastTimestep(TypedConfig.LambdaMinClipped);
        var spaced = SpacedTimesteps(spacing, n, last, TypedConfig.StepsOffset);
        return BuildSchedule(spaced, n, TypedConfig.UseKarrasSigmas == true, TypedConfig.UseLuLambdas == true);
    }

    /// <summary>Karras or Lu sigmas: the final sigma repeats the last one (h = 0 on the last step).</summary>
    private bool RepeatsLastSigma => TypedConfig.UseKarrasSigmas == true || TypedConfig.UseLuLambdas == true;

    /// <inheritdoc/>
    /// <remarks>Also a second- or third-order step whose sigmas coincide (λ differences of 0), where diffusers' update
    /// divides by that difference (0 / 0, or x / 0): SD 1.x's "leading" spacing with steps_offset 1 at 999 and 1000 of 1000 steps, "trailing"
    /// spacing where it overshoots to −1 next to 0, "linspace" at 1000 (timestep 500 twice), and Karras / Lu sigmas
    /// (the final one repeats the last) with solver_type "heun" or solver_order 3 from 15 steps on. Named from the
    /// schedule, with the nearby step counts and the spacings where no step divides by zero.</remarks>
    protected override string? NonFiniteCauseCore(double timestep)
    {
        if (LastStepIndex is int i && LastOrder >= 2 && Division(i, LastOrder) is { } arithmetic
            && EqualSigmasCause(i - LastOrder + 1, i + 1, arithmetic, TypedConfig.TimestepSpacing, TypedConfig.StepsOffset,
                RepeatsLastSigma, FinalStepDividesByH, (n, s) => Schedule(n, s).Sigmas,
                LastStepKeepsSigma(i)
                    ? "set euler_at_final true, which makes the last step first-order"
                    : null) is { } cause)
            return cause;
        return base.NonFiniteCauseCore(timestep);
    }

    /// <summary>Whether the last of <paramref name="n"/> steps is a heun second-order or a third-order update, which
    /// divide by its h (0 where the final sigma equals the last: Karras / Lu sigmas, a schedule ending at timestep 0).</summary>
    private bool FinalStepDividesByH(int n) =>
        (TypedConfig.SolverType == "heun" || TypedConfig.SolverOrder == 3) && TypedConfig.SolverOrder >= 2
        && !TypedConfig.EulerAtFinal && !(TypedConfig.LowerOrderFinal && n < 15);
}
