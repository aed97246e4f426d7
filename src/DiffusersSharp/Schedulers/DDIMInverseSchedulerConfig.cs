using System.Text.Json.Serialization;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// <c>scheduler_config.json</c> of diffusers' <c>DDIMInverseScheduler</c> (0.25.1 keys and defaults). The deprecated
/// <c>set_alpha_to_zero</c> key, when a config has it, stays in <see cref="Loading.DiffusersConfig.Extra"/> and, as in
/// diffusers, replaces <c>set_alpha_to_one</c>.
/// </summary>
public sealed record DDIMInverseSchedulerConfig : SchedulerConfig, IBetaScheduleConfig
{
    /// <summary>
    /// <c>num_train_timesteps</c>: length of the training noise schedule (timesteps 0 to num_train_timesteps - 1).
    /// </summary>
    [JsonPropertyName("num_train_timesteps")] public int NumTrainTimesteps { get; init; } = 1000;
    /// <summary><c>beta_start</c>: the first beta of the noise schedule.</summary>
    [JsonPropertyName("beta_start")] public double BetaStart { get; init; } = 0.0001;
    /// <summary><c>beta_end</c>: the last beta of the noise schedule.</summary>
    [JsonPropertyName("beta_end")] public double BetaEnd { get; init; } = 0.02;
    /// <summary>linear, scaled_linear or squaredcos_cap_v2.</summary>
    [JsonPropertyName("beta_schedule")] public string BetaSchedule { get; init; } = "linear";
    /// <summary>
    /// <c>trained_betas</c>: explicit betas that replace the schedule; null: computed from beta_start, beta_end and
    /// beta_schedule.
    /// </summary>
    [JsonPropertyName("trained_betas")] public double[]? TrainedBetas { get; init; }
    /// <summary><c>clip_sample</c>: clamp the predicted original sample to ±<c>clip_sample_range</c>.</summary>
    [JsonPropertyName("clip_sample")] public bool ClipSample { get; init; } = true;
    /// <summary>
    /// <c>set_alpha_to_one</c>: use alpha_prod = 1 for the step before the first timestep (else alphas_cumprod[0]).
    /// </summary>
    [JsonPropertyName("set_alpha_to_one")] public bool SetAlphaToOne { get; init; } = true;
    /// <summary><c>steps_offset</c>: added to every inference timestep ("leading" spacing; SD uses 1).</summary>
    [JsonPropertyName("steps_offset")] public int StepsOffset { get; init; }
    /// <summary>epsilon, sample or v_prediction.</summary>
    [JsonPropertyName("prediction_type")] public string PredictionType { get; init; } = "epsilon";
    /// <summary><c>clip_sample_range</c>: the bound of clip_sample.</summary>
    [JsonPropertyName("clip_sample_range")] public double ClipSampleRange { get; init; } = 1.0;
    /// <summary>leading or trailing (diffusers' DDIM inverse has no linspace).</summary>
    [JsonPropertyName("timestep_spacing")] public string TimestepSpacing { get; init; } = "leading";
    /// <summary>
    /// <c>rescale_betas_zero_snr</c>: rescale the betas so the last timestep has zero signal-to-noise ratio (Lin et
    /// al. 2023).
    /// </summary>
    [JsonPropertyName("rescale_betas_zero_snr")] public bool RescaleBetasZeroSnr { get; init; }

    /// <inheritdoc/>
    protected override int TrainTimestepCount => NumTrainTimesteps;
}
