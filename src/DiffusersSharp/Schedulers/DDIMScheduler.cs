using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// diffusers' <c>DDIMScheduler</c> (Song et al. 2020; scheduling_ddim.py of 0.25.1): the non-Markovian sampler,
/// deterministic at eta = 0, with <c>set_alpha_to_one</c>, clipping / dynamic thresholding, the three spacings,
/// zero-terminal-SNR rescaling and <c>use_clipped_model_output</c>.
/// </summary>
public sealed class DDIMScheduler : SchedulerBase<DDIMScheduler, DDIMSchedulerConfig>
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>scheduler_config.json</c>.</summary>
    public const string Name = "DDIMScheduler";

    private static readonly IReadOnlySet<string> Arguments = new HashSet<string> { "eta", "use_clipped_model_output", "generator", "variance_noise" };

    private float _finalAlphaCumprod;

    /// <summary>
    /// Builds the scheduler from <paramref name="config"/> (null: diffusers' defaults); a value out of range is a
    /// <see cref="ConfigException"/> naming the key.
    /// </summary>
    public DDIMScheduler(DDIMSchedulerConfig? config = null) : base(config) { }

    /// <inheritdoc/>
    protected override void InitCore()
    {
        var c = TypedConfig;
        DDPMScheduler.Check(Name, "prediction_type", c.PredictionType, DDPMScheduler.PredictionTypes);
        DDPMScheduler.Check(Name, "timestep_spacing", c.TimestepSpacing, ["linspace", "leading", "trailing"]);
        _finalAlphaCumprod = c.SetAlphaToOne ? 1f : AlphaCumprodAt(0);
        Timesteps = torch.arange(c.NumTrainTimesteps - 1, -1, -1, ScalarType.Int64);
    }

    /// <summary>eta, use_clipped_model_output, generator, variance_noise.</summary>
    public override IReadOnlySet<string> StepArguments => Arguments;

    /// <summary>alpha_prod used after the last timestep: 1, or alphas_cumprod[0] when set_alpha_to_one is false.</summary>
    public double FinalAlphaCumprod => _finalAlphaCumprod;

    /// <inheritdoc/>
    protected override void SetTimestepsCore(int numInferenceSteps, Device? device)
    {
        CheckInferenceSteps(numInferenceSteps);
        var c = TypedConfig;
        var ts = SchedulerMath.IntSpacing(Name, c.TimestepSpacing, c.NumTrainTimesteps, numInferenceSteps, c.StepsOffset);
        CheckSpacedTimesteps(ts, c.TimestepSpacing, numInferenceSteps, c.StepsOffset);
        NumInferenceSteps = numInferenceSteps;
        Timesteps = torch.tensor(ts, ScalarType.Int64, device);
    }

    /// <summary>
    /// diffusers' <c>step(model_output, timestep, sample, eta, use_clipped_model_output, generator, variance_noise)</c>:
    /// reads <see cref="StepOptions.Eta"/>, <see cref="StepOptions.UseClippedModelOutput"/> and, for eta &gt; 0, the
    /// generator(s) or <see cref="StepOptions.VarianceNoise"/>.
    /// </summary>
    protected override SchedulerOutput StepCore(Tensor modelOutput, double timestep, Tensor sample, StepOptions? options)
    {
        CheckStepInputs(modelOutput, sample);
        if (NumInferenceSteps is not int n)
            throw new DiffusersException($"{Name}: the number of inference steps is not set; call SetTimesteps before Step");
        var o = options ?? StepOptions.Default;
        if (double.IsNaN(o.Eta) || o.Eta < 0)
            throw new DiffusersException($"{Name}: eta must be a number ≥ 0 (0 = DDIM, 1 = DDPM-like), got {o.Eta}");
        var c = TypedConfig;
        long t = CheckTrainTimestep(timestep);
        long prevT = t - c.NumTrainTimesteps / n;
        using var scope = torch.NewDisposeScope();

        // 1.-2. alphas and betas (float32 scalars, as diffusers' 0-dim tensors)
        float alphaProdT = AlphaCumprodAt(t);
        float alphaProdTPrev = prevT >= 0 ? AlphaCumprodAt(prevT) : _finalAlphaCumprod;
        float betaProdT = 1f - alphaProdT;
        float sqrtAlpha = ExactFloat32.Sqrt(alphaProdT), sqrtBeta = ExactFloat32.Sqrt(betaProdT);

        // 3. predicted x0 and ε
        var (predOriginal, predEpsilon) = AlphaMath.PredictOriginalAndEpsilon(c.PredictionType, modelOutput, sample, sqrtAlpha, sqrtBeta);

        // 4. clip or threshold
        if (c.Thresholding)
            predOriginal = SchedulerMath.ThresholdSample(predOriginal, c.DynamicThresholdingRatio, c.SampleMaxValue);
        else if (c.ClipSample)
            predOriginal = predOriginal.clamp(-c.ClipSampleRange, c.ClipSampleRange);

        // 5.-6. σ_t(η) (formula (16) of the DDIM paper)
        float betaProdTPrev = 1f - alphaProdTPrev;
        float variance = betaProdTPrev / betaProdT * (1f - alphaProdT / alphaProdTPrev);
        float stdDevT = (float)o.Eta * ExactFloat32.Sqrt(variance);

        if (o.UseClippedModelOutput)
            predEpsilon = (sample - sqrtAlpha * predOriginal) / sqrtBeta;

        // 7. direction pointing to x_t; 8. x_{t-1} without the random noise
        var direction = ExactFloat32.Sqrt(1f - alphaProdTPrev - stdDevT * stdDevT) * predEpsilon;
        var prevSample = ExactFloat32.Sqrt(alphaProdTPrev) * predOriginal + direction;

        if (o.Eta > 0)
        {
            var varianceNoise = DrawNoise(modelOutput.shape, modelOutput.dtype, modelOutput.device, o);
            prevSample = prevSample + stdDevT * varianceNoise;
        }
        return new SchedulerOutput(prevSample.MoveToOuterDisposeScope(), predOriginal.alias().MoveToOuterDisposeScope());
    }

    /// <inheritdoc/>
    protected override Tensor AddNoiseCore(Tensor originalSamples, Tensor noise, Tensor timesteps) =>
        AlphaMath.AddNoise(this, AlphasCumprodValues, originalSamples, noise, timesteps);

    /// <inheritdoc/>
    protected override Tensor GetVelocityCore(Tensor sample, Tensor noise, Tensor timesteps) =>
        AlphaMath.GetVelocity(this, AlphasCumprodValues, sample, noise, timesteps);
}
