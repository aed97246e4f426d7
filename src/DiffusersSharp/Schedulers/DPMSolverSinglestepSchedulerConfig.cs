using System.Text.Json.Serialization;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// <c>scheduler_config.json</c> of diffusers' <c>DPMSolverSinglestepScheduler</c> (0.25.1 keys and defaults; this
/// class has no timestep_spacing / steps_offset in 0.25.1: its timesteps are always linspace).
/// </summary>
public sealed record DPMSolverSinglestepSchedulerConfig : SchedulerConfig, IBetaScheduleConfig
{
    [JsonPropertyName("num_train_timesteps")] public int NumTrainTimesteps { get; init; } = 1000;
    [JsonPropertyName("beta_start")] public double BetaStart { get; init; } = 0.0001;
    [JsonPropertyName("beta_end")] public double BetaEnd { get; init; } = 0.02;
    /// <summary>linear, scaled_linear or squaredcos_cap_v2.</summary>
    [JsonPropertyName("beta_schedule")] public string BetaSchedule { get; init; } = "linear";
    [JsonPropertyName("trained_betas")] public double[]? TrainedBetas { get; init; }
    /// <summary>1, 2 or 3.</summary>
    [JsonPropertyName("solver_order")] public int SolverOrder { get; init; } = 2;
    /// <summary>epsilon, sample or v_prediction.</summary>
    [JsonPropertyName("prediction_type")] public string PredictionType { get; init; } = "epsilon";
    [JsonPropertyName("thresholding")] public bool Thresholding { get; init; }
    [JsonPropertyName("dynamic_thresholding_ratio")] public double DynamicThresholdingRatio { get; init; } = 0.995;
    [JsonPropertyName("sample_max_value")] public double SampleMaxValue { get; init; } = 1.0;
    /// <summary>dpmsolver++ or dpmsolver ("deis" is read as dpmsolver++; the SDE variants are multistep-only).</summary>
    [JsonPropertyName("algorithm_type")] public string AlgorithmType { get; init; } = "dpmsolver++";
    /// <summary>midpoint or heun (logrho, bh1, bh2 are read as midpoint).</summary>
    [JsonPropertyName("solver_type")] public string SolverType { get; init; } = "midpoint";
    [JsonPropertyName("lower_order_final")] public bool LowerOrderFinal { get; init; } = true;
    [JsonPropertyName("use_karras_sigmas")] public bool? UseKarrasSigmas { get; init; } = false;
    [JsonPropertyName("lambda_min_clipped")] public double LambdaMinClipped { get; init; } = double.NegativeInfinity;
    /// <summary>null or learned_range (the model output then carries the variance after 3 channels).</summary>
    [JsonPropertyName("variance_type")] public string? VarianceType { get; init; }

    public override int TrainTimesteps => NumTrainTimesteps;
}
