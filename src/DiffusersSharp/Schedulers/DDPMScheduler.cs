using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// diffusers' <c>DDPMScheduler</c> (Ho et al. 2020; scheduling_ddpm.py of 0.25.1): ancestral sampling with the
/// fixed or learned posterior variance, every beta schedule, prediction type, clipping / dynamic thresholding,
/// the three timestep spacings, zero-terminal-SNR rescaling and custom timesteps.
/// </summary>
public sealed class DDPMScheduler : SchedulerBase
{
    public const string Name = "DDPMScheduler";
    internal static readonly string[] VarianceTypes = ["fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log", "learned", "learned_range"];
    internal static readonly string[] PredictionTypes = ["epsilon", "sample", "v_prediction"];

    private readonly Tensor _one = torch.tensor(1.0f).DetachFromDisposeScope();

    public DDPMScheduler(DDPMSchedulerConfig? config = null)
    {
        var c = config ?? new DDPMSchedulerConfig();
        TypedConfig = c with { ClassName = Name };
        Check(Name, "variance_type", c.VarianceType, VarianceTypes);
        Check(Name, "prediction_type", c.PredictionType, PredictionTypes);
        Check(Name, "timestep_spacing", c.TimestepSpacing, ["linspace", "leading", "trailing"]);
        InitBetas(c.NumTrainTimesteps, c.BetaStart, c.BetaEnd, c.BetaSchedule, c.TrainedBetas, c.RescaleBetasZeroSnr);
        Timesteps = torch.arange(c.NumTrainTimesteps - 1, -1, -1, ScalarType.Int64);
    }

    public override string ClassName => Name;
    public DDPMSchedulerConfig TypedConfig { get; }
    public override SchedulerConfig Config => TypedConfig;

    /// <summary>True after <see cref="SetTimesteps(IReadOnlyList{long}, Device?)"/>.</summary>
    public bool CustomTimesteps { get; private set; }

    /// <summary>diffusers' <c>DDPMScheduler.from_config(other_config)</c>.</summary>
    public static DDPMScheduler FromConfig(Loading.DiffusersConfig other) =>
        new(other as DDPMSchedulerConfig ?? SchedulerConfigs.Convert<DDPMSchedulerConfig>(other, Name));

    /// <summary>Reads <c>idOrPath[/subfolder]/scheduler_config.json</c> (<see cref="SchedulerFactory.ReadConfigFile"/>).</summary>
    public static DDPMScheduler FromPretrained(string idOrPath, string? subfolder = null, Loading.LoadOptions? options = null) =>
        FromConfig(SchedulerFactory.ReadConfigFile(idOrPath, subfolder, options));

    public override void SetTimesteps(int numInferenceSteps, Device? device = null)
    {
        CheckInferenceSteps(numInferenceSteps);
        var c = TypedConfig;
        NumInferenceSteps = numInferenceSteps;
        CustomTimesteps = false;
        var ts = SchedulerMath.IntSpacing(Name, c.TimestepSpacing, c.NumTrainTimesteps, numInferenceSteps, c.StepsOffset);
        Timesteps = torch.tensor(ts, ScalarType.Int64, device);
    }

