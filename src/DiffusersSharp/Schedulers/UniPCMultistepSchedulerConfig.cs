using System.Text.Json.Serialization;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// <c>scheduler_config.json</c> of diffusers' <c>UniPCMultistepScheduler</c> (0.25.1 keys and defaults).
/// <c>solver_p</c> (another scheduler object as predictor) is not representable in a config file and not supported.
/// </summary>
public sealed record UniPCMultistepSchedulerConfig : SchedulerConfig, IBetaScheduleConfig
{
    [JsonPropertyName("num_train_timesteps")] public int NumTrainTimesteps { get; init; } = 1000;
    [JsonPropertyName("beta_start")] public double BetaStart { get; init; } = 0.0001;
    [JsonPropertyName("beta_end")] public double BetaEnd { get; init; } = 0.02;
    /// <summary>linear, scaled_linear or squaredcos_cap_v2.</summary>
    [JsonPropertyName("beta_schedule")] public string BetaSchedule { get; init; } = "linear";
    [JsonPropertyName("trained_betas")] public double[]? TrainedBetas { get; init; }
    /// <summary>Any positive order p (UniPC-p; the corrector raises the accuracy to p + 1).</summary>
    [JsonPropertyName("solver_order")] public int SolverOrder { get; init; } = 2;
    /// <summary>epsilon, sample or v_prediction.</summary>
    [JsonPropertyName("prediction_type")] public string PredictionType { get; init; } = "epsilon";
    [JsonPropertyName("thresholding")] public bool Thresholding { get; init; }
    [JsonPropertyName("dynamic_thresholding_ratio")] public double DynamicThresholdingRatio { get; init; } = 0.995;
    [JsonPropertyName("sample_max_value")] public double SampleMaxValue { get; init; } = 1.0;
    /// <summary>Update on the predicted x0 (data prediction) rather than on ε.</summary>
    [JsonPropertyName("predict_x0")] public bool PredictX0 { get; init; } = true;
    /// <summary>bh1 or bh2 (midpoint, heun, logrho are read as bh2).</summary>
    [JsonPropertyName("solver_type")] public string SolverType { get; init; } = "bh2";
    [JsonPropertyName("lower_order_final")] public bool LowerOrderFinal { get; init; } = true;
    /// <summary>Step indices whose corrector (applied at the following step) is skipped.</summary>
    [JsonPropertyName("disable_corrector")] public int[] DisableCorrector { get; init; } = [];
    [JsonPropertyName("use_karras_sigmas")] public bool? UseKarrasSigmas { get; init; } = false;
    /// <summary>linspace, leading or trailing.</summary>
    [JsonPropertyName("timestep_spacing")] public string TimestepSpacing { get; init; } = "linspace";
    [JsonPropertyName("steps_offset")] public int StepsOffset { get; init; }

    public override int TrainTimesteps => NumTrainTimesteps;
}
