using System.Text.Json.Serialization;

namespace DiffusersSharp.Schedulers;

/// <summary><c>scheduler_config.json</c> of diffusers' <c>PNDMScheduler</c> (0.25.1 keys and defaults).</summary>
public sealed record PNDMSchedulerConfig : SchedulerConfig, IBetaScheduleConfig
{
    [JsonPropertyName("num_train_timesteps")] public int NumTrainTimesteps { get; init; } = 1000;
    [JsonPropertyName("beta_start")] public double BetaStart { get; init; } = 0.0001;
    [JsonPropertyName("beta_end")] public double BetaEnd { get; init; } = 0.02;
    /// <summary>linear, scaled_linear or squaredcos_cap_v2.</summary>
    [JsonPropertyName("beta_schedule")] public string BetaSchedule { get; init; } = "linear";
    [JsonPropertyName("trained_betas")] public double[]? TrainedBetas { get; init; }
    /// <summary>Skip the Runge-Kutta warm-up steps (PLMS only, as Stable Diffusion does).</summary>
    [JsonPropertyName("skip_prk_steps")] public bool SkipPrkSteps { get; init; }
    [JsonPropertyName("set_alpha_to_one")] public bool SetAlphaToOne { get; init; }
    /// <summary>epsilon or v_prediction.</summary>
    [JsonPropertyName("prediction_type")] public string PredictionType { get; init; } = "epsilon";
    /// <summary>leading, trailing or linspace.</summary>
    [JsonPropertyName("timestep_spacing")] public string TimestepSpacing { get; init; } = "leading";
    [JsonPropertyName("steps_offset")] public int StepsOffset { get; init; }

    public override int TrainTimesteps => NumTrainTimesteps;
}
