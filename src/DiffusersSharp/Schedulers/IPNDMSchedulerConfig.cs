using System.Text.Json.Serialization;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// <c>scheduler_config.json</c> of diffusers' <c>IPNDMScheduler</c> (0.25.1 keys and defaults): only
/// <c>num_train_timesteps</c> and <c>trained_betas</c>; the class has no training beta schedule (its set_timesteps builds
/// the sin² schedule of its steps).
/// </summary>
public sealed record IPNDMSchedulerConfig : SchedulerConfig, IBetaScheduleConfig
{
    /// <summary>
    /// <c>num_train_timesteps</c>: the number of steps of the schedule the constructor sets (diffusers' <c>__init__</c>
    /// calls <c>set_timesteps(num_train_timesteps)</c>).
    /// </summary>
    [JsonPropertyName("num_train_timesteps")] public int NumTrainTimesteps { get; init; } = 1000;
    /// <summary>
    /// <c>trained_betas</c>: the step betas (σ of each step, the last one after the last step) that replace the sin²
    /// schedule; any length of at least 2, which then sets the number of timesteps (length - 1) whatever
    /// num_inference_steps says, as in diffusers. Null: the sin² schedule.
    /// </summary>
    [JsonPropertyName("trained_betas")] public double[]? TrainedBetas { get; init; }

    double IBetaScheduleConfig.BetaStart => 0;
    double IBetaScheduleConfig.BetaEnd => 0;
    string IBetaScheduleConfig.BetaSchedule => "none";
    bool IBetaScheduleConfig.HasTrainingBetas => false;

    /// <inheritdoc/>
    protected override int TrainTimestepCount => NumTrainTimesteps;
}
