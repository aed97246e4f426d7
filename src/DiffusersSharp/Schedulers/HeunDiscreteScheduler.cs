using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// diffusers' <c>HeunDiscreteScheduler</c> (Karras et al. 2022, Algorithm 1; scheduling_heun_discrete.py of
/// 0.25.1): a second-order method, two model calls per step (every inner timestep appears twice in
/// <see cref="SchedulerBase.Timesteps"/>); the first call takes an Euler step, the second corrects it.
/// </summary>
public sealed class HeunDiscreteScheduler : SchedulerBase
{
    public const string Name = "HeunDiscreteScheduler";

    private Tensor _sigmas = null!;
    private double[] _schedule = [];
    private int? _stepIndex;
    private readonly Dictionary<double, int> _indexCounter = [];
    private Tensor? _prevDerivative, _dt, _sample;

    public HeunDiscreteScheduler(HeunDiscreteSchedulerConfig? config = null)
    {
        var c = config ?? new HeunDiscreteSchedulerConfig();
        TypedConfig = c with { ClassName = Name };
        DDPMScheduler.Check(Name, "prediction_type", c.PredictionType, DDPMScheduler.PredictionTypes);
        DDPMScheduler.Check(Name, "timestep_spacing", c.TimestepSpacing, ["linspace", "leading", "trailing"]);
        if (c.BetaSchedule == "exp" && c.TrainedBetas is null)
        {
            InitBetas(c.NumTrainTimesteps, c.BetaStart, c.BetaEnd, "linear", SchedulerMath.BetasForAlphaBar(c.NumTrainTimesteps, exp: true).data<float>().Select(f => (double)f).ToArray());
        }
        else
        {
            if (c.BetaSchedule == "sigmoid" && c.TrainedBetas is null)
                throw new ConfigException($"{Name}: beta_schedule \"sigmoid\" is not implemented for {Name}; expected one of \"linear\", \"scaled_linear\", \"squaredcos_cap_v2\", \"exp\" (or trained_betas)") { Key = "beta_schedule" };
            InitBetas(c.NumTrainTimesteps, c.BetaStart, c.BetaEnd, c.BetaSchedule, c.TrainedBetas);
        }
        SetTimesteps(c.NumTrainTimesteps);
        NumInferenceSteps = c.NumTrainTimesteps;
    }

    public override string ClassName => Name;
    public HeunDiscreteSchedulerConfig TypedConfig { get; }
    public override SchedulerConfig Config => TypedConfig;
    public override Tensor? Sigmas => _sigmas;
    public override int Order => 2;
    public int? StepIndex => _stepIndex;

    /// <summary>True before the first (Euler) half of a step, false before the correcting second half.</summary>
    public bool StateInFirstOrder => _dt is null;

    public override double InitNoiseSigma
    {
        get
        {
            float max = _sigmas.max().item<float>();
            return TypedConfig.TimestepSpacing is "linspace" or "trailing" ? max : MathF.Sqrt(max * max + 1f);
        }
    }

    public static HeunDiscreteScheduler FromConfig(Loading.DiffusersConfig other) =>
        new(other as HeunDiscreteSchedulerConfig ?? SchedulerConfigs.Convert<HeunDiscreteSchedulerConfig>(other, Name));

    public static HeunDiscreteScheduler FromPretrained(string idOrPath, string? subfolder = null, Loading.LoadOptions? options = null) =>
        FromConfig(SchedulerFactory.ReadConfigFile(idOrPath, subfolder, options));

    public override void SetTimesteps(int numInferenceSteps, Device? device = null)
    {
        CheckInferenceSteps(numInferenceSteps);
        var c = TypedConfig;
        int n = numInferenceSteps;
        NumInferenceSteps = n;
        var ts = SigmaMath.FloatSpacing(Name, c.TimestepSpacing, c.NumTrainTimesteps, n, c.StepsOffset);
        var train = SchedulerMath.TrainSigmas(AlphasCumprod);
        var sigmas = SigmaMath.InterpSigmas(ts, train);
        double[] tsValues = ts.Select(v => (double)v).ToArray();
        if (c.UseKarrasSigmas)
        {
            var logSigmas = SigmaMath.Log32(train);
            sigmas = SigmaMath.Karras(sigmas, n);
            tsValues = sigmas.Select(s => SigmaMath.SigmaToT(s, logSigmas)).ToArray();
        }
        var s32 = sigmas.Select(s => (float)s).Append(0f).ToArray();
        // cat([s[:1], s[1:-1].repeat_interleave(2), s[-1:]]) and cat([t[:1], t[1:].repeat_interleave(2)])
        var doubled = new List<float> { s32[0] };
        for (int i = 1; i < s32.Length - 1; i++) { doubled.Add(s32[i]); doubled.Add(s32[i]); }
        doubled.Add(s32[^1]);
        var tDoubled = new List<double> { tsValues[0] };
        for (int i = 1; i < tsValues.Length; i++) { tDoubled.Add(tsValues[i]); tDoubled.Add(tsValues[i]); }
        _sigmas?.Dispose();
        _sigmas = torch.tensor(doubled.ToArray(), device: device).DetachFromDisposeScope();
        // diffusers keeps the Karras timesteps float64 (np.array of _sigma_to_t results), else float32.
        Timesteps = c.UseKarrasSigmas
            ? torch.tensor(tDoubled.ToArray(), ScalarType.Float64, device)
            : torch.tensor(tDoubled.Select(v => (float)v).ToArray(), device: device);
        _schedule = TimestepValues;
        ResetState();
        _stepIndex = null;
        _indexCounter.Clear();
    }

