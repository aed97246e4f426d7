using System.Text.Json.Serialization;

namespace DiffusersSharp.Schedulers;

/// <summary><c>scheduler_config.json</c> of diffusers' <c>DDPMScheduler</c> (0.25.1 keys and defaults).</summary>
public sealed record DDPMSchedulerConfig : SchedulerConfig, IBetaScheduleConfig
{
    [JsonPropertyName("num_train_timesteps")] public int NumTrainTimesteps { get; init; } = 1000;
    [JsonPropertyName("beta_start")] public double BetaStart { get; init; } = 0.0001;
    [JsonPropertyName("beta_end")] public double BetaEnd { get; init; } = 0.02;
    /// <summary>linear, scaled_linear, squaredcos_cap_v2 or sigmoid.</summary>
    [JsonPropertyName("beta_schedule")] public string BetaSchedule { get; init; } = "linear";
    [JsonPropertyName("trained_betas")] public double[]? TrainedBetas { get; init; }
    /// <summary>fixed_small, fixed_small_log, fixed_large, fixed_large_log, learned or learned_range.</summary>
    [JsonPropertyName("variance_type")] public string VarianceType { get; init; } = "fixed_small";
    [JsonPropertyName("clip_sample")] public bool ClipSample { get; init; } = true;
    /// <summary>epsilon, sample or v_prediction.</summary>
    [JsonPropertyName("prediction_type")] public string PredictionType { get; init; } = "epsilon";
    [JsonPropertyName("thresholding")] public bool Thresholding { get; init; }
    [JsonPropertyName("dynamic_thresholding_ratio")] public double DynamicThresholdingRatio { get; init; } = 0.995;
    [JsonPropertyName("clip_sample_range")] public double ClipSampleRange { get; init; } = 1.0;
    [JsonPropertyName("sample_max_value")] public double SampleMaxValue { get; init; } = 1.0;
    /// <summary>leading, trailing or linspace.</summary>
    [JsonPropertyName("timestep_spacing")] public string TimestepSpacing { get; init; } = "leading";
    [JsonPropertyName("steps_offset")] public int StepsOffset { get; init; }
    [JsonPropertyName("rescale_betas_zero_snr")] public bool RescaleBetasZeroSnr { get; init; }

    public override int TrainTimesteps => NumTrainTimesteps;
}
