namespace DiffusersSharp.Schedulers;

/// <summary>
/// The config keys diffusers' <c>DPMSolverMultistepScheduler</c> and <c>DPMSolverMultistepInverseScheduler</c> share, read
/// by <see cref="DPMSolverMultistepBase{TSelf, TConfig}"/> (each record documents its keys).
/// </summary>
public interface IDPMSolverMultistepConfig : IBetaScheduleConfig
{
    /// <summary><c>solver_order</c>.</summary>
    int SolverOrder { get; }

    /// <summary><c>prediction_type</c>.</summary>
    string PredictionType { get; }

    /// <summary><c>thresholding</c>.</summary>
    bool Thresholding { get; }

    /// <summary><c>dynamic_thresholding_ratio</c>.</summary>
    double DynamicThresholdingRatio { get; }

    /// <summary><c>sample_max_value</c>.</summary>
    double SampleMaxValue { get; }

    /// <summary><c>algorithm_type</c>.</summary>
    string AlgorithmType { get; }

    /// <summary><c>solver_type</c>.</summary>
    string SolverType { get; }

    /// <summary><c>lower_order_final</c>.</summary>
    bool LowerOrderFinal { get; }

    /// <summary><c>euler_at_final</c>.</summary>
    bool EulerAtFinal { get; }

    /// <summary><c>variance_type</c>.</summary>
    string? VarianceType { get; }

    /// <summary><c>timestep_spacing</c>.</summary>
    string TimestepSpacing { get; }
}
