using System.Text.Json.Serialization;

namespace DiffusersSharp.Schedulers;

/// <summary><c>scheduler_config.json</c> of diffusers' <c>PNDMScheduler</c> (0.25.1 keys and defaults).</summary>
public sealed record PNDMSchedulerConfig : SchedulerConfig, IBetaScheduleConfig
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
    /// <summary>Skip the Runge-Kutta warm-up steps (PLMS only, as Stable Diffusion does).</summary>
    [JsonPropertyName("skip_prk_steps")] public bool SkipPrkSteps { get; init; }
    /// <summary>
    /// <c>set_alpha_to_one</c>: the step after the last uses alpha_prod = 1; false: alphas_cumprod[0].
    /// </summary>
    [JsonPropertyName("set_alpha_to_one")] public bool SetAlphaToOne { get; init; }
    /// <summary>epsilon or v_prediction.</summary>
    [JsonPropertyName("prediction_type")] public string PredictionType { get; init; } = "epsilon";
    /// <summary>leading, trailing or linspace.</summary>
    [JsonPropertyName("timestep_spacing")] public string TimestepSpacing { get; init; } = "leading";
    /// <summary><c>steps_offset</c>: added to every inference timestep ("leading" spacing; SD uses 1).</summary>
    [JsonPropertyName("steps_offset")] public int StepsOffset { get; init; }

    /// <inheritdoc/>
    protected override int TrainTimestepCount => NumTrainTimesteps;
}
