using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// diffusers' <c>HeunDiscreteScheduler</c> (Karras et al. 2022, Algorithm 1; scheduling_heun_discrete.py of
/// 0.25.1): a second-order method, two model calls per step (every inner timestep appears twice in
/// <see cref="SchedulerBase.Timesteps"/>); the first call takes an Euler step, the second corrects it.
/// </summary>
public sealed class HeunDiscreteScheduler : SigmaSchedulerBase<HeunDiscreteScheduler, HeunDiscreteSchedulerConfig>
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>scheduler_config.json</c>.</summary>
    public const string Name = "HeunDiscreteScheduler";

    private Tensor? _prevDerivative, _sample;
    private float? _dt;

    /// <summary>
    /// Builds the scheduler from <paramref name="config"/> (null: diffusers' defaults); a value out of range is a
    /// <see cref="ConfigException"/> naming the key.
    /// </summary>
    public HeunDiscreteScheduler(HeunDiscreteSchedulerConfig? config = null) : base(config, "exp") { }

    /// <inheritdoc/>
    protected override void InitCore()
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
    public override int Order => 2;

    /// <summary>True before the first (Euler) half of a step, false before the correcting second half.</summary>
    public bool StateInFirstOrder => _dt is null;

    /// <inheritdoc/>
    protected override void SetTimestepsCore(int numInferenceSteps, Device? device)
    {
        var c = TypedConfig;
        int n = numInferenceSteps;
        var (ts, train) = BeginSchedule(n);
        var sigmas = SigmaMath.InterpSigmas(ts, train);
        double[] tsValues = ts.Select(v => (double)v).ToArray();
        if (c.UseKarrasSigmas == true)
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
        // diffusers keeps the Karras timesteps float64 (np.array of _sigma_to_t results), else float32.
        SetSchedule(doubled.ToArray(), c.UseKarrasSigmas == true
            ? torch.tensor(tDoubled.ToArray(), ScalarType.Float64, device)
            : torch.tensor(tDoubled.Select(v => (float)v).ToArray(), device: device), device);
        ResetState();
    }

    private void ResetState()
    {
        Release(_prevDerivative); _prevDerivative = null;
        _dt = null;
        Release(_sample); _sample = null;
    }

    /// <inheritdoc/>
    protected override SchedulerOutput StepCore(Tensor modelOutput, double timestep, Tensor sample, StepOptions? options)
    {
        CheckStepInputs(modelOutput, sample);
        int i = BeginCountedStep(timestep);
        using var scope = torch.NewDisposeScope();
        bool first = StateInFirstOrder;
        float sigma = first ? SigmaValues[i] : SigmaValues[i - 1];
        float sigmaNext = first ? SigmaValues[i + 1] : SigmaValues[i];
        float sigmaHat = sigma * 1f;  // gamma = 0
        float sigmaInput = first ? sigmaHat : sigmaNext;
        var predOriginal = PredictOriginal(modelOutput, sample, sigmaInput);
        if (TypedConfig.ClipSample == true)
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
        StepIndex = i + 1;
        return new SchedulerOutput(prev.MoveToOuterDisposeScope(), predOriginal.MoveToOuterDisposeScope());
    }

    /// <inheritdoc/>
    protected override Tensor AddNoiseCore(Tensor originalSamples, Tensor noise, Tensor timesteps) =>
        AddNoiseCounted(originalSamples, noise, timesteps);
}
