using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// diffusers' <c>LCMScheduler</c> (latent consistency models, Luo et al. 2023; scheduling_lcm.py of 0.25.1):
/// each step maps to the consistency-model estimate x0 (<see cref="SchedulerOutput.PredOriginalSample"/> holds
/// diffusers' <c>denoised</c>) and re-noises it to the next timestep with fresh noise (none after the last step).
/// Timesteps come from the <c>original_inference_steps</c>-long distillation schedule.
/// </summary>
public sealed class LCMScheduler : SchedulerBase
{
    public const string Name = "LCMScheduler";

    private readonly Tensor _finalAlphaCumprod;
    private double[] _schedule = [];
    private int? _stepIndex;

    public LCMScheduler(LCMSchedulerConfig? config = null)
    {
        var c = config ?? new LCMSchedulerConfig();
        TypedConfig = c with { ClassName = Name };
        DDPMScheduler.Check(Name, "prediction_type", c.PredictionType, DDPMScheduler.PredictionTypes);
        if (c.BetaSchedule == "sigmoid" && c.TrainedBetas is null)
            throw new ConfigException($"{Name}: beta_schedule \"sigmoid\" is not implemented for {Name}; expected one of \"linear\", \"scaled_linear\", \"squaredcos_cap_v2\" (or trained_betas)") { Key = "beta_schedule" };
        InitBetas(c.NumTrainTimesteps, c.BetaStart, c.BetaEnd, c.BetaSchedule, c.TrainedBetas, c.RescaleBetasZeroSnr);
        _finalAlphaCumprod = (c.SetAlphaToOne ? torch.tensor(1.0f) : AlphasCumprod[0].clone()).DetachFromDisposeScope();
        Timesteps = torch.arange(c.NumTrainTimesteps - 1, -1, -1, ScalarType.Int64);
        _schedule = TimestepValues;
    }

    public override string ClassName => Name;
    public LCMSchedulerConfig TypedConfig { get; }
    public override SchedulerConfig Config => TypedConfig;
    public int? StepIndex => _stepIndex;
    public bool CustomTimesteps { get; private set; }
    public double FinalAlphaCumprod => _finalAlphaCumprod.item<float>();

    public static LCMScheduler FromConfig(Loading.DiffusersConfig other) =>
        new(other as LCMSchedulerConfig ?? SchedulerConfigs.Convert<LCMSchedulerConfig>(other, Name));

    public static LCMScheduler FromPretrained(string idOrPath, string? subfolder = null, Loading.LoadOptions? options = null) =>
        FromConfig(SchedulerFactory.ReadConfigFile(idOrPath, subfolder, options));

    public override void SetTimesteps(int numInferenceSteps, Device? device = null) =>
        SetTimesteps(numInferenceSteps, device, null, 1.0);

    public override void SetTimesteps(IReadOnlyList<long> timesteps, Device? device = null) =>
        SetTimesteps(timesteps, device, null, 1.0);

    /// <summary>diffusers' <c>set_timesteps(num_inference_steps, device, original_inference_steps, strength=...)</c>.</summary>
    public void SetTimesteps(int numInferenceSteps, Device? device, int? originalInferenceSteps, double strength)
    {
        CheckInferenceSteps(numInferenceSteps);
        var origin = OriginTimesteps(originalInferenceSteps, strength, out int originalSteps);
        int skipping = origin.Length / numInferenceSteps;
        if (skipping < 1)
            throw new DiffusersException(
                $"{Name}: original_inference_steps x strength = {originalSteps} x {strength} is smaller than num_inference_steps {numInferenceSteps}; " +
                $"reduce num_inference_steps below {(int)(originalSteps * strength)} or raise strength above {(double)numInferenceSteps / originalSteps}");
        if (numInferenceSteps > originalSteps)
            throw new DiffusersException(
                $"{Name}: num_inference_steps {numInferenceSteps} cannot be larger than original_inference_steps {originalSteps}: " +
                "the final timestep schedule is a subset of the original_inference_steps-sized schedule");
        NumInferenceSteps = numInferenceSteps;
        CustomTimesteps = false;
        var desc = origin.Reverse().ToArray();
        double step = desc.Length / (double)numInferenceSteps;   // np.linspace(0, len, N, endpoint=False)
        var ts = Enumerable.Range(0, numInferenceSteps).Select(i => desc[(long)Math.Floor(i * step)]).ToArray();
        Finish(ts, device);
    }

