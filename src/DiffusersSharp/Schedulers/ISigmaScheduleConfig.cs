namespace DiffusersSharp.Schedulers;

/// <summary>
/// The keys the sigma-space schedulers' configs share beyond the betas (Euler, Euler ancestral, LMS, Heun, KDPM2,
/// KDPM2 ancestral), read by <see cref="SigmaSchedulerBase{TSelf, TConfig}"/>.
/// </summary>
public interface ISigmaScheduleConfig : IBetaScheduleConfig
{
    /// <summary><c>prediction_type</c>: what the model predicts (epsilon, v_prediction; sample where the class takes it).</summary>
    string PredictionType { get; }

    /// <summary><c>timestep_spacing</c>: linspace, leading or trailing.</summary>
    string TimestepSpacing { get; }

    /// <summary><c>steps_offset</c>: added to every inference timestep ("leading" spacing).</summary>
    int StepsOffset { get; }
}
