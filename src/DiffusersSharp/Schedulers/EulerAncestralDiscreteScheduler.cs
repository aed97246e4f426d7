using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// diffusers' <c>EulerAncestralDiscreteScheduler</c> (k-diffusion's sample_euler_ancestral;
/// scheduling_euler_ancestral_discrete.py of 0.25.1): an Euler step to sigma_down plus fresh noise of
/// sigma_up, drawn from the generator on every step.
/// </summary>
public sealed class EulerAncestralDiscreteScheduler : SchedulerBase
{
    public const string Name = "EulerAncestralDiscreteScheduler";

    private Tensor _sigmas;
    private double[] _schedule = [];
    private int? _stepIndex;

    public EulerAncestralDiscreteScheduler(EulerAncestralDiscreteSchedulerConfig? config = null)
    {
        var c = config ?? new EulerAncestralDiscreteSchedulerConfig();
        TypedConfig = c with { ClassName = Name };
        if (c.PredictionType == "sample")
            throw new ConfigException($"{Name}: prediction_type \"sample\" is not implemented for {Name} (diffusers raises NotImplementedError); use \"epsilon\" or \"v_prediction\"") { Key = "prediction_type" };
        DDPMScheduler.Check(Name, "prediction_type", c.PredictionType, ["epsilon", "v_prediction"]);
        DDPMScheduler.Check(Name, "timestep_spacing", c.TimestepSpacing, ["linspace", "leading", "trailing"]);
        if (c.BetaSchedule == "sigmoid" && c.TrainedBetas is null)
            throw new ConfigException($"{Name}: beta_schedule \"sigmoid\" is not implemented for {Name}; expected one of \"linear\", \"scaled_linear\", \"squaredcos_cap_v2\" (or trained_betas)") { Key = "beta_schedule" };
        InitBetas(c.NumTrainTimesteps, c.BetaStart, c.BetaEnd, c.BetaSchedule, c.TrainedBetas, c.RescaleBetasZeroSnr);
        if (c.RescaleBetasZeroSnr) AlphasCumprod[-1] = torch.tensor(MathF.Pow(2, -24));
        var train = SchedulerMath.TrainSigmas(AlphasCumprod).Reverse().ToArray();
        _sigmas = torch.tensor(train.Append(0f).ToArray()).DetachFromDisposeScope();
        // diffusers keeps these float64 until set_timesteps.
        Timesteps = torch.tensor(SchedulerMath.NpLinspace(0, c.NumTrainTimesteps - 1, c.NumTrainTimesteps).Reverse().ToArray(), ScalarType.Float64);
        _schedule = TimestepValues;
    }

    public override string ClassName => Name;
    public EulerAncestralDiscreteSchedulerConfig TypedConfig { get; }
    public override SchedulerConfig Config => TypedConfig;
    public override Tensor? Sigmas => _sigmas;
    public int? StepIndex => _stepIndex;

    public override double InitNoiseSigma
    {
        get
        {
            float max = _sigmas.max().item<float>();
            return TypedConfig.TimestepSpacing is "linspace" or "trailing" ? max : MathF.Sqrt(max * max + 1f);
        }
    }

    public static EulerAncestralDiscreteScheduler FromConfig(Loading.DiffusersConfig other) =>
        new(other as EulerAncestralDiscreteSchedulerConfig ?? SchedulerConfigs.Convert<EulerAncestralDiscreteSchedulerConfig>(other, Name));

    public static EulerAncestralDiscreteScheduler FromPretrained(string idOrPath, string? subfolder = null, Loading.LoadOptions? options = null) =>
        FromConfig(SchedulerFactory.ReadConfigFile(idOrPath, subfolder, options));

    public override void SetTimesteps(int numInferenceSteps, Device? device = null)
    {
        CheckInferenceSteps(numInferenceSteps);
        var c = TypedConfig;
        NumInferenceSteps = numInferenceSteps;
        var ts = SigmaMath.FloatSpacing(Name, c.TimestepSpacing, c.NumTrainTimesteps, numInferenceSteps, c.StepsOffset);
        var sigmas = SigmaMath.InterpSigmas(ts, SchedulerMath.TrainSigmas(AlphasCumprod));
        Timesteps = torch.tensor(ts, device: device);
        _sigmas.Dispose();
        _sigmas = torch.tensor(sigmas.Select(s => (float)s).Append(0f).ToArray()).DetachFromDisposeScope();
        _schedule = TimestepValues;
        _stepIndex = null;
    }

    public override Tensor ScaleModelInput(Tensor sample, double timestep)
    {
        _stepIndex ??= SigmaMath.InitStepIndex(this, timestep, _schedule, Timesteps.dtype == ScalarType.Float32);
        using var sigma = _sigmas[_stepIndex.Value];
        using var denom = (sigma.pow(2) + 1).pow(0.5);
        return sample / denom;
    }

    public override SchedulerOutput Step(Tensor modelOutput, double timestep, Tensor sample, Generator? generator = null)
    {
        _stepIndex ??= SigmaMath.InitStepIndex(this, timestep, _schedule, Timesteps.dtype == ScalarType.Float32);
        int i = _stepIndex.Value;
        if (i + 1 >= _sigmas.shape[0])
            throw new DiffusersException($"{Name}: Step called more times than there are timesteps ({_schedule.Length}); call SetTimesteps to start a new loop");
        using var scope = torch.NewDisposeScope();
        var sigma = _sigmas[i];
        sample = sample.to(ScalarType.Float32);
        var predOriginal = TypedConfig.PredictionType == "epsilon"
            ? sample - sigma * modelOutput
            : modelOutput * (-sigma / (sigma.pow(2) + 1).pow(0.5)) + sample / (sigma.pow(2) + 1);
        var sigmaFrom = _sigmas[i];
        var sigmaTo = _sigmas[i + 1];
        var sigmaUp = (sigmaTo.pow(2) * (sigmaFrom.pow(2) - sigmaTo.pow(2)) / sigmaFrom.pow(2)).pow(0.5);
        var sigmaDown = (sigmaTo.pow(2) - sigmaUp.pow(2)).pow(0.5);
        var derivative = (sample - predOriginal) / sigma;
        var dt = sigmaDown - sigma;
        var prev = sample + derivative * dt;
        var noise = DrawNoise(modelOutput.shape, modelOutput.dtype, modelOutput.device, generator);
        prev = (prev + noise * sigmaUp).to(modelOutput.dtype);
        _stepIndex = i + 1;
        return new SchedulerOutput(prev.MoveToOuterDisposeScope(), predOriginal.MoveToOuterDisposeScope());
    }

    public override Tensor AddNoise(Tensor originalSamples, Tensor noise, Tensor timesteps) =>
        SigmaMath.AddNoise(this, _sigmas, Timesteps, originalSamples, noise, timesteps);
}