    /// <summary>Custom timesteps (descending, below num_train_timesteps), with diffusers' strength slicing.</summary>
    public void SetTimesteps(IReadOnlyList<long> timesteps, Device? device, int? originalInferenceSteps, double strength)
    {
        OriginTimesteps(originalInferenceSteps, strength, out _);
        if (timesteps.Count == 0) throw new DiffusersException($"{Name}: custom timesteps must not be empty");
        for (int i = 1; i < timesteps.Count; i++)
            if (timesteps[i] >= timesteps[i - 1])
                throw new DiffusersException($"{Name}: custom timesteps must be in descending order; {timesteps[i]} follows {timesteps[i - 1]}");
        if (timesteps[0] >= NumTrainTimesteps)
            throw new DiffusersException($"{Name}: custom timesteps must start before num_train_timesteps {NumTrainTimesteps}, got {timesteps[0]}");
        if (timesteps[^1] < 0)
            throw new DiffusersException($"{Name}: custom timesteps must not be negative, got {timesteps[^1]}");
        NumInferenceSteps = timesteps.Count;
        CustomTimesteps = true;
        int init = Math.Min((int)(timesteps.Count * strength), timesteps.Count);
        int tStart = Math.Max(timesteps.Count - init, 0);
        Finish(timesteps.Skip(tStart * Order).ToArray(), device);
    }

    private long[] OriginTimesteps(int? originalInferenceSteps, double strength, out int originalSteps)
    {
        originalSteps = originalInferenceSteps ?? TypedConfig.OriginalInferenceSteps;
        if (originalSteps <= 0 || originalSteps > NumTrainTimesteps)
            throw new DiffusersException($"{Name}: original_inference_steps {originalSteps} must be in [1, num_train_timesteps {NumTrainTimesteps}]");
        long k = NumTrainTimesteps / originalSteps;
        int count = (int)(originalSteps * strength);
        return Enumerable.Range(1, Math.Max(count, 0)).Select(i => i * k - 1).ToArray();
    }

    private void Finish(long[] ts, Device? device)
    {
        Timesteps = torch.tensor(ts, ScalarType.Int64, device);
        _schedule = TimestepValues;
        _stepIndex = null;
    }

    /// <summary>The consistency-model boundary scalings c_skip, c_out at <paramref name="timestep"/> (float32, as for a tensor timestep).</summary>
    public (Tensor CSkip, Tensor COut) ScalingsForBoundaryCondition(long timestep)
    {
        const double sigmaData = 0.5;
        using var t = torch.tensor(timestep);
        var scaled = t * TypedConfig.TimestepScaling;
        var cSkip = sigmaData * sigmaData / (scaled.pow(2) + sigmaData * sigmaData);
        var cOut = scaled / (scaled.pow(2) + sigmaData * sigmaData).pow(0.5);
        return (cSkip, cOut);
    }

    public override SchedulerOutput Step(Tensor modelOutput, double timestep, Tensor sample, Generator? generator = null)
    {
        if (NumInferenceSteps is not int n)
            throw new DiffusersException($"{Name}: the number of inference steps is not set; call SetTimesteps before Step");
        long t = CheckTrainTimestep(timestep);
        _stepIndex ??= SigmaMath.InitStepIndex(this, timestep, _schedule, false);
        int i = _stepIndex.Value;
        var c = TypedConfig;
        using var scope = torch.NewDisposeScope();
        long prevT = i + 1 < _schedule.Length ? (long)_schedule[i + 1] : t;
        var alphaProdT = AlphasCumprod[t];
        var alphaProdTPrev = prevT >= 0 ? AlphasCumprod[prevT] : _finalAlphaCumprod;
        var betaProdT = 1 - alphaProdT;
        var betaProdTPrev = 1 - alphaProdTPrev;
        var (cSkip, cOut) = ScalingsForBoundaryCondition(t);

        Tensor predOriginal = c.PredictionType switch
        {
            "epsilon" => (sample - betaProdT.sqrt() * modelOutput) / alphaProdT.sqrt(),
            "sample" => modelOutput.alias(),
            _ => alphaProdT.sqrt() * sample - betaProdT.sqrt() * modelOutput,
        };
        if (c.Thresholding)
            predOriginal = SchedulerMath.ThresholdSample(predOriginal, c.DynamicThresholdingRatio, c.SampleMaxValue);
        else if (c.ClipSample)
            predOriginal = predOriginal.clamp(-c.ClipSampleRange, c.ClipSampleRange);

        var denoised = cOut * predOriginal + cSkip * sample;
        Tensor prev;
        if (i != n - 1)
        {
            var noise = DrawNoise(modelOutput.shape, denoised.dtype, modelOutput.device, generator);
            prev = alphaProdTPrev.sqrt() * denoised + betaProdTPrev.sqrt() * noise;
        }
        else prev = denoised.alias();
        _stepIndex = i + 1;
        return new SchedulerOutput(prev.MoveToOuterDisposeScope(), denoised.MoveToOuterDisposeScope());
    }

    public override Tensor AddNoise(Tensor originalSamples, Tensor noise, Tensor timesteps) =>
        AlphaMath.AddNoise(this, AlphasCumprod, originalSamples, noise, timesteps);

    public override Tensor GetVelocity(Tensor sample, Tensor noise, Tensor timesteps) =>
        AlphaMath.GetVelocity(this, AlphasCumprod, sample, noise, timesteps);
}
