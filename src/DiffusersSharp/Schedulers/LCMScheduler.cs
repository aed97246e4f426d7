using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// diffusers' <c>LCMScheduler</c> (latent consistency models, Luo et al. 2023; scheduling_lcm.py of 0.25.1):
/// each step maps to the consistency-model estimate x0 (<see cref="SchedulerOutput.PredOriginalSample"/> holds
/// diffusers' <c>denoised</c>) and re-noises it to the next timestep with fresh noise (none after the last step).
/// Timesteps come from the <c>original_inference_steps</c>-long distillation schedule.
/// </summary>
public sealed class LCMScheduler : SchedulerBase<LCMScheduler, LCMSchedulerConfig>
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>scheduler_config.json</c>.</summary>
    public const string Name = "LCMScheduler";

    private float _finalAlphaCumprod;
    private double[] _schedule = [];
    private int? _stepIndex;

    /// <summary>
    /// Builds the scheduler from <paramref name="config"/> (null: diffusers' defaults); a value out of range is a
    /// <see cref="ConfigException"/> naming the key.
    /// </summary>
    public LCMScheduler(LCMSchedulerConfig? config = null) : base(config) { }

    /// <inheritdoc/>
    protected override void InitCore()
    {
        var c = TypedConfig;
        DDPMScheduler.Check(Name, "prediction_type", c.PredictionType, DDPMScheduler.PredictionTypes);
        _finalAlphaCumprod = c.SetAlphaToOne ? 1f : AlphaCumprodAt(0);
        Timesteps = torch.arange(c.NumTrainTimesteps - 1, -1, -1, ScalarType.Int64);
        _schedule = TimestepValues;
    }

    /// <summary>Reads <see cref="StepOptions.Generators"/> (and <see cref="StepOptions.VarianceNoise"/>).</summary>
    public override IReadOnlySet<string> StepArguments => GeneratorOnly;
    /// <summary>
    /// diffusers' <c>step_index</c>: the index of the next step in <see cref="SchedulerBase.Timesteps"/>; null before
    /// the first step.
    /// </summary>
    public int? StepIndex => _stepIndex;
    /// <inheritdoc/>
    public override bool AcceptsCustomTimesteps => true;

    /// <summary>diffusers' <c>custom_timesteps</c>: the timesteps were passed explicitly to SetTimesteps.</summary>
    public bool CustomTimesteps { get; private set; }
    /// <summary>
    /// alpha_prod used after the last timestep: 1, or alphas_cumprod[0] when set_alpha_to_one is false.
    /// </summary>
    public double FinalAlphaCumprod => _finalAlphaCumprod;

    /// <inheritdoc/>
    protected override void SetTimestepsCore(int numInferenceSteps, Device? device) =>
        SetTimesteps(numInferenceSteps, device, null, 1.0);

    /// <inheritdoc/>
    protected override void SetTimestepsCore(IReadOnlyList<long> timesteps, Device? device) =>
        SetTimesteps(timesteps, device, null, 1.0);

    /// <summary>diffusers' <c>set_timesteps(num_inference_steps, device, original_inference_steps, strength=...)</c>.</summary>
    public void SetTimesteps(int numInferenceSteps, Device? device, int? originalInferenceSteps, double strength)
    {
        ThrowIfDisposed();
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
        ThrowIfDisposed();
        OriginTimesteps(originalInferenceSteps, strength, out _);
        CheckCustomTimesteps(timesteps);
        NumInferenceSteps = timesteps.Count;
        CustomTimesteps = true;
        int init = Math.Min((int)(timesteps.Count * strength), timesteps.Count);
        int tStart = Math.Max(timesteps.Count - init, 0);
        Finish(timesteps.Skip(tStart * Order).ToArray(), device);
    }

    private long[] OriginTimesteps(int? originalInferenceSteps, double strength, out int originalSteps)
    {
        // diffusers takes any strength and fails only at a step on a timestep past the table (strength > 1)
        if (!(strength >= 0 && strength <= 1))
            throw new DiffusersException($"{Name}: strength {strength} must be in [0, 1]");
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

    /// <summary>
    /// The consistency-model boundary scalings c_skip, c_out at <paramref name="timestep"/> (float32, as diffusers
    /// computes them on a timestep tensor): with s = t · timestep_scaling, c_skip = σ_d² / (s² + σ_d²) and
    /// c_out = s / (s² + σ_d²)^½, σ_d = 0.5.
    /// </summary>
    public (float CSkip, float COut) ScalingsForBoundaryCondition(long timestep)
    {
        const float sigmaData2 = 0.25f;
        float scaled = timestep * (float)TypedConfig.TimestepScaling;
        float denom = scaled * scaled + sigmaData2;
        return (sigmaData2 / denom, scaled / ExactFloat32.Sqrt(denom));
    }

    /// <inheritdoc/>
    protected override SchedulerOutput StepCore(Tensor modelOutput, double timestep, Tensor sample, StepOptions? options)
    {
        CheckStepInputs(modelOutput, sample);
        if (NumInferenceSteps is not int n)
            throw new DiffusersException($"{Name}: the number of inference steps is not set; call SetTimesteps before Step");
        long t = CheckTrainTimestep(timestep);
        _stepIndex = SigmaMath.CurrentIndex(this, _stepIndex, timestep, _schedule, float32: false);
        // diffusers' step past the end keeps t as the previous timestep and adds noise again, without a word
        int i = SigmaMath.StepInRange(this, _stepIndex.Value, _schedule.Length);
        var c = TypedConfig;
        using var scope = torch.NewDisposeScope();
        // 1. the previous timestep (the next one of the schedule; t itself at the end)
        long prevT = i + 1 < _schedule.Length ? (long)_schedule[i + 1] : t;
        // 2. alphas and betas (float32 scalars, as diffusers' 0-dim tensors)
        float alphaProdT = AlphaCumprodAt(t);
        float alphaProdTPrev = prevT >= 0 ? AlphaCumprodAt(prevT) : _finalAlphaCumprod;
        float betaProdT = 1f - alphaProdT;
        float betaProdTPrev = 1f - alphaProdTPrev;
        // 3. boundary condition scalings
        var (cSkip, cOut) = ScalingsForBoundaryCondition(t);

        // 4. predicted x0
        float sqrtAlpha = ExactFloat32.Sqrt(alphaProdT), sqrtBeta = ExactFloat32.Sqrt(betaProdT);
        Tensor predOriginal = c.PredictionType switch
        {
            "epsilon" => (sample - sqrtBeta * modelOutput) / sqrtAlpha,
            "sample" => modelOutput.alias(),
            _ => sqrtAlpha * sample - sqrtBeta * modelOutput,
        };
        // 5. clip or threshold
        if (c.Thresholding)
            predOriginal = SchedulerMath.ThresholdSample(predOriginal, c.DynamicThresholdingRatio, c.SampleMaxValue);
        else if (c.ClipSample)
            predOriginal = predOriginal.clamp(-c.ClipSampleRange, c.ClipSampleRange);

        // 6. the consistency-model estimate; 7. re-noised to the next timestep (none after the last step)
        var denoised = cOut * predOriginal + cSkip * sample;
        Tensor prev;
        if (i != n - 1)
        {
            var noise = DrawNoise(modelOutput.shape, denoised.dtype, modelOutput.device, options ?? StepOptions.Default);
            prev = ExactFloat32.Sqrt(alphaProdTPrev) * denoised + ExactFloat32.Sqrt(betaProdTPrev) * noise;
        }
        else prev = denoised.alias();
        _stepIndex = i + 1;
        return new SchedulerOutput(prev.MoveToOuterDisposeScope(), denoised.MoveToOuterDisposeScope());
    }

    /// <inheritdoc/>
    protected override Tensor AddNoiseCore(Tensor originalSamples, Tensor noise, Tensor timesteps) =>
        AlphaMath.AddNoise(this, AlphasCumprodValues, originalSamples, noise, timesteps);

    /// <inheritdoc/>
    protected override Tensor GetVelocityCore(Tensor sample, Tensor noise, Tensor timesteps) =>
        AlphaMath.GetVelocity(this, AlphasCumprodValues, sample, noise, timesteps);
}
