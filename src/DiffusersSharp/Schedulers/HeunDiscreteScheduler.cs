using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// diffusers' <c>HeunDiscreteScheduler</c> (Karras et al. 2022, Algorithm 1; scheduling_heun_discrete.py of
/// 0.25.1): a second-order method, two model calls per step (every inner timestep appears twice in
/// <see cref="SchedulerBase.Timesteps"/>); the first call takes an Euler step, the second corrects it.
/// </summary>
public sealed class HeunDiscreteScheduler : SchedulerBase<HeunDiscreteScheduler, HeunDiscreteSchedulerConfig>
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>scheduler_config.json</c>.</summary>
    public const string Name = "HeunDiscreteScheduler";

    private Tensor _sigmas = null!;
    private float[] _sigmaValues = [];
    private double[] _schedule = [];
    private int? _stepIndex;
    private readonly Dictionary<double, int> _indexCounter = [];
    private Tensor? _prevDerivative, _sample;
    private float? _dt;

    /// <summary>
    /// Builds the scheduler from <paramref name="config"/> (null: diffusers' defaults); a value out of range is a
    /// <see cref="ConfigException"/> naming the key.
    /// </summary>
    public HeunDiscreteScheduler(HeunDiscreteSchedulerConfig? config = null) : base(config, "exp")
    {
        var c = TypedConfig;
        DDPMScheduler.Check(Name, "prediction_type", c.PredictionType, DDPMScheduler.PredictionTypes);
        DDPMScheduler.Check(Name, "timestep_spacing", c.TimestepSpacing, ["linspace", "leading", "trailing"]);
        SetTimesteps(c.NumTrainTimesteps);
        NumInferenceSteps = c.NumTrainTimesteps;
    }

    /// <summary>Heun's step takes no keyword arguments.</summary>
    public override IReadOnlySet<string> StepArguments => NoStepArguments;
    /// <inheritdoc/>
    public override Tensor? Sigmas => _sigmas;
    /// <inheritdoc/>
    public override int Order => 2;
    /// <summary>
    /// diffusers' <c>step_index</c>: the index of the next step in <see cref="SchedulerBase.Timesteps"/>; null before
    /// the first step.
    /// </summary>
    public int? StepIndex => _stepIndex;

    /// <summary>True before the first (Euler) half of a step, false before the correcting second half.</summary>
    public bool StateInFirstOrder => _dt is null;

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
        int n = numInferenceSteps;
        NumInferenceSteps = n;
        var ts = SigmaMath.FloatSpacing(Name, c.TimestepSpacing, c.NumTrainTimesteps, n, c.StepsOffset);
        var train = SchedulerMath.TrainSigmas(AlphasCumprodValues);
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
        _sigmaValues = doubled.ToArray();
        _sigmas?.Dispose();
        _sigmas = torch.tensor(_sigmaValues, device: device).DetachFromDisposeScope();
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
        _dt = null;
        _sample?.Dispose(); _sample = null;
    }

    private bool F32 => Timesteps.dtype == ScalarType.Float32;

    /// <inheritdoc/>
    public override Tensor ScaleModelInput(Tensor sample, double timestep)
    {
        _stepIndex ??= SigmaMath.InitStepIndex(this, timestep, _schedule, F32);
        float sigma = _sigmaValues[_stepIndex.Value];
        return sample / ExactFloat32.Sqrt(sigma * sigma + 1f);
    }

    /// <inheritdoc/>
    public override SchedulerOutput Step(Tensor modelOutput, double timestep, Tensor sample, StepOptions? options = null)
    {
        _stepIndex ??= SigmaMath.InitStepIndex(this, timestep, _schedule, F32);
        int i = _stepIndex.Value;
        if (i + 1 >= _sigmaValues.Length)
            throw new DiffusersException($"{Name}: Step called more times than there are timesteps ({_schedule.Length}); call SetTimesteps to start a new loop");
        double key = F32 ? (float)timestep : timestep;
        _indexCounter[key] = _indexCounter.GetValueOrDefault(key) + 1;
        using var scope = torch.NewDisposeScope();
        bool first = StateInFirstOrder;
        float sigma = first ? _sigmaValues[i] : _sigmaValues[i - 1];
        float sigmaNext = first ? _sigmaValues[i + 1] : _sigmaValues[i];
        float sigmaHat = sigma * 1f;  // gamma = 0
        float sigmaInput = first ? sigmaHat : sigmaNext;
        float s2 = sigmaInput * sigmaInput + 1f;
        Tensor predOriginal = TypedConfig.PredictionType switch
        {
            "epsilon" => sample - sigmaInput * modelOutput,
            "v_prediction" => modelOutput * (-sigmaInput / ExactFloat32.Sqrt(s2)) + sample / s2,
            _ => modelOutput.alias(),
        };
        if (TypedConfig.ClipSample)
            predOriginal = predOriginal.clamp(-TypedConfig.ClipSampleRange, TypedConfig.ClipSampleRange);

        Tensor derivative;
        float dt;
        if (first)
        {
            // 2. the first-order (Euler) half
            derivative = (sample - predOriginal) / sigmaHat;
            dt = sigmaNext - sigmaHat;
            _prevDerivative = Keep(derivative);
            _dt = dt;
            _sample = Keep(sample);
        }
        else
        {
            // 2. the second-order (Heun) half: the mean of the two derivatives
            derivative = (sample - predOriginal) / sigmaNext;
            derivative = (_prevDerivative! + derivative) / 2;
            dt = _dt!.Value;
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

    /// <inheritdoc/>
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
