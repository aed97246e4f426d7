namespace DiffusersSharp.Training;

/// <summary>One optimisation step's report: loss, learning rate, throughput and ETA.</summary>
public sealed record TrainingProgress(long Step, long TotalSteps, int Epoch, double Loss, double LearningRate,
    double ImagesPerSecond, TimeSpan Remaining, string? Message = null);
