using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// diffusers' <c>EulerDiscreteScheduler</c> (Karras et al. 2022, Algorithm 2; scheduling_euler_discrete.py of
/// 0.25.1): sigma-space Euler steps with optional churn (s_churn, s_tmin, s_tmax, s_noise), Karras sigmas,
/// linear / log-linear sigma interpolation, discrete or continuous timesteps. Timesteps are float32. It draws
/// one noise tensor on every step (used only when the churn is positive), as diffusers does.
/// </summary>
public sealed class EulerDiscreteScheduler : SchedulerBase
{
    public const string Name = "EulerDiscreteScheduler";

    private Tensor _sigmas;
    private double[] _schedule = [];
    private int? _stepIndex;

    public EulerDiscreteScheduler(EulerDiscreteSchedulerConfig? config = null)
    {
        var c = config ?? new EulerDiscreteSchedulerConfig();
        TypedConfig = c with { ClassName = Name };
        DDPMScheduler.Check(Name, "prediction_type", c.PredictionType, ["epsilon", "sample", "original_sample", "v_prediction"]);
        DDPMScheduler.Check(Name, "interpolation_type", c.InterpolationType, ["linear", "log_linear"]);
        DDPMScheduler.Check(Name, "timestep_spacing", c.TimestepSpacing, ["linspace", "leading", "trailing"]);
        DDPMScheduler.Check(Name, "timestep_type", c.TimestepType, ["discrete", "continuous"]);
        if (c.BetaSchedule == "sigmoid" && c.TrainedBetas is null)
            throw new ConfigException($"{Name}: beta_schedule \"sigmoid\" is not implemented for {Name}; expected one of \"linear\", \"scaled_linear\", \"squaredcos_cap_v2\" (or trained_betas)") { Key = "beta_schedule" };
        InitBetas(c.NumTrainTimesteps, c.BetaStart, c.BetaEnd, c.BetaSchedule, c.TrainedBetas, c.RescaleBetasZeroSnr);
        if (c.RescaleBetasZeroSnr) AlphasCumprod[-1] = torch.tensor(MathF.Pow(2, -24));
        var train = SchedulerMath.TrainSigmas(AlphasCumprod).Reverse().ToArray();
        var ts = SchedulerMath.NpLinspace(0, c.NumTrainTimesteps - 1, c.NumTrainTimesteps).Reverse().Select(v => (float)v).ToArray();
        _sigmas = torch.tensor(train.Append(0f).ToArray()).DetachFromDisposeScope();
        Timesteps = Continuous ? ContinuousTimesteps(train) : torch.tensor(ts);
        _schedule = TimestepValues;
    }

    public override string ClassName => Name;
    public EulerDiscreteSchedulerConfig TypedConfig { get; }
    public override SchedulerConfig Config => TypedConfig;
    public override Tensor? Sigmas => _sigmas;

    /// <summary>The index of the next step (null until the first ScaleModelInput / Step after SetTimesteps).</summary>
    public int? StepIndex => _stepIndex;

    /// <summary>Churn used by the interface <c>Step</c> (diffusers' step arguments; defaults as diffusers').</summary>
    public double SChurn { get; set; }
    public double STmin { get; set; }
    public double STmax { get; set; } = double.PositiveInfinity;
    public double SNoise { get; set; } = 1.0;

    private bool Continuous => TypedConfig.TimestepType == "continuous" && TypedConfig.PredictionType == "v_prediction";

    public override double InitNoiseSigma
    {
        get
        {
            float max = _sigmas.max().item<float>();
            return TypedConfig.TimestepSpacing is "linspace" or "trailing" ? max : MathF.Sqrt(max * max + 1f);
        }
    }

    public static EulerDiscreteScheduler FromConfig(Loading.DiffusersConfig other) =>
        new(other as EulerDiscreteSchedulerConfig ?? SchedulerConfigs.Convert<EulerDiscreteSchedulerConfig>(other, Name));

    public static EulerDiscreteScheduler FromPretrained(string idOrPath, string? subfolder = null, Loading.LoadOptions? options = null) =>
        FromConfig(SchedulerFactory.ReadConfigFile(idOrPath, subfolder, options));

