namespace DiffusersSharp.Pipelines;

/// <summary>
/// Reported after each denoising step: <paramref name="Step"/> steps of <paramref name="TotalSteps"/> are
/// done; <paramref name="Timestep"/> is the timestep just processed; <paramref name="Elapsed"/> the time since
/// the loop started (so <c>Elapsed / Step</c> is the time per step).
/// </summary>
public readonly record struct PipelineProgress(int Step, int TotalSteps, double Timestep, TimeSpan Elapsed)
{
    /// <summary>Mean seconds per step so far.</summary>
    public double SecondsPerStep => Step > 0 ? Elapsed.TotalSeconds / Step : 0;

    /// <summary>Estimated time left at the current mean speed.</summary>
    public TimeSpan Remaining => TimeSpan.FromSeconds(SecondsPerStep * (TotalSteps - Step));
}
