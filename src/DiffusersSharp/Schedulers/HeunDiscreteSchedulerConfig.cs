using System.Text.Json.Serialization;

namespace DiffusersSharp.Schedulers;

/// <summary><c>scheduler_config.json</c> of diffusers' <c>HeunDiscreteScheduler</c> (0.25.1 keys and defaults).</summary>
public sealed record HeunDiscreteSchedulerConfig : SchedulerConfig, ISigmaScheduleConfig
{
    /// <summary>
    /// <c>num_train_timesteps</c>: length of the training noise schedule (timesteps 0 to num_train_timesteps - 1).
    /// </summary>
    [JsonPropertyName("num_train_timesteps")] public int NumTrainTimesteps { get; init; } = 1000;
    /// <summary><c>beta_start</c>: the first beta of the noise schedule.</summary>
    [JsonPropertyName("beta_start")] public double BetaStart { get; init; } = 0.00085;
    /// <summary><c>beta_end</c>: the last beta of the noise schedule.</summary>
    [JsonPropertyName("beta_end")] public double BetaEnd { get; init; } = 0.012;
    /// <summary>linear, scaled_linear, squaredcos_cap_v2 or exp.</summary>
    [JsonPropertyName("beta_schedule")] public string BetaSchedule { get; init; } = "linear";
    /// <summary>
    /// <c>trained_betas</c>: explicit betas that replace the schedule; null: computed from beta_start, beta_end and
    /// beta_schedule.
    /// </summary>
    [JsonPropertyName("trained_betas")] public double[]? TrainedBetas { get; init; }
    /// <summary>epsilon, sample or v_prediction.</summary>
    [JsonPropertyName("prediction_type")] public string PredictionType { get; init; } = "epsilon";
    /// <summary>
    /// <c>use_karras_sigmas</c>: space the inference sigmas as Karras et al. (2022) do instead of following the
    /// training schedule.
    /// </summary>
    [JsonPropertyName("use_karras_sigmas")] public bool? UseKarrasSigmas { get; init; } = false;
    /// <summary><c>clip_sample</c>: clamp the predicted original sample to ±<c>clip_sample_range</c>.</summary>
    [JsonPropertyName("clip_sample")] public bool? ClipSample { get; init; } = false;
    /// <summary><c>clip_sample_range</c>: the bound of clip_sample.</summary>
    [JsonPropertyName("clip_sample_range")] public double ClipSampleRange { get; init; } = 1.0;
    /// <summary>linspace, leading or trailing.</summary>
    [JsonPropertyName("timestep_spacing")] public string TimestepSpacing { get; init; } = "linspace";
    /// <summary><c>steps_offset</c>: added to every inference timestep ("leading" spacing; SD uses 1).</summary>
    [JsonPropertyName("steps_offset")] public int StepsOffset { get; init; }

    /// <inheritdoc/>
    protected override int TrainTimestepCount => NumTrainTimesteps;
}
