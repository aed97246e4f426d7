using DiffusersSharp.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// diffusers' <c>KDPM2DiscreteScheduler</c> (0.25.1; k-diffusion's <c>sample_dpm_2</c>, Karras et al. 2022): each step
/// is two model calls, an Euler half-step to the log-midpoint sigma and a full step with the midpoint derivative.
/// <see cref="SchedulerBase.Timesteps"/> interleaves the midpoints' fractional timesteps (2N − 1 entries).
/// </summary>
public sealed class KDPM2DiscreteScheduler : KDpm2SchedulerBase<KDPM2DiscreteScheduler, KDPM2DiscreteSchedulerConfig>
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>scheduler_config.json</c>.</summary>
    public const string Name = "KDPM2DiscreteScheduler";

    /// <summary>
    /// Builds the scheduler from <paramref name="config"/> (null: diffusers' defaults); a value out of range is a
    /// <see cref="ConfigException"/> naming the key.
    /// </summary>
    public KDPM2DiscreteScheduler(KDPM2DiscreteSchedulerConfig? config = null) : base(config) { }

    /// <inheritdoc/>
    protected override void InitCore()
    {
        CheckOptions(Name, TypedConfig.PredictionType, TypedConfig.TimestepSpacing);
        SetTimesteps(TypedConfig.NumTrainTimesteps);
        NumInferenceSteps = null;
    }

    /// <summary>KDPM2's step takes no keyword arguments.</summary>
    public override IReadOnlySet<string> StepArguments => NoStepArguments;

    internal static void CheckOptions(string cls, string prediction, string spacing)
    {
        if (prediction == "sample")
            throw new ConfigException($"{cls}: prediction_type \"sample\" is not implemented for {cls} (diffusers raises NotImplementedError); use \"epsilon\" or \"v_prediction\"") { Key = "prediction_type" };
        if (prediction is not ("epsilon" or "v_prediction"))
            throw new ConfigException($"{cls}: prediction_type \"{prediction}\" must be \"epsilon\" or \"v_prediction\"") { Key = "prediction_type" };
        if (spacing is not ("linspace" or "leading" or "trailing"))
            throw SchedulerMath.BadSpacing(cls, spacing);
    }

    /// <inheritdoc/>
    protected override bool UseKarras => TypedConfig.UseKarrasSigmas == true;

    /// <inheritdoc/>
    protected override void SetTimestepsCore(int numInferenceSteps, Device? device)
    {
        var (sigmas, logSigmas, ts, f64) = BaseSchedule(numInferenceSteps);
        int n = ts.Length;   // the spaced timesteps: one more than asked where trailing spacing overshoots
        // sigmas_interpol = exp(lerp(log s, log roll(s, 1), 0.5)): entry 0 pairs s0 with the final 0 (NaN, unused)
        var interpol = new float[n + 1];
        for (int i = 0; i <= n; i++) interpol[i] = LogMidpoint(sigmas[i], sigmas[(i + n) % (n + 1)]);
        var tInterpol = interpol.Select(s => SigmaToTFloat32(s, logSigmas)).ToArray();
        // cat([t[:1], stack((t_interpol[1:-1], t[1:]), -1).flatten()])
        var all = new List<double> { ts[0] };
        for (int i = 1; i < n; i++) { all.Add(f64 ? tInterpol[i] : (float)tInterpol[i]); all.Add(ts[i]); }
        Install(sigmas, interpol, [.. all], f64, device);
    }

    /// <inheritdoc/>
    protected override float InputSigma(int i) => StateInFirstOrder ? SigmaValues[i] : InterpolTable[i];

    /// <inheritdoc/>
    protected override SchedulerOutput StepCore(Tensor modelOutput, double timestep, Tensor sample, StepOptions? options)
    {
        CheckStepInputs(modelOutput, sample);
        int i = BeginCountedStep(timestep);
        bool first = StateInFirstOrder;
        float sigma = first ? SigmaValues[i] : SigmaValues[i - 1];
        float sigmaInterpol = first ? InterpolTable[i + 1] : InterpolTable[i];
        float sigmaNext = first ? SigmaValues[i + 1] : SigmaValues[i];
        float sigmaHat = sigma; // gamma = 0
        using var scope = torch.NewDisposeScope();
        var x0 = PredictOriginal(modelOutput, sample, first ? sigmaHat : sigmaInterpol);
        Tensor prev;
        if (first)
        {
            var derivative = (sample - x0) / sigmaHat;
            FirstHalfSample = Keep(sample);
            prev = sample + derivative * (sigmaInterpol - sigmaHat);
        }
        else
        {
            var derivative = (sample - x0) / sigmaInterpol;
            var start = FirstHalfSample!;
            prev = start + derivative * (sigmaNext - sigmaHat);
            Release(start);
            FirstHalfSample = null;
        }
        StepIndex = i + 1;
        return new SchedulerOutput(prev.MoveToOuterDisposeScope(), x0.MoveToOuterDisposeScope());
    }
}
