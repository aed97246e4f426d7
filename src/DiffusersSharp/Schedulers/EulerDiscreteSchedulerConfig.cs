using System.Text.Json.Serialization;

namespace DiffusersSharp.Schedulers;

/// <summary><c>scheduler_config.json</c> of diffusers' <c>EulerDiscreteScheduler</c> (0.25.1 keys and defaults).</summary>
public sealed record EulerDiscreteSchedulerConfig : SchedulerConfig, IBetaScheduleConfig
{
    [JsonPropertyName("num_train_timesteps")] public int NumTrainTimesteps { get; init; } = 1000;
    [JsonPropertyName("beta_start")] public double BetaStart { get; init; } = 0.0001;
    [JsonPropertyName("beta_end")] public double BetaEnd { get; init; } = 0.02;
    [JsonPropertyName("beta_schedule")] public string BetaSchedule { get; init; } = "linear";
    [JsonPropertyName("trained_betas")] public double[]? TrainedBetas { get; init; }
    /// <summary>epsilon, sample (original_sample) or v_prediction.</summary>
    [JsonPropertyName("prediction_type")] public string PredictionType { get; init; } = "epsilon";
    /// <summary>linear or log_linear.</summary>
    [JsonPropertyName("interpolation_type")] public string InterpolationType { get; init; } = "linear";
    [JsonPropertyName("use_karras_sigmas")] public bool UseKarrasSigmas { get; init; }
    [JsonPropertyName("sigma_min")] public double? SigmaMin { get; init; }
    [JsonPropertyName("sigma_max")] public double? SigmaMax { get; init; }
    /// <summary>linspace, leading or trailing.</summary>
    [JsonPropertyName("timestep_spacing")] public string TimestepSpacing { get; init; } = "linspace";
    /// <summary>discrete or continuous (continuous: timesteps 0.25·log σ, with v_prediction).</summary>
    [JsonPropertyName("timestep_type")] public string TimestepType { get; init; } = "discrete";
    [JsonPropertyName("steps_offset")] public int StepsOffset { get; init; }
    [JsonPropertyName("rescale_betas_zero_snr")] public bool RescaleBetasZeroSnr { get; init; }

    public override int TrainTimesteps => NumTrainTimesteps;
}