    public override void SetTimesteps(IReadOnlyList<long> timesteps, Device? device = null)
    {
        if (timesteps.Count == 0) throw new DiffusersException($"{Name}: custom timesteps must not be empty");
        for (int i = 1; i < timesteps.Count; i++)
            if (timesteps[i] >= timesteps[i - 1])
                throw new DiffusersException($"{Name}: custom timesteps must be in descending order; {timesteps[i]} follows {timesteps[i - 1]}");
        if (timesteps[0] >= NumTrainTimesteps)
            throw new DiffusersException($"{Name}: custom timesteps must start before num_train_timesteps {NumTrainTimesteps}, got {timesteps[0]}");
        if (timesteps[^1] < 0)
            throw new DiffusersException($"{Name}: custom timesteps must not be negative, got {timesteps[^1]}");
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

    public override SchedulerOutput Step(Tensor modelOutput, double timestep, Tensor sample, Generator? generator = null)
    {
        var c = TypedConfig;
        long t = CheckTrainTimestep(timestep);
        long prevT = PreviousTimestep(t);
        using var scope = torch.NewDisposeScope();

        Tensor? predictedVariance = null;
        bool learned = c.VarianceType is "learned" or "learned_range";
        if (modelOutput.shape[1] == sample.shape[1] * 2 && learned)
        {
            var parts = modelOutput.split(sample.shape[1], 1);
            modelOutput = parts[0];
            predictedVariance = parts[1];
        }
        else if (learned)
            throw new DiffusersException(
                $"{Name}: variance_type \"{c.VarianceType}\" needs a model output with twice the sample's channels " +
                $"(mean and variance), got {modelOutput.shape[1]} channels for a {sample.shape[1]}-channel sample");

        var alphaProdT = AlphasCumprod[t];
        var alphaProdTPrev = prevT >= 0 ? AlphasCumprod[prevT] : _one;
        var betaProdT = 1 - alphaProdT;
        var betaProdTPrev = 1 - alphaProdTPrev;
        var currentAlphaT = alphaProdT / alphaProdTPrev;
        var currentBetaT = 1 - currentAlphaT;

        Tensor predOriginal = c.PredictionType switch
        {
            "epsilon" => (sample - betaProdT.pow(0.5) * modelOutput) / alphaProdT.pow(0.5),
            "sample" => modelOutput.alias(),
            _ => alphaProdT.pow(0.5) * sample - betaProdT.pow(0.5) * modelOutput,
        };

        if (c.Thresholding)
            predOriginal = SchedulerMath.ThresholdSample(predOriginal, c.DynamicThresholdingRatio, c.SampleMaxValue);
        else if (c.ClipSample)
            predOriginal = predOriginal.clamp(-c.ClipSampleRange, c.ClipSampleRange);

        var predOriginalCoeff = alphaProdTPrev.pow(0.5) * currentBetaT / betaProdT;
        var currentSampleCoeff = currentAlphaT.pow(0.5) * betaProdTPrev / betaProdT;
        var prevSample = predOriginalCoeff * predOriginal + currentSampleCoeff * sample;

        if (t > 0)
        {
            var noise = DrawNoise(modelOutput.shape, modelOutput.dtype, modelOutput.device, generator);
            Tensor variance;
            if (c.VarianceType == "fixed_small_log")
                variance = GetVariance(t, predictedVariance) * noise;
            else if (c.VarianceType == "learned_range")
                variance = torch.exp(0.5 * GetVariance(t, predictedVariance)) * noise;
            else
                variance = GetVariance(t, predictedVariance).pow(0.5) * noise;
            prevSample = prevSample + variance;
        }
        return new SchedulerOutput(prevSample.MoveToOuterDisposeScope(), predOriginal.MoveToOuterDisposeScope());
    }

    /// <summary>diffusers' <c>_get_variance</c>.</summary>
    private Tensor GetVariance(long t, Tensor? predictedVariance)
    {
        long prevT = PreviousTimestep(t);
        var alphaProdT = AlphasCumprod[t];
        var alphaProdTPrev = prevT >= 0 ? AlphasCumprod[prevT] : _one;
        var currentBetaT = 1 - alphaProdT / alphaProdTPrev;
        var variance = (1 - alphaProdTPrev) / (1 - alphaProdT) * currentBetaT;
        variance = torch.clamp(variance, min: 1e-20);
        switch (TypedConfig.VarianceType)
        {
            case "fixed_small": return variance;
            case "fixed_small_log": return torch.exp(0.5 * torch.log(variance));
            case "fixed_large": return currentBetaT;
            case "fixed_large_log": return torch.log(currentBetaT);
            case "learned": return predictedVariance!;
            default:
            {
                var minLog = torch.log(variance);
                var maxLog = torch.log(currentBetaT);
                var frac = (predictedVariance! + 1) / 2;
                return frac * maxLog + (1 - frac) * minLog;
            }
        }
    }

    public override Tensor AddNoise(Tensor originalSamples, Tensor noise, Tensor timesteps) =>
        AlphaMath.AddNoise(this, AlphasCumprod, originalSamples, noise, timesteps);

    public override Tensor GetVelocity(Tensor sample, Tensor noise, Tensor timesteps) =>
        AlphaMath.GetVelocity(this, AlphasCumprod, sample, noise, timesteps);

    internal static void Check(string cls, string key, string value, string[] allowed)
    {
        if (!allowed.Contains(value))
            throw new ConfigException($"{cls}: {key} \"{value}\" is not supported; expected one of {string.Join(", ", allowed.Select(a => "\"" + a + "\""))}") { Key = key };
    }
}
