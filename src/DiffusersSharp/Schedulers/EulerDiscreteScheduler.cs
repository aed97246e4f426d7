using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// diffusers' <c>EulerDiscreteScheduler</c> (Karras et al. 2022, Algorithm 2; scheduling_euler_discrete.py of
/// 0.25.1): sigma-space Euler steps with optional churn (s_churn, s_tmin, s_tmax, s_noise), Karras sigmas,
/// linear / log-linear sigma interpolation, discrete or continuous timesteps. Timesteps are float32. It draws
/// one noise tensor on every step (used only when the churn is positive), as diffusers does.
/// </summary>
public sealed class EulerDiscreteScheduler : SigmaSchedulerBase<EulerDiscreteScheduler, EulerDiscreteSchedulerConfig>
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>scheduler_config.json</c>.</summary>
    public const string Name = "EulerDiscreteScheduler";

    private static readonly IReadOnlySet<string> Arguments = new HashSet<string> { "s_churn", "s_tmin", "s_tmax", "s_noise", "generator" };

    /// <summary>
    /// Builds the scheduler from <paramref name="config"/> (null: diffusers' defaults); a value out of range is a
    /// <see cref="ConfigException"/> naming the key.
    /// </summary>
    public EulerDiscreteScheduler(EulerDiscreteSchedulerConfig? config = null) : base(config) { }

    /// <inheritdoc/>
    protected override void InitCore()
    {
        var c = TypedConfig;
        DDPMScheduler.Check(Name, "prediction_type", c.PredictionType, ["epsilon", "sample", "original_sample", "v_prediction"]);
        DDPMScheduler.Check(Name, "interpolation_type", c.InterpolationType, ["linear", "log_linear"]);
        DDPMScheduler.Check(Name, "timestep_spacing", c.TimestepSpacing, ["linspace", "leading", "trailing"]);
        DDPMScheduler.Check(Name, "timestep_type", c.TimestepType, ["discrete", "continuous"]);
        if (c.RescaleBetasZeroSnr) SetAlphasCumprod([.. AlphasCumprodValues[..^1], MathF.Pow(2, -24)]);
        var train = SchedulerMath.TrainSigmas(AlphasCumprodValues).Reverse().ToArray();
        var ts = SchedulerMath.NpLinspace(0, c.NumTrainTimesteps - 1, c.NumTrainTimesteps).Reverse().Select(v => (float)v).ToArray();
        SetSchedule([.. train, 0f], torch.tensor(Continuous ? ContinuousTimesteps(train) : ts), null);
    }

    /// <summary>s_churn, s_tmin, s_tmax, s_noise and the generator (a noise tensor is drawn on every step, as diffusers).</summary>
    public override IReadOnlySet<string> StepArguments => Arguments;

    private bool Continuous => TypedConfig.TimestepType == "continuous" && TypedConfig.PredictionType == "v_prediction";

    /// <inheritdoc/>
    protected override void SetTimestepsCore(int numInferenceSteps, Device? device)
    {
        var c = TypedConfig;
        int n = numInferenceSteps;
        var (ts, train) = BeginSchedule(n);
        var logSigmas = SigmaMath.Log32(train);
        double[] sigmas;
        if (c.InterpolationType == "linear")
            sigmas = SigmaMath.InterpSigmas(ts, train);
        else // torch.linspace(log σ_max... , n + 1).exp()
            sigmas = SchedulerMath.Linspace32(logSigmas[^1], logSigmas[0], n + 1).Select(v => (double)ExactFloat32.Exp(v)).ToArray();
        if (c.UseKarrasSigmas == true)
        {
            sigmas = SigmaMath.Karras(sigmas, n, c.SigmaMin, c.SigmaMax);
            ts = sigmas.Select(s => (float)SigmaMath.SigmaToT(s, logSigmas)).ToArray();
        }
        var sig32 = sigmas.Select(s => (float)s).ToArray();
        SetSchedule([.. sig32, 0f], torch.tensor(Continuous ? ContinuousTimesteps(sig32) : ts, device: device), null);
    }

    /// <summary>diffusers' continuous timesteps <c>0.25 * sigma.log()</c> (float32).</summary>
    private static float[] ContinuousTimesteps(float[] sigmas) => sigmas.Select(s => 0.25f * ExactFloat32.Log(s)).ToArray();

    /// <summary>
    /// diffusers' <c>step(model_output, timestep, sample, s_churn, s_tmin, s_tmax, s_noise, generator)</c>: reads the
    /// churn fields of <paramref name="options"/> and draws one noise tensor from its generator(s).
    /// </summary>
    protected override SchedulerOutput StepCore(Tensor modelOutput, double timestep, Tensor sample, StepOptions? options)
    {
        CheckStepInputs(modelOutput, sample);
        var o = options ?? StepOptions.Default;
        int i = BeginStep(timestep);
        using var scope = torch.NewDisposeScope();
        sample = sample.to(ScalarType.Float32);
        float sigma = SigmaValues[i];
        double gamma = o.STmin <= sigma && sigma <= o.STmax ? Math.Min(o.SChurn / (SigmaValues.Length - 1), Math.Sqrt(2) - 1) : 0.0;

        var noise = DrawNoise(modelOutput.shape, modelOutput.dtype, modelOutput.device, o);
        var eps = noise * o.SNoise;
        float sigmaHat = sigma * (float)(gamma + 1);
        if (gamma > 0)
            sample = sample + eps * ExactFloat32.Sqrt(sigmaHat * sigmaHat - sigma * sigma);

        var predOriginal = PredictOriginal(modelOutput, sample, sigma, epsilonSigma: sigmaHat);
        var derivative = (sample - predOriginal) / sigmaHat;
        float dt = SigmaValues[i + 1] - sigmaHat;
        var prev = (sample + derivative * dt).to(modelOutput.dtype);
        StepIndex = i + 1;
        return new SchedulerOutput(prev.MoveToOuterDisposeScope(), predOriginal.MoveToOuterDisposeScope());
    }
}
