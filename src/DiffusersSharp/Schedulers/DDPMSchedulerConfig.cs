using System.Text.Json.Serialization;

namespace DiffusersSharp.Schedulers;

/// <summary><c>scheduler_config.json</c> of diffusers' <c>DDPMScheduler</c> (0.25.1 keys and defaults).</summary>
public sealed record DDPMSchedulerConfig : SchedulerConfig, IBetaScheduleConfig
{
    /// <summary>
    /// <c>num_train_timesteps</c>: length of the training noise schedule (timesteps 0 to num_train_timesteps - 1).
    /// </summary>
    [JsonPropertyName("num_train_timesteps")] public int NumTrainTimesteps { get; init; } = 1000;
    /// <summary><c>beta_start</c>: the first beta of the noise schedule.</summary>
    [JsonPropertyName("beta_start")] public double BetaStart { get; init; } = 0.0001;
    /// <summary><c>beta_end</c>: the last beta of the noise schedule.</summary>
    [JsonPropertyName("beta_end")] public double BetaEnd { get; init; } = 0.02;
    /// <summary>linear, scaled_linear, squaredcos_cap_v2 or sigmoid.</summary>
    [JsonPropertyName("beta_schedule")] public string BetaSchedule { get; init; } = "linear";
    /// <summary>
    /// <c>trained_betas</c>: explicit betas that replace the schedule; null: computed from beta_start, beta_end and
    /// beta_schedule.
    /// </summary>
    [JsonPropertyName("trained_betas")] public double[]? TrainedBetas { get; init; }
    /// <summary>
    /// fixed_small, fixed_small_log, fixed_large, fixed_large_log, learned or learned_range; null (a DPM-Solver config's
    /// <c>variance_type: null</c> converted to DDPM) steps as fixed_small, as diffusers' step does.
    /// </summary>
    [JsonPropertyName("variance_type")] public string? VarianceType { get; init; } = "fixed_small";
    /// <summary><c>clip_sample</c>: clamp the predicted original sample to ±<c>clip_sample_range</c>.</summary>
    [JsonPropertyName("clip_sample")] public bool ClipSample { get; init; } = true;
    /// <summary>epsilon, sample or v_prediction.</summary>
    [JsonPropertyName("prediction_type")] public string PredictionType { get; init; } = "epsilon";
    /// <summary>
    /// <c>thresholding</c>: dynamic thresholding of the predicted original sample (Imagen; pixel-space models only).
    /// </summary>
    [JsonPropertyName("thresholding")] public bool Thresholding { get; init; }
    /// <summary>
    /// <c>dynamic_thresholding_ratio</c>: the quantile of absolute values dynamic thresholding clamps to.
    /// </summary>
    [JsonPropertyName("dynamic_thresholding_ratio")] public double DynamicThresholdingRatio { get; init; } = 0.995;
    /// <summary><c>clip_sample_range</c>: the bound of clip_sample.</summary>
    [JsonPropertyName("clip_sample_range")] public double ClipSampleRange { get; init; } = 1.0;
    /// <summary><c>sample_max_value</c>: the largest threshold dynamic thresholding may use.</summary>
    [JsonPropertyName("sample_max_value")] public double SampleMaxValue { get; init; } = 1.0;
    /// <summary>leading, trailing or linspace.</summary>
    [JsonPropertyName("timestep_spacing")] public string TimestepSpacing { get; init; } = "leading";
    /// <summary><c>steps_offset</c>: added to every inference timestep ("leading" spacing; SD uses 1).</summary>
    [JsonPropertyName("steps_offset")] public int StepsOffset { get; init; }
    /// <summary>
    /// <c>rescale_betas_zero_snr</c>: rescale the betas so the last timestep has zero signal-to-noise ratio (Lin et
    /// al. 2023).
    /// </summary>
    [JsonPropertyName("rescale_betas_zero_snr")] public bool RescaleBetasZeroSnr { get; init; }

    /// <inheritdoc/>
    protected override int TrainTimestepCount => NumTrainTimesteps;
}
