using System.Text.Json.Serialization;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// <c>scheduler_config.json</c> of diffusers' <c>DPMSolverMultistepScheduler</c> (0.25.1 keys and defaults).
/// diffusers 0.25.1 has no <c>final_sigmas_type</c> (added in 0.27); a config carrying it keeps it in
/// <see cref="Loading.DiffusersConfig.Extra"/> and behaves as 0.25.1 (final sigma = σ(t=0), or the repeated last
/// Karras/Lu sigma).
/// </summary>
public sealed record DPMSolverMultistepSchedulerConfig : SchedulerConfig, IDPMSolverMultistepConfig
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
    /// <summary>1, 2 or 3.</summary>
    [JsonPropertyName("solver_order")] public int SolverOrder { get; init; } = 2;
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
    /// <summary><c>sample_max_value</c>: the largest threshold dynamic thresholding may use.</summary>
    [JsonPropertyName("sample_max_value")] public double SampleMaxValue { get; init; } = 1.0;
    /// <summary>dpmsolver++, dpmsolver, sde-dpmsolver++ or sde-dpmsolver ("deis" is read as dpmsolver++).</summary>
    [JsonPropertyName("algorithm_type")] public string AlgorithmType { get; init; } = "dpmsolver++";
    /// <summary>midpoint or heun (logrho, bh1, bh2 are read as midpoint).</summary>
    [JsonPropertyName("solver_type")] public string SolverType { get; init; } = "midpoint";
    /// <summary>
    /// <c>lower_order_final</c>: use lower-order steps at the end (stabler with fewer than 15 steps).
    /// </summary>
    [JsonPropertyName("lower_order_final")] public bool LowerOrderFinal { get; init; } = true;
    /// <summary><c>euler_at_final</c>: make the final step a first-order (Euler) step.</summary>
    [JsonPropertyName("euler_at_final")] public bool EulerAtFinal { get; init; }
    /// <summary>
    /// <c>use_karras_sigmas</c>: space the inference sigmas as Karras et al. (2022) do instead of following the
    /// training schedule.
    /// </summary>
    [JsonPropertyName("use_karras_sigmas")] public bool? UseKarrasSigmas { get; init; } = false;
    /// <summary>
    /// <c>use_lu_lambdas</c>: space the timesteps uniformly in log-SNR (Lu et al., DPM-Solver++ paper) instead.
    /// </summary>
    [JsonPropertyName("use_lu_lambdas")] public bool? UseLuLambdas { get; init; } = false;
    /// <summary>
    /// <c>lambda_min_clipped</c>: the smallest log-SNR (lambda) timesteps may reach; cosine schedules need a bound.
    /// </summary>
    [JsonPropertyName("lambda_min_clipped")] public double LambdaMinClipped { get; init; } = double.NegativeInfinity;
    /// <summary>null, learned or learned_range (the model output then carries the variance after 3 channels).</summary>
    [JsonPropertyName("variance_type")] public string? VarianceType { get; init; }
    /// <summary>linspace, leading or trailing.</summary>
    [JsonPropertyName("timestep_spacing")] public string TimestepSpacing { get; init; } = "linspace";
    /// <summary><c>steps_offset</c>: added to every inference timestep ("leading" spacing; SD uses 1).</summary>
    [JsonPropertyName("steps_offset")] public int StepsOffset { get; init; }

    /// <inheritdoc/>
    protected override int TrainTimestepCount => NumTrainTimesteps;
}
