using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// diffusers' <c>DDPMScheduler</c> (Ho et al. 2020; scheduling_ddpm.py of 0.25.1): ancestral sampling with the
/// fixed or learned posterior variance, every beta schedule, prediction type, clipping / dynamic thresholding,
/// the three timestep spacings, zero-terminal-SNR rescaling and custom timesteps.
/// </summary>
public sealed class DDPMScheduler : SchedulerBase<DDPMScheduler, DDPMSchedulerConfig>
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>scheduler_config.json</c>.</summary>
    public const string Name = "DDPMScheduler";
    internal static readonly string[] VarianceTypes = ["fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log", "learned", "learned_range"];
    internal static readonly string[] PredictionTypes = ["epsilon", "sample", "v_prediction"];

    /// <summary>
    /// Builds the scheduler from <paramref name="config"/> (null: diffusers' defaults); a value out of range is a
    /// <see cref="ConfigException"/> naming the key.
    /// </summary>
    public DDPMScheduler(DDPMSchedulerConfig? config = null) : base(config, "sigmoid") { }

    /// <inheritdoc/>
    protected override void InitCore()
    {
        var c = TypedConfig;
        if (c.VarianceType is not null) Check(Name, "variance_type", c.VarianceType, VarianceTypes);   // null: fixed_small
        Check(Name, "prediction_type", c.PredictionType, PredictionTypes);
        Check(Name, "timestep_spacing", c.TimestepSpacing, ["linspace", "leading", "trailing"]);
        Timesteps = torch.arange(c.NumTrainTimesteps - 1, -1, -1, ScalarType.Int64);
    }

    /// <summary>Reads <see cref="StepOptions.Generators"/> (and <see cref="StepOptions.VarianceNoise"/>).</summary>
    public override IReadOnlySet<string> StepArguments => GeneratorOnly;

    /// <inheritdoc/>
    public override bool AcceptsCustomTimesteps => true;

    /// <summary>True after <see cref="SchedulerBase.SetTimesteps(IReadOnlyList{long}, Device?)"/>.</summary>
    public bool CustomTimesteps { get; private set; }

    /// <inheritdoc/>
    protected override void SetTimestepsCore(int numInferenceSteps, Device? device)
    {
        CheckInferenceSteps(numInferenceSteps);
        var c = TypedConfig;
        var ts = SchedulerMath.IntSpacing(Name, c.TimestepSpacing, c.NumTrainTimesteps, numInferenceSteps, c.StepsOffset);
        CheckSpacedTimesteps(ts, c.TimestepSpacing, numInferenceSteps, c.StepsOffset);
        NumInferenceSteps = numInferenceSteps;
        CustomTimesteps = false;
        Timesteps = torch.tensor(ts, ScalarType.Int64, device);
    }

    /// <inheritdoc/>
    protected override void SetTimestepsCore(IReadOnlyList<long> timesteps, Device? device)
    {
        CheckCustomTimesteps(timesteps);
        CustomTimesteps = true;
        NumInferenceSteps = null;
        Timesteps = torch.tensor(timesteps.ToArray(), ScalarType.Int64, device);
    }

    /// <summary>diffusers' <c>previous_timestep</c>: the next entry of custom timesteps, else t - T // N (-1 past the end).</summary>
    public long PreviousTimestep(long t)
    {
        if (CustomTimesteps)
        {
            int index = IndexForTimestep(t);
            var values = TimestepValues;
            return index == values.Length - 1 ? -1 : (long)values[index + 1];
        }
        int n = NumInferenceSteps ?? NumTrainTimesteps;
        return t - NumTrainTimesteps / n;
    }

    /// <inheritdoc/>
    protected override SchedulerOutput StepCore(Tensor modelOutput, double timestep, Tensor sample, StepOptions? options)
    {
        ArgumentNullException.ThrowIfNull(modelOutput);
        ArgumentNullException.ThrowIfNull(sample);
        var c = TypedConfig;
        long t = CheckTrainTimestep(timestep);
        long prevT = PreviousTimestep(t);
        using var scope = torch.NewDisposeScope();

        Tensor? predictedVariance = null;
        bool learned = c.VarianceType is "learned" or "learned_range";
        if (learned && modelOutput.dim() >= 2 && sample.dim() >= 2 && modelOutput.shape[1] == sample.shape[1] * 2)
        {
            var parts = modelOutput.split(sample.shape[1], 1);
            modelOutput = parts[0];
            predictedVariance = parts[1];
        }
        else if (learned)
            throw new DiffusersException(
                $"{Name}: variance_type \"{c.VarianceType}\" needs a model output with twice the sample's channels " +
                $"(mean and variance, dimension 1), got model_output of shape [{string.Join(", ", modelOutput.shape)}] " +
                $"for a sample of shape [{string.Join(", ", sample.shape)}]");
        CheckStepInputs(modelOutput, sample);

        // 1. alphas, betas (float32 scalars, as diffusers' 0-dim tensors)
        float alphaProdT = AlphaCumprodAt(t);
        float alphaProdTPrev = prevT >= 0 ? AlphaCumprodAt(prevT) : 1f;
        float betaProdT = 1f - alphaProdT;
        float betaProdTPrev = 1f - alphaProdTPrev;
        float currentAlphaT = alphaProdT / alphaProdTPrev;
        float currentBetaT = 1f - currentAlphaT;

        // 2. predicted x0
        Tensor predOriginal = c.PredictionType switch
        {
            "epsilon" => (sample - ExactFloat32.Sqrt(betaProdT) * modelOutput) / ExactFloat32.Sqrt(alphaProdT),
            "sample" => modelOutput.alias(),
            _ => ExactFloat32.Sqrt(alphaProdT) * sample - ExactFloat32.Sqrt(betaProdT) * modelOutput,
        };

        // 3. clip or threshold
        if (c.Thresholding)
            predOriginal = SchedulerMath.ThresholdSample(predOriginal, c.DynamicThresholdingRatio, c.SampleMaxValue);
        else if (c.ClipSample)
            predOriginal = predOriginal.clamp(-c.ClipSampleRange, c.ClipSampleRange);

        // 4.-5. the posterior mean μ_t (formula (7) of the DDPM paper)
        float predOriginalCoeff = ExactFloat32.Sqrt(alphaProdTPrev) * currentBetaT / betaProdT;
        float currentSampleCoeff = ExactFloat32.Sqrt(currentAlphaT) * betaProdTPrev / betaProdT;
        var prevSample = predOriginalCoeff * predOriginal + currentSampleCoeff * sample;

        // 6. noise
        if (t > 0)
        {
            var noise = DrawNoise(modelOutput.shape, modelOutput.dtype, modelOutput.device, options ?? StepOptions.Default);
            Tensor variance = c.VarianceType switch
            {
                "fixed_small_log" => ScalarVariance(t) * noise,
                "learned_range" => torch.exp(0.5 * LearnedRangeLogVariance(t, predictedVariance!)) * noise,
                "learned" => predictedVariance!.pow(0.5) * noise,
                _ => ExactFloat32.Sqrt(ScalarVariance(t)) * noise,
            };
            prevSample = prevSample + variance;
        }
        return new SchedulerOutput(prevSample.MoveToOuterDisposeScope(), predOriginal.MoveToOuterDisposeScope());
    }

    /// <inheritdoc/>
    /// <remarks>Also fixed_large_log: diffusers' step takes the square root of <c>_get_variance</c>'s log(β_t) &lt; 0 (NaN)
    /// at every timestep but the last.</remarks>
    protected override string? NonFiniteCauseCore(double timestep) =>
        TypedConfig.VarianceType == "fixed_large_log" && timestep > 0
            ? "variance_type fixed_large_log: the step adds sqrt(log(beta_t)) * noise, the square root of a negative number, as " +
              "diffusers' DDPMScheduler.step does; use fixed_small or fixed_large"
            : base.NonFiniteCauseCore(timestep);

    /// <summary>diffusers' <c>_get_variance</c> for the fixed variance types (a float32 scalar).</summary>
    private float ScalarVariance(long t)
    {
        var (variance, currentBetaT) = PosteriorVariance(t);
        return TypedConfig.VarianceType switch
        {
            null or "fixed_small" => variance,   // null: diffusers' _get_variance falls through every branch
            "fixed_small_log" => ExactFloat32.Exp(0.5f * ExactFloat32.Log(variance)),
            "fixed_large" => currentBetaT,
            _ => ExactFloat32.Log(currentBetaT), // fixed_large_log
        };
    }

    /// <summary>diffusers' <c>_get_variance</c> for learned_range: the model's interpolation between the two log variances.</summary>
    private Tensor LearnedRangeLogVariance(long t, Tensor predictedVariance)
    {
        var (variance, currentBetaT) = PosteriorVariance(t);
        float minLog = ExactFloat32.Log(variance), maxLog = ExactFloat32.Log(currentBetaT);
        var frac = (predictedVariance + 1) / 2;
        return frac * maxLog + (1 - frac) * minLog;
    }

    /// <summary>β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t (clamped at 1e-20), and β_t.</summary>
    private (float Variance, float CurrentBetaT) PosteriorVariance(long t)
    {
        long prevT = PreviousTimestep(t);
        float alphaProdT = AlphaCumprodAt(t);
        float alphaProdTPrev = prevT >= 0 ? AlphaCumprodAt(prevT) : 1f;
        float currentBetaT = 1f - alphaProdT / alphaProdTPrev;
        float variance = (1f - alphaProdTPrev) / (1f - alphaProdT) * currentBetaT;
        return (Math.Max(variance, 1e-20f), currentBetaT);
    }

    /// <inheritdoc/>
    protected override Tensor AddNoiseCore(Tensor originalSamples, Tensor noise, Tensor timesteps) =>
        AlphaMath.AddNoise(this, AlphasCumprodValues, originalSamples, noise, timesteps);

    /// <inheritdoc/>
    protected override Tensor GetVelocityCore(Tensor sample, Tensor noise, Tensor timesteps) =>
        AlphaMath.GetVelocity(this, AlphasCumprodValues, sample, noise, timesteps);

    internal static void Check(string cls, string key, string value, string[] allowed)
    {
        if (!allowed.Contains(value))
            throw new ConfigException($"{cls}: {key} \"{value}\" is not supported; expected one of {string.Join(", ", allowed.Select(a => "\"" + a + "\""))}") { Key = key };
    }
}
