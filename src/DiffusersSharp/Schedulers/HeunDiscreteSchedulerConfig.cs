using System.Text.Json.Serialization;

namespace DiffusersSharp.Schedulers;

/// <summary><c>scheduler_config.json</c> of diffusers' <c>HeunDiscreteScheduler</c> (0.25.1 keys and defaults).</summary>
public sealed record HeunDiscreteSchedulerConfig : SchedulerConfig, IBetaScheduleConfig
{
    [JsonPropertyName("num_train_timesteps")] public int NumTrainTimesteps { get; init; } = 1000;
    [JsonPropertyName("beta_start")] public double BetaStart { get; init; } = 0.00085;
    [JsonPropertyName("beta_end")] public double BetaEnd { get; init; } = 0.012;
    /// <summary>linear, scaled_linear, squaredcos_cap_v2 or exp.</summary>
    [JsonPropertyName("beta_schedule")] public string BetaSchedule { get; init; } = "linear";
    [JsonPropertyName("trained_betas")] public double[]? TrainedBetas { get; init; }
    /// <summary>epsilon, sample or v_prediction.</summary>
    [JsonPropertyName("prediction_type")] public string PredictionType { get; init; } = "epsilon";
    [JsonPropertyName("use_karras_sigmas")] public bool UseKarrasSigmas { get; init; }
    [JsonPropertyName("clip_sample")] public bool ClipSample { get; init; }
    [JsonPropertyName("clip_sample_range")] public double ClipSampleRange { get; init; } = 1.0;
    /// <summary>linspace, leading or trailing.</summary>
    [JsonPropertyName("timestep_spacing")] public string TimestepSpacing { get; init; } = "linspace";
    [JsonPropertyName("steps_offset")] public int StepsOffset { get; init; }

    public override int TrainTimesteps => NumTrainTimesteps;
}