    public override void SetTimesteps(int numInferenceSteps, Device? device = null)
    {
        CheckInferenceSteps(numInferenceSteps);
        var c = TypedConfig;
        int n = numInferenceSteps;
        NumInferenceSteps = n;
        var ts = SigmaMath.FloatSpacing(Name, c.TimestepSpacing, c.NumTrainTimesteps, n, c.StepsOffset);
        var train = SchedulerMath.TrainSigmas(AlphasCumprod);
        var logSigmas = SigmaMath.Log32(train);
        double[] sigmas;
        if (c.InterpolationType == "linear")
            sigmas = SigmaMath.InterpSigmas(ts, train);
        else
        {
            using var l = torch.tensor(SchedulerMath.Linspace32(logSigmas[^1], logSigmas[0], n + 1));
            using var e = l.exp();
            sigmas = e.data<float>().Select(v => (double)v).ToArray();
        }
        if (c.UseKarrasSigmas)
        {
            sigmas = SigmaMath.Karras(sigmas, n, c.SigmaMin, c.SigmaMax);
            ts = sigmas.Select(s => (float)SigmaMath.SigmaToT(s, logSigmas)).ToArray();
        }
        var sig32 = sigmas.Select(s => (float)s).ToArray();
        Timesteps = Continuous ? ContinuousTimesteps(sig32).to(device ?? CPU) : torch.tensor(ts, device: device);
        _sigmas.Dispose();
        _sigmas = torch.tensor(sig32.Append(0f).ToArray()).DetachFromDisposeScope();
        _schedule = TimestepValues;
        _stepIndex = null;
    }

    private static Tensor ContinuousTimesteps(float[] sigmas)
    {
        using var s = torch.tensor(sigmas);
        using var l = s.log();
        return 0.25 * l;
    }

    public override Tensor ScaleModelInput(Tensor sample, double timestep)
    {
        _stepIndex ??= SigmaMath.InitStepIndex(this, timestep, _schedule, Timesteps.dtype == ScalarType.Float32);
        using var sigma = _sigmas[_stepIndex.Value];
        using var denom = (sigma.pow(2) + 1).pow(0.5);
        return sample / denom;
    }

    public override SchedulerOutput Step(Tensor modelOutput, double timestep, Tensor sample, Generator? generator = null) =>
        Step(modelOutput, timestep, sample, SChurn, STmin, STmax, SNoise, generator);

    /// <summary>diffusers' <c>step(model_output, timestep, sample, s_churn, s_tmin, s_tmax, s_noise, generator)</c>.</summary>
    public SchedulerOutput Step(Tensor modelOutput, double timestep, Tensor sample, double sChurn, double sTmin = 0.0,
        double sTmax = double.PositiveInfinity, double sNoise = 1.0, Generator? generator = null)
    {
        _stepIndex ??= SigmaMath.InitStepIndex(this, timestep, _schedule, Timesteps.dtype == ScalarType.Float32);
        int i = _stepIndex.Value;
        if (i + 1 >= _sigmas.shape[0])
            throw new DiffusersException($"{Name}: Step called more times than there are timesteps ({_schedule.Length}); call SetTimesteps to start a new loop");
        using var scope = torch.NewDisposeScope();
        var sigma = _sigmas[i];
        float sigmaF = sigma.item<float>();
        double gamma = sTmin <= sigmaF && sigmaF <= sTmax ? Math.Min(sChurn / (_sigmas.shape[0] - 1), Math.Sqrt(2) - 1) : 0.0;

        var noise = DrawNoise(modelOutput.shape, modelOutput.dtype, modelOutput.device, generator);
        var eps = noise * sNoise;
        var sigmaHat = sigma * (gamma + 1);
        if (gamma > 0)
            sample = sample + eps * (sigmaHat.pow(2) - sigma.pow(2)).pow(0.5);

        Tensor predOriginal = TypedConfig.PredictionType switch
        {
            "epsilon" => sample - sigmaHat * modelOutput,
            "v_prediction" => modelOutput * (-sigma / (sigma.pow(2) + 1).pow(0.5)) + sample / (sigma.pow(2) + 1),
            _ => modelOutput.alias(),
        };
        var derivative = (sample - predOriginal) / sigmaHat;
        var dt = _sigmas[i + 1] - sigmaHat;
        var prev = (sample + derivative * dt).to(modelOutput.dtype);
        _stepIndex = i + 1;
        return new SchedulerOutput(prev.MoveToOuterDisposeScope(), predOriginal.MoveToOuterDisposeScope());
    }

    public override Tensor AddNoise(Tensor originalSamples, Tensor noise, Tensor timesteps) =>
        SigmaMath.AddNoise(this, _sigmas, Timesteps, originalSamples, noise, timesteps);
}