    private void ResetState()
    {
        _prevDerivative?.Dispose(); _prevDerivative = null;
        _dt?.Dispose(); _dt = null;
        _sample?.Dispose(); _sample = null;
    }

    private bool F32 => Timesteps.dtype == ScalarType.Float32;

    public override Tensor ScaleModelInput(Tensor sample, double timestep)
    {
        _stepIndex ??= SigmaMath.InitStepIndex(this, timestep, _schedule, F32);
        using var sigma = _sigmas[_stepIndex.Value];
        using var denom = (sigma.pow(2) + 1).pow(0.5);
        return sample / denom;
    }

    public override SchedulerOutput Step(Tensor modelOutput, double timestep, Tensor sample, Generator? generator = null)
    {
        _stepIndex ??= SigmaMath.InitStepIndex(this, timestep, _schedule, F32);
        int i = _stepIndex.Value;
        if (i + 1 >= _sigmas.shape[0])
            throw new DiffusersException($"{Name}: Step called more times than there are timesteps ({_schedule.Length}); call SetTimesteps to start a new loop");
        double key = F32 ? (float)timestep : timestep;
        _indexCounter[key] = _indexCounter.GetValueOrDefault(key) + 1;
        using var scope = torch.NewDisposeScope();
        bool first = StateInFirstOrder;
        var sigma = first ? _sigmas[i] : _sigmas[i - 1];
        var sigmaNext = first ? _sigmas[i + 1] : _sigmas[i];
        var sigmaHat = sigma * 1;  // gamma = 0
        var sigmaInput = first ? sigmaHat : sigmaNext;
        Tensor predOriginal = TypedConfig.PredictionType switch
        {
            "epsilon" => sample - sigmaInput * modelOutput,
            "v_prediction" => modelOutput * (-sigmaInput / (sigmaInput.pow(2) + 1).pow(0.5)) + sample / (sigmaInput.pow(2) + 1),
            _ => modelOutput.alias(),
        };
        if (TypedConfig.ClipSample)
            predOriginal = predOriginal.clamp(-TypedConfig.ClipSampleRange, TypedConfig.ClipSampleRange);

        Tensor derivative, dt;
        if (first)
        {
            derivative = (sample - predOriginal) / sigmaHat;
            dt = sigmaNext - sigmaHat;
            _prevDerivative = Keep(derivative);
            _dt = Keep(dt);
            _sample = Keep(sample);
        }
        else
        {
            derivative = (sample - predOriginal) / sigmaNext;
            derivative = (_prevDerivative! + derivative) / 2;
            dt = _dt!.alias();
            sample = _sample!.alias();
            ResetState();
        }
        var prev = sample + derivative * dt;
        _stepIndex = i + 1;
        return new SchedulerOutput(prev.MoveToOuterDisposeScope(), predOriginal.MoveToOuterDisposeScope());
    }

    /// <summary>diffusers' <c>index_for_timestep</c>: the second match before any step, else the match the step counter points at.</summary>
    private long IndexForTimestepHeun(double t)
    {
        double key = F32 ? (float)t : t;
        var matches = Enumerable.Range(0, _schedule.Length).Where(i => _schedule[i] == key).ToList();
        if (matches.Count == 0)
            throw new DiffusersException($"{Name}: add_noise timestep {key} is not in the scheduler's timesteps");
        int pos = _indexCounter.Count == 0 ? (matches.Count > 1 ? 1 : 0) : _indexCounter.GetValueOrDefault(key);
        if (pos >= matches.Count)
            throw new DiffusersException($"{Name}: add_noise timestep {key} has no occurrence #{pos + 1} in the scheduler's timesteps");
        return matches[pos];
    }

    public override Tensor AddNoise(Tensor originalSamples, Tensor noise, Tensor timesteps)
    {
        using var scope = torch.NewDisposeScope();
        var wanted = ToDoubles(timesteps);
        var idx = wanted.Select(IndexForTimestepHeun).ToArray();
        var sig = _sigmas.to(originalSamples.dtype, originalSamples.device)
            .index_select(0, torch.tensor(idx, device: originalSamples.device)).flatten();
        while (sig.dim() < originalSamples.dim()) sig = sig.unsqueeze(-1);
        return (originalSamples + noise * sig).MoveToOuterDisposeScope();
    }
}
