using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// diffusers' <c>DDIMScheduler</c> (Song et al. 2020; scheduling_ddim.py of 0.25.1): the non-Markovian sampler,
/// deterministic at eta = 0, with <c>set_alpha_to_one</c>, clipping / dynamic thresholding, the three spacings,
/// zero-terminal-SNR rescaling and <c>use_clipped_model_output</c>.
/// </summary>
public sealed class DDIMScheduler : SchedulerBase
{
    public const string Name = "DDIMScheduler";

    private readonly Tensor _finalAlphaCumprod;

    public DDIMScheduler(DDIMSchedulerConfig? config = null)
    {
        var c = config ?? new DDIMSchedulerConfig();
        TypedConfig = c with { ClassName = Name };
        DDPMScheduler.Check(Name, "prediction_type", c.PredictionType, DDPMScheduler.PredictionTypes);
        DDPMScheduler.Check(Name, "timestep_spacing", c.TimestepSpacing, ["linspace", "leading", "trailing"]);
        if (c.BetaSchedule == "sigmoid" && c.TrainedBetas is null)
            throw new ConfigException($"{Name}: beta_schedule \"sigmoid\" is not implemented for {Name}; expected one of \"linear\", \"scaled_linear\", \"squaredcos_cap_v2\" (or trained_betas)") { Key = "beta_schedule" };
        InitBetas(c.NumTrainTimesteps, c.BetaStart, c.BetaEnd, c.BetaSchedule, c.TrainedBetas, c.RescaleBetasZeroSnr);
        _finalAlphaCumprod = (c.SetAlphaToOne ? torch.tensor(1.0f) : AlphasCumprod[0].clone()).DetachFromDisposeScope();
        Timesteps = torch.arange(c.NumTrainTimesteps - 1, -1, -1, ScalarType.Int64);
    }

    public override string ClassName => Name;
    public DDIMSchedulerConfig TypedConfig { get; }
    public override SchedulerConfig Config => TypedConfig;

    /// <summary>alpha_prod used after the last timestep: 1, or alphas_cumprod[0] when set_alpha_to_one is false.</summary>
    public double FinalAlphaCumprod => _finalAlphaCumprod.item<float>();

    /// <summary>The eta the interface <c>Step</c> uses (diffusers' step argument; 0 = deterministic DDIM).</summary>
    public double Eta { get; set; }

    /// <summary>The use_clipped_model_output the interface <c>Step</c> uses.</summary>
    public bool UseClippedModelOutput { get; set; }

    public static DDIMScheduler FromConfig(Loading.DiffusersConfig other) =>
        new(other as DDIMSchedulerConfig ?? SchedulerConfigs.Convert<DDIMSchedulerConfig>(other, Name));

    public static DDIMScheduler FromPretrained(string idOrPath, string? subfolder = null, Loading.LoadOptions? options = null) =>
        FromConfig(SchedulerFactory.ReadConfigFile(idOrPath, subfolder, options));

    public override void SetTimesteps(int numInferenceSteps, Device? device = null)
    {
        CheckInferenceSteps(numInferenceSteps);
        var c = TypedConfig;
        NumInferenceSteps = numInferenceSteps;
        var ts = SchedulerMath.IntSpacing(Name, c.TimestepSpacing, c.NumTrainTimesteps, numInferenceSteps, c.StepsOffset);
        Timesteps = torch.tensor(ts, ScalarType.Int64, device);
    }

    public override SchedulerOutput Step(Tensor modelOutput, double timestep, Tensor sample, Generator? generator = null) =>
        Step(modelOutput, timestep, sample, Eta, UseClippedModelOutput, generator);

    /// <summary>diffusers' <c>step(model_output, timestep, sample, eta, use_clipped_model_output, generator, variance_noise)</c>.</summary>
    public SchedulerOutput Step(Tensor modelOutput, double timestep, Tensor sample, double eta, bool useClippedModelOutput = false,
        Generator? generator = null, Tensor? varianceNoise = null)
    {
        if (NumInferenceSteps is not int n)
            throw new DiffusersException($"{Name}: the number of inference steps is not set; call SetTimesteps before Step");
        if (varianceNoise is not null && generator is not null)
            throw new DiffusersException($"{Name}: pass either a generator or variance noise to Step, not both");
        var c = TypedConfig;
        long t = CheckTrainTimestep(timestep);
        long prevT = t - c.NumTrainTimesteps / n;
        using var scope = torch.NewDisposeScope();

        var alphaProdT = AlphasCumprod[t];
        var alphaProdTPrev = prevT >= 0 ? AlphasCumprod[prevT] : _finalAlphaCumprod;
        var betaProdT = 1 - alphaProdT;

        Tensor predOriginal, predEpsilon;
        switch (c.PredictionType)
        {
            case "epsilon":
                predOriginal = (sample - betaProdT.pow(0.5) * modelOutput) / alphaProdT.pow(0.5);
                predEpsilon = modelOutput;
                break;
            case "sample":
                predOriginal = modelOutput;
                predEpsilon = (sample - alphaProdT.pow(0.5) * predOriginal) / betaProdT.pow(0.5);
                break;
            default:
                predOriginal = alphaProdT.pow(0.5) * sample - betaProdT.pow(0.5) * modelOutput;
                predEpsilon = alphaProdT.pow(0.5) * modelOutput + betaProdT.pow(0.5) * sample;
                break;
        }

        if (c.Thresholding)
            predOriginal = SchedulerMath.ThresholdSample(predOriginal, c.DynamicThresholdingRatio, c.SampleMaxValue);
        else if (c.ClipSample)
            predOriginal = predOriginal.clamp(-c.ClipSampleRange, c.ClipSampleRange);

        var betaProdTPrev = 1 - alphaProdTPrev;
        var variance = betaProdTPrev / betaProdT * (1 - alphaProdT / alphaProdTPrev);
        var stdDevT = eta * variance.pow(0.5);

        if (useClippedModelOutput)
            predEpsilon = (sample - alphaProdT.pow(0.5) * predOriginal) / betaProdT.pow(0.5);

        var direction = (1 - alphaProdTPrev - stdDevT.pow(2)).pow(0.5) * predEpsilon;
        var prevSample = alphaProdTPrev.pow(0.5) * predOriginal + direction;

        if (eta > 0)
        {
            varianceNoise ??= DrawNoise(modelOutput.shape, modelOutput.dtype, modelOutput.device, generator);
            prevSample = prevSample + stdDevT * varianceNoise;
        }
        return new SchedulerOutput(prevSample.MoveToOuterDisposeScope(), predOriginal.alias().MoveToOuterDisposeScope());
    }

    public override Tensor AddNoise(Tensor originalSamples, Tensor noise, Tensor timesteps) =>
        AlphaMath.AddNoise(this, AlphasCumprod, originalSamples, noise, timesteps);

    public override Tensor GetVelocity(Tensor sample, Tensor noise, Tensor timesteps) =>
        AlphaMath.GetVelocity(this, AlphasCumprod, sample, noise, timesteps);
}
