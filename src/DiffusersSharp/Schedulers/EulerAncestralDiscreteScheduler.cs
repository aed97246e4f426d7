using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// diffusers' <c>EulerAncestralDiscreteScheduler</c> (k-diffusion's sample_euler_ancestral;
/// scheduling_euler_ancestral_discrete.py of 0.25.1): an Euler step to sigma_down plus fresh noise of
/// sigma_up, drawn from the generator on every step.
/// </summary>
public sealed class EulerAncestralDiscreteScheduler : SchedulerBase<EulerAncestralDiscreteScheduler, EulerAncestralDiscreteSchedulerConfig>
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>scheduler_config.json</c>.</summary>
    public const string Name = "EulerAncestralDiscreteScheduler";

    private float[] _sigmaValues = [];
    private Tensor _sigmas = null!;
    private double[] _schedule = [];
    private int? _stepIndex;

    /// <summary>
    /// Builds the scheduler from <paramref name="config"/> (null: diffusers' defaults); a value out of range is a
    /// <see cref="ConfigException"/> naming the key.
    /// </summary>
    public EulerAncestralDiscreteScheduler(EulerAncestralDiscreteSchedulerConfig? config = null) : base(config)
    {
        var c = TypedConfig;
        if (c.PredictionType == "sample")
            throw new ConfigException($"{Name}: prediction_type \"sample\" is not implemented for {Name} (diffusers raises NotImplementedError); use \"epsilon\" or \"v_prediction\"") { Key = "prediction_type" };
        DDPMScheduler.Check(Name, "prediction_type", c.PredictionType, ["epsilon", "v_prediction"]);
        DDPMScheduler.Check(Name, "timestep_spacing", c.TimestepSpacing, ["linspace", "leading", "trailing"]);
        if (c.RescaleBetasZeroSnr) SetAlphasCumprod([.. AlphasCumprodValues[..^1], MathF.Pow(2, -24)]);
        var train = SchedulerMath.TrainSigmas(AlphasCumprodValues).Reverse().ToArray();
        SetSigmas([.. train, 0f]);
        // diffusers keeps these float64 until set_timesteps.
        Timesteps = torch.tensor(SchedulerMath.NpLinspace(0, c.NumTrainTimesteps - 1, c.NumTrainTimesteps).Reverse().ToArray(), ScalarType.Float64);
        _schedule = TimestepValues;
    }

    /// <summary>Reads <see cref="StepOptions.Generators"/> (and <see cref="StepOptions.VarianceNoise"/>); draws on every step.</summary>
    public override IReadOnlySet<string> StepArguments => GeneratorOnly;
    /// <inheritdoc/>
    public override Tensor? Sigmas => _sigmas;
    /// <summary>
    /// diffusers' <c>step_index</c>: the index of the next step in <see cref="SchedulerBase.Timesteps"/>; null before
    /// the first step.
    /// </summary>
    public int? StepIndex => _stepIndex;

    /// <inheritdoc/>
    public override double InitNoiseSigma
    {
        get
        {
            float max = _sigmaValues.Max();
            return TypedConfig.TimestepSpacing is "linspace" or "trailing" ? max : ExactFloat32.Sqrt(max * max + 1f);
        }
    }

    /// <inheritdoc/>
    public override void SetTimesteps(int numInferenceSteps, Device? device = null)
    {
        CheckInferenceSteps(numInferenceSteps);
        var c = TypedConfig;
        NumInferenceSteps = numInferenceSteps;
        var ts = SigmaMath.FloatSpacing(Name, c.TimestepSpacing, c.NumTrainTimesteps, numInferenceSteps, c.StepsOffset);
        var sigmas = SigmaMath.InterpSigmas(ts, SchedulerMath.TrainSigmas(AlphasCumprodValues));
        Timesteps = torch.tensor(ts, device: device);
        SetSigmas([.. sigmas.Select(s => (float)s), 0f]);
        _schedule = TimestepValues;
        _stepIndex = null;
    }

    private void SetSigmas(float[] values)
    {
        _sigmaValues = values;
        _sigmas?.Dispose();
        _sigmas = torch.tensor(values).DetachFromDisposeScope();
    }

    /// <inheritdoc/>
    public override Tensor ScaleModelInput(Tensor sample, double timestep)
    {
        _stepIndex ??= SigmaMath.InitStepIndex(this, timestep, _schedule, Timesteps.dtype == ScalarType.Float32);
        float sigma = _sigmaValues[_stepIndex.Value];
        return sample / ExactFloat32.Sqrt(sigma * sigma + 1f);
    }

    /// <inheritdoc/>
    public override SchedulerOutput Step(Tensor modelOutput, double timestep, Tensor sample, StepOptions? options = null)
    {
        _stepIndex ??= SigmaMath.InitStepIndex(this, timestep, _schedule, Timesteps.dtype == ScalarType.Float32);
        int i = _stepIndex.Value;
        if (i + 1 >= _sigmaValues.Length)
            throw new DiffusersException($"{Name}: Step called more times than there are timesteps ({_schedule.Length}); call SetTimesteps to start a new loop");
        using var scope = torch.NewDisposeScope();
        float sigma = _sigmaValues[i];
        sample = sample.to(ScalarType.Float32);
        float s2 = sigma * sigma + 1f;
        var predOriginal = TypedConfig.PredictionType == "epsilon"
            ? sample - sigma * modelOutput
            : modelOutput * (-sigma / ExactFloat32.Sqrt(s2)) + sample / s2;
        float sigmaFrom = _sigmaValues[i], sigmaTo = _sigmaValues[i + 1];
        float sigmaUp = ExactFloat32.Sqrt(sigmaTo * sigmaTo * (sigmaFrom * sigmaFrom - sigmaTo * sigmaTo) / (sigmaFrom * sigmaFrom));
        float sigmaDown = ExactFloat32.Sqrt(sigmaTo * sigmaTo - sigmaUp * sigmaUp);
        var derivative = (sample - predOriginal) / sigma;
        float dt = sigmaDown - sigma;
        var prev = sample + derivative * dt;
        var noise = DrawNoise(modelOutput.shape, modelOutput.dtype, modelOutput.device, options ?? StepOptions.Default);
        prev = (prev + noise * sigmaUp).to(modelOutput.dtype);
        _stepIndex = i + 1;
        return new SchedulerOutput(prev.MoveToOuterDisposeScope(), predOriginal.MoveToOuterDisposeScope());
    }

    /// <inheritdoc/>
    public override Tensor AddNoise(Tensor originalSamples, Tensor noise, Tensor timesteps) =>
        SigmaMath.AddNoise(this, _sigmas, Timesteps, originalSamples, noise, timesteps);
}
