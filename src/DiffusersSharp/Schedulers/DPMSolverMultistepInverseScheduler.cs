using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// diffusers' <c>DPMSolverMultistepInverseScheduler</c> (scheduling_dpmsolver_multistep_inverse.py of 0.25.1):
/// DPM-Solver(++) run backwards, from a clean sample towards noise (inversion, as the DiffEdit pipeline uses it). Its
/// step is <see cref="DPMSolverMultistepScheduler"/>'s (<see cref="DPMSolverMultistepBase{TSelf, TConfig}"/>); its
/// schedule ascends from timestep 0 to the noisiest one that <c>lambda_min_clipped</c> allows, with the training sigmas
/// at those timesteps and that noisiest sigma as the final one, or ascending Karras sigmas (the last repeated).
/// As diffusers does, a timestep that occurs twice is kept once, but not its sigma (1000 "linspace" steps of 1000).
/// The SDE variants are refused: their noise term is NaN on every step that adds noise (diffusers returns NaN).
/// </summary>
public sealed class DPMSolverMultistepInverseScheduler : DPMSolverMultistepBase<DPMSolverMultistepInverseScheduler, DPMSolverMultistepInverseSchedulerConfig>
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>scheduler_config.json</c>.</summary>
    public const string Name = "DPMSolverMultistepInverseScheduler";

    /// <summary>
    /// Builds the scheduler from <paramref name="config"/> (null: diffusers' defaults); a value out of range is a
    /// <see cref="ConfigException"/> naming the key.
    /// </summary>
    public DPMSolverMultistepInverseScheduler(DPMSolverMultistepInverseSchedulerConfig? config = null) : base(Normalize(config)) { }

    /// <summary>diffusers' renames of the other solvers' option values (register_to_config in its constructor).</summary>
    private static DPMSolverMultistepInverseSchedulerConfig Normalize(DPMSolverMultistepInverseSchedulerConfig? config)
    {
        var c = config ?? new DPMSolverMultistepInverseSchedulerConfig();
        if (c.AlgorithmType == "deis") c = c with { AlgorithmType = "dpmsolver++" };
        if (c.SolverType is "logrho" or "bh1" or "bh2") c = c with { SolverType = "midpoint" };
        if (c.AlgorithmType.StartsWith("sde-", StringComparison.Ordinal))
            throw new ConfigException(
                $"{Name}: algorithm_type \"{c.AlgorithmType}\" gives NaN from the first step of the inverse, as in diffusers: its noise term, " +
                "sqrt(1 - exp(-2h)) or sqrt(exp(2h) - 1), takes the root of a negative number where the noise grows (h < 0); " +
                "use \"dpmsolver++\" or \"dpmsolver\"")
            { Key = "algorithm_type" };
        return c;
    }

    /// <summary>np.linspace(0, T - 1, T, dtype=float32): 0 to T - 1 ascending, float32.</summary>
    protected override Tensor InitialTimesteps() => torch.arange(0, TypedConfig.NumTrainTimesteps, 1, ScalarType.Float32);

    /// <summary>diffusers' <c>noisiest_timestep</c> after the last <c>SetTimesteps</c>: the last timestep lambda_min_clipped allows.</summary>
    public int NoisiestTimestep => LastTimestep(TypedConfig.LambdaMinClipped) - 1;

    /// <inheritdoc/>
    protected override void SetTimestepsCore(int numInferenceSteps, Device? device)
    {
        CheckInferenceSteps(numInferenceSteps);
        var (ts, sigmas) = Schedule(numInferenceSteps);
        var t = torch.tensor(ts, ScalarType.Int64);
        SetSchedule(device is null ? t : t.to(device, disposeAfter: true), sigmas, numInferenceSteps);
        ResetState();
    }

    /// <inheritdoc/>
    /// <remarks>Also a second- or third-order step whose λ differences include a 0, where diffusers' update divides by it:
    /// the inverse's final sigma is the noisiest timestep's, so a schedule that ends there ("trailing", or Karras sigmas,
    /// whose last repeats) has h = 0 on its last step, which a heun or third-order update divides by once
    /// lower_order_final no longer applies (15 steps and more).</remarks>
    protected override string? NonFiniteCauseCore(double timestep)
    {
        if (LastStepIndex is int i && LastOrder >= 2 && Division(i, LastOrder) is { } arithmetic)
        {
            bool last = LastStepKeepsSigma(i);
            return $"step {i} (timestep {Fmt(timestep)}) of {NumInferenceSteps}: {arithmetic}, as in diffusers' {Name}.step" +
                   (last ? "; its sigma equals the final one (the noisiest timestep's, where this schedule ends): set euler_at_final true, which makes the last step first-order, or use fewer than 15 steps with lower_order_final"
                         : "");
        }
        return base.NonFiniteCauseCore(timestep);
    }

    /// <summary>set_timesteps' timesteps (each once) and sigmas for <paramref name="n"/> steps.</summary>
    private (long[] Timesteps, float[] Sigmas) Schedule(int n)
    {
        var c = TypedConfig;
        int noisiest = NoisiestTimestep, T = c.NumTrainTimesteps;
        long[] ts;
        switch (c.TimestepSpacing)
        {
            case "linspace":
                ts = SchedulerMath.NpLinspace(0, noisiest, n + 1).Take(n).Select(v => (long)SchedulerMath.NpRound(v)).ToArray();
                break;
            case "leading":
            {
                long ratio = (noisiest + 1) / (n + 1);
                ts = Enumerable.Range(0, n).Select(i => i * ratio + c.StepsOffset).ToArray();
                break;
            }
            default: // trailing
            {
                double ratio = T / (double)n;
                ts = SchedulerMath.NpArange(noisiest + 1, 0, -ratio).Select(v => (long)SchedulerMath.NpRound(v) - 1).Reverse().ToArray();
                break;
            }
        }
        float[] train = SchedulerMath.TrainSigmas(AlphasCumprodValues);
        double[] sig;
        if (c.UseKarrasSigmas == true)
        {
            // _convert_to_karras(in_sigmas=sigmas) on the ascending table: from sigmas[0] up to sigmas[-1]
            float[] logSigmas = SigmaMath.Log32(train);
            sig = SchedulerMath.KarrasSigmas(train[^1], train[0], n);
            ts = sig.Select(s => (long)SchedulerMath.NpRound(SigmaMath.SigmaToT(s, logSigmas))).ToArray();
            sig = [.. sig, sig[^1]];
        }
        else
        {
            // np.interp at integer timesteps: the table's entries (its ends outside [0, T), where "trailing" starts at
            // -1 or steps_offset passes T - 1); the final sigma is the noisiest timestep's
            sig = [.. ts.Select(t => (double)train[Math.Clamp(t, 0, train.Length - 1)]), train[noisiest]];
        }
        // np.unique(timesteps, return_index=True), first occurrences in order; the sigmas stay as they are
        var seen = new HashSet<long>();
        ts = ts.Where(seen.Add).ToArray();
        return (ts, sig.Select(s => (float)s).ToArray());
    }
}
