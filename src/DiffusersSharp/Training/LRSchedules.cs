namespace DiffusersSharp.Training;

/// <summary>
/// diffusers' <c>optimization.get_scheduler</c> learning-rate multipliers (the <c>LambdaLR</c> lambdas), as a pure
/// function of the optimisation step: the learning rate at step <c>s</c> is <c>base_lr * Multiplier(s)</c>.
/// Names: <c>constant</c>, <c>constant_with_warmup</c>, <c>linear</c>, <c>cosine</c> (half a cosine, num_cycles 0.5).
/// Being stateless, the "scheduler state" of a checkpoint is just the step.
/// </summary>
public static class LRSchedules
{
    /// <summary>The learning-rate schedule names accepted (diffusers' <c>get_scheduler</c> names).</summary>
    public static readonly IReadOnlyList<string> Names = ["constant", "constant_with_warmup", "linear", "cosine"];

    /// <summary>The multiplier of <paramref name="name"/> at <paramref name="step"/> (0-based, as LambdaLR's last_epoch).</summary>
    public static double Multiplier(string name, long step, long warmupSteps, long trainingSteps) => name switch
    {
        "constant" => 1.0,
        "constant_with_warmup" => step < warmupSteps ? (double)step / Math.Max(1.0, warmupSteps) : 1.0,
        "linear" => step < warmupSteps
            ? (double)step / Math.Max(1, warmupSteps)
            : Math.Max(0.0, (double)(trainingSteps - step) / Math.Max(1, trainingSteps - warmupSteps)),
        "cosine" => Cosine(step, warmupSteps, trainingSteps, 0.5),
        _ => throw new DiffusersException(
            $"lr scheduler '{name}' is not supported; choose one of {string.Join(", ", Names)}"),
    };

    /// <summary><c>get_cosine_schedule_with_warmup</c>'s lambda.</summary>
    public static double Cosine(long step, long warmupSteps, long trainingSteps, double numCycles = 0.5)
    {
        if (step < warmupSteps) return (double)step / Math.Max(1, warmupSteps);
        double progress = (double)(step - warmupSteps) / Math.Max(1, trainingSteps - warmupSteps);
        return Math.Max(0.0, 0.5 * (1.0 + Math.Cos(Math.PI * numCycles * 2.0 * progress)));
    }

    /// <summary>Throws for an unknown schedule name.</summary>
    public static void Validate(string name)
    {
        if (!Names.Contains(name))
            throw new DiffusersException($"lr scheduler '{name}' is not supported; choose one of {string.Join(", ", Names)}");
    }
}
