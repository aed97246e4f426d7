namespace DiffusersSharp.Schedulers;

/// <summary>
/// The keys every diffusers scheduler config has for its training noise schedule (the constructor's betas), read by
/// <see cref="SchedulerBase{TSelf, TConfig}"/> to build betas / alphas / alphas_cumprod once for all classes.
/// </summary>
public interface IBetaScheduleConfig
{
    /// <summary><c>num_train_timesteps</c>.</summary>
    int NumTrainTimesteps { get; }

    /// <summary><c>beta_start</c>.</summary>
    double BetaStart { get; }

    /// <summary><c>beta_end</c>.</summary>
    double BetaEnd { get; }

    /// <summary><c>beta_schedule</c>: linear, scaled_linear, squaredcos_cap_v2 (and per class sigmoid or exp).</summary>
    string BetaSchedule { get; }

    /// <summary><c>trained_betas</c>: when set, used instead of the schedule.</summary>
    double[]? TrainedBetas { get; }

    /// <summary><c>rescale_betas_zero_snr</c> (false for the classes whose config has no such key).</summary>
    bool RescaleBetasZeroSnr => false;

    /// <summary>
    /// Whether the class has a training beta schedule (true for all but IPNDM, whose set_timesteps builds betas of its own,
    /// and the consistency-model scheduler, which has none): false leaves <see cref="SchedulerBase.Betas"/>,
    /// <see cref="SchedulerBase.Alphas"/> and <see cref="SchedulerBase.AlphasCumprod"/> empty and
    /// <see cref="TrainedBetas"/> free of the num_train_timesteps length.
    /// </summary>
    bool HasTrainingBetas => true;
}
