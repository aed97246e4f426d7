using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// diffusers' <c>EulerAncestralDiscreteScheduler</c> (k-diffusion's sample_euler_ancestral;
/// scheduling_euler_ancestral_discrete.py of 0.25.1): an Euler step to sigma_down plus fresh noise of
/// sigma_up, drawn from the generator on every step. One departure: sigma_up is capped at sigma_to, as k-diffusion's
/// get_ancestral_step caps it, which changes nothing except where diffusers' float32 sigma_down is NaN.
/// </summary>
public sealed class EulerAncestralDiscreteScheduler : SigmaSchedulerBase<EulerAncestralDiscreteScheduler, EulerAncestralDiscreteSchedulerConfig>
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>scheduler_config.json</c>.</summary>
    public const string Name = "EulerAncestralDiscreteScheduler";

    /// <summary>
    /// Builds the scheduler from <paramref name="config"/> (null: diffusers' defaults); a value out of range is a
    /// <see cref="ConfigException"/> naming the key.
    /// </summary>
    public EulerAncestralDiscreteScheduler(EulerAncestralDiscreteSchedulerConfig? config = null) : base(config) { }

    /// <inheritdoc/>
    protected override void InitCore()
    {
        var c = TypedConfig;
        if (c.PredictionType == "sample")
            throw new ConfigException($"{Name}: prediction_type \"sample\" is not implemented for {Name} (diffusers raises NotImplementedError); use \"epsilon\" or \"v_prediction\"") { Key = "prediction_type" };
        DDPMScheduler.Check(Name, "prediction_type", c.PredictionType, ["epsilon", "v_prediction"]);
        DDPMScheduler.Check(Name, "timestep_spacing", c.TimestepSpacing, ["linspace", "leading", "trailing"]);
        if (c.RescaleBetasZeroSnr) SetAlphasCumprod([.. AlphasCumprodValues[..^1], MathF.Pow(2, -24)]);
        var train = SchedulerMath.TrainSigmas(AlphasCumprodValues).Reverse().ToArray();
        // diffusers keeps these timesteps float64 until set_timesteps.
        SetSchedule([.. train, 0f],
            torch.tensor(SchedulerMath.NpLinspace(0, c.NumTrainTimesteps - 1, c.NumTrainTimesteps).Reverse().ToArray(), ScalarType.Float64), null);
    }

    /// <summary>Reads <see cref="StepOptions.Generators"/> (and <see cref="StepOptions.VarianceNoise"/>); draws on every step.</summary>
    public override IReadOnlySet<string> StepArguments => GeneratorOnly;

    /// <inheritdoc/>
    protected override void SetTimestepsCore(int numInferenceSteps, Device? device)
    {
        var (ts, train) = BeginSchedule(numInferenceSteps);
        var sigmas = SigmaMath.InterpSigmas(ts, train);
        SetSchedule([.. sigmas.Select(s => (float)s), 0f], torch.tensor(ts, device: device), null);
    }

    /// <inheritdoc/>
    protected override SchedulerOutput StepCore(Tensor modelOutput, double timestep, Tensor sample, StepOptions? options)
    {
        CheckStepInputs(modelOutput, sample);
        int i = BeginStep(timestep);
        using var scope = torch.NewDisposeScope();
        float sigma = SigmaValues[i];
        sample = sample.to(ScalarType.Float32);
        var predOriginal = PredictOriginal(modelOutput, sample, sigma);
        float sigmaFrom = SigmaValues[i], sigmaTo = SigmaValues[i + 1];
        // diffusers' float32 arithmetic, capped at sigma_to as k-diffusion's get_ancestral_step caps it: where
        // sigma_from >> sigma_to the quotient can round one ulp above sigma_to, and diffusers' sigma_down is then the
        // square root of a negative number (NaN latents; e.g. squaredcos_cap_v2 with 4 linspace or 3 trailing steps).
        float sigmaUp = MathF.Min(sigmaTo, ExactFloat32.Sqrt(sigmaTo * sigmaTo * (sigmaFrom * sigmaFrom - sigmaTo * sigmaTo) / (sigmaFrom * sigmaFrom)));
        float sigmaDown = ExactFloat32.Sqrt(sigmaTo * sigmaTo - sigmaUp * sigmaUp);
        var derivative = (sample - predOriginal) / sigma;
        float dt = sigmaDown - sigma;
        var prev = sample + derivative * dt;
        var noise = DrawNoise(modelOutput.shape, modelOutput.dtype, modelOutput.device, options ?? StepOptions.Default);
        prev = (prev + noise * sigmaUp).to(modelOutput.dtype);
        StepIndex = i + 1;
        return new SchedulerOutput(prev.MoveToOuterDisposeScope(), predOriginal.MoveToOuterDisposeScope());
    }
}
