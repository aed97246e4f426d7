using System.Text.Json.Serialization;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// <c>scheduler_config.json</c> of diffusers' <c>CMStochasticIterativeScheduler</c> (0.25.1 keys and defaults): the
/// Karras sigma schedule of a consistency model; the class has no beta schedule.
/// </summary>
public sealed record CMStochasticIterativeSchedulerConfig : SchedulerConfig, IBetaScheduleConfig
{
    /// <summary><c>num_train_timesteps</c>: the number of Karras sigmas the model was trained on (the discretisation N).</summary>
    [JsonPropertyName("num_train_timesteps")] public int NumTrainTimesteps { get; init; } = 40;
    /// <summary><c>sigma_min</c>: the smallest sigma (the schedule's end and the boundary condition's).</summary>
    [JsonPropertyName("sigma_min")] public double SigmaMin { get; init; } = 0.002;
    /// <summary><c>sigma_max</c>: the largest sigma (the first, and <c>init_noise_sigma</c>).</summary>
    [JsonPropertyName("sigma_max")] public double SigmaMax { get; init; } = 80.0;
    /// <summary><c>sigma_data</c>: the standard deviation of the data, in the EDM scalings c_skip and c_out.</summary>
    [JsonPropertyName("sigma_data")] public double SigmaData { get; init; } = 0.5;
    /// <summary><c>s_noise</c>: the scale of the noise added back in each step.</summary>
    [JsonPropertyName("s_noise")] public double SNoise { get; init; } = 1.0;
    /// <summary><c>rho</c>: the exponent of the Karras schedule.</summary>
    [JsonPropertyName("rho")] public double Rho { get; init; } = 7.0;
    /// <summary><c>clip_denoised</c>: clamp the denoised sample to [-1, 1].</summary>
    [JsonPropertyName("clip_denoised")] public bool ClipDenoised { get; init; } = true;

    double IBetaScheduleConfig.BetaStart => 0;
    double IBetaScheduleConfig.BetaEnd => 0;
    string IBetaScheduleConfig.BetaSchedule => "none";
    double[]? IBetaScheduleConfig.TrainedBetas => null;
    bool IBetaScheduleConfig.HasTrainingBetas => false;

    /// <inheritdoc/>
    protected override int TrainTimestepCount => NumTrainTimesteps;
}
