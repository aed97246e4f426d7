using DiffusersSharp.Loading;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Schedulers;

/// <summary>DDPMScheduler beyond the golden cases: loading, options, custom timesteps, bad input.</summary>
public class DDPMSchedulerTests
{
    private static double[] GoldenAlphasCumprod() =>
        Golden.Tensor("schedulers.safetensors", "ddpm-linear-eps-fixedsmall-clip-leading/alphas_cumprod").to(ScalarType.Float64).data<double>().ToArray();

    [Fact]
    public void FromPretrainedReadsTinyDdpmAndGivesThePipelineTimesteps()
    {
        using var s = DDPMScheduler.FromPretrained(Golden.Path("tiny-ddpm"));
        Assert.Equal("linear", s.TypedConfig.BetaSchedule);
        Assert.True(s.TypedConfig.ClipSample);
        Assert.Equal(1000, s.NumTrainTimesteps);
        s.SetTimesteps(10);
        using var expected = Golden.Tensor("tiny-ddpm-expected.safetensors", "pipeline/timesteps");
        SchedulerGoldenTests.AssertExact(s.Timesteps, expected, "tiny-ddpm timesteps");
        using var viaFactory = SchedulerFactory.FromPretrained(Golden.Path("tiny-ddpm"));
        Assert.IsType<DDPMScheduler>(viaFactory);
    }

    [Fact]
    public void UnknownClassNameListsTheKnownOnes()
    {
        var e = Assert.Throws<ConfigException>(() =>
            SchedulerFactory.FromJson("{\"_class_name\": \"FancyScheduler\", \"num_train_timesteps\": 1000}", "x.json"));
        Assert.Contains("unknown scheduler class \"FancyScheduler\"", e.Message);
        Assert.Contains("DDPMScheduler", e.Message);
    }

    [Theory]
    [InlineData(0, "num_inference_steps must be at least 1, got 0")]
    [InlineData(-3, "num_inference_steps must be at least 1, got -3")]
    [InlineData(1001, "num_inference_steps 1001 cannot be larger than num_train_timesteps 1000")]
    public void BadStepCounts(int n, string message)
    {
        using var s = new DDPMScheduler();
        var e = Assert.Throws<DiffusersException>(() => s.SetTimesteps(n));
        Assert.Contains(message, e.Message);
    }

    [Theory]
    [InlineData("variance_type", "\"wide\"", "variance_type \"wide\" is not supported")]
    [InlineData("prediction_type", "\"noise\"", "prediction_type \"noise\" is not supported")]
    [InlineData("beta_schedule", "\"cubic\"", "beta_schedule \"cubic\" is not implemented for DDPMScheduler")]
    [InlineData("timestep_spacing", "\"random\"", "timestep_spacing \"random\" is not supported")]
    [InlineData("clip_sample", "\"yes\"", "config key 'clip_sample' has a value of the wrong type")]
    public void BadOptionsAreConfigErrors(string key, string value, string message)
    {
        var e = Assert.Throws<ConfigException>(() =>
            SchedulerFactory.FromJson($"{{\"_class_name\": \"DDPMScheduler\", \"{key}\": {value}}}", "bad.json"));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void CustomTimestepsStepToTheNextEntry()
    {
        var cfg = new DDPMSchedulerConfig { PredictionType = "sample", ClipSample = false };
        using var s = new DDPMScheduler(cfg);
        s.SetTimesteps(new long[] { 999, 500, 10 });
        Assert.Equal(new double[] { 999, 500, 10 }, s.TimestepValues);
        Assert.Equal(10, s.PreviousTimestep(500));
        Assert.Equal(-1, s.PreviousTimestep(10));
        using var x = torch.linspace(-1, 1, 16).reshape(1, 1, 4, 4);
        using var x0 = torch.linspace(0.5, -0.25, 16).reshape(1, 1, 4, 4);
        using var outp = s.Step(x0, 500, x, new StepOptions { VarianceNoise = shape => torch.zeros(shape) }).PrevSample;
        // Posterior mean: sqrt(ab_prev) beta_t / (1 - ab_t) x0 + sqrt(alpha_t) (1 - ab_prev) / (1 - ab_t) x, alpha_t = ab_t / ab_prev.
        var ab = GoldenAlphasCumprod();
        double at = ab[500], ap = ab[10], alpha = at / ap, beta = 1 - alpha;
        using var expected = (Math.Sqrt(ap) * beta / (1 - at)) * x0.to(ScalarType.Float64) + (Math.Sqrt(alpha) * (1 - ap) / (1 - at)) * x.to(ScalarType.Float64);
        Tol.Close(outp, expected, 1e-6, "custom-timestep posterior mean");
        // The last custom step has prev_t = -1: alpha_prod_prev = 1, so the mean is x0 (the zero noise adds nothing).
        using var last = s.Step(x0, 10, x).PrevSample;
        double at10 = ab[10];
        using var expectedLast = (1.0 * (1 - at10) / (1 - at10)) * x0.to(ScalarType.Float64);
        Tol.Close(last, expectedLast, 1e-6, "last custom step returns x0");
    }

    [Fact]
    public void CustomTimestepErrors()
    {
        using var s = new DDPMScheduler();
        Assert.Contains("descending order; 600 follows 500",
            Assert.Throws<DiffusersException>(() => s.SetTimesteps(new long[] { 900, 500, 600 })).Message);
        Assert.Contains("must start before num_train_timesteps 1000, got 1000",
            Assert.Throws<DiffusersException>(() => s.SetTimesteps(new long[] { 1000, 5 })).Message);
        s.SetTimesteps(new long[] { 900, 500 });
        using var x = torch.zeros(1, 1, 2, 2);
        var e = Assert.Throws<DiffusersException>(() => s.Step(x, 700, x));
        Assert.Contains("timestep 700 is not in the scheduler's timesteps [900, 500]", e.Message);
    }

    [Fact]
    public void NonIntegerOrOutOfRangeTimestepIsRejected()
    {
        using var s = new DDPMScheduler();
        s.SetTimesteps(10);
        using var x = torch.zeros(1, 1, 2, 2);
        Assert.Contains("timestep 1000 is not an integer timestep in [0, 1000)", Assert.Throws<DiffusersException>(() => s.Step(x, 1000, x)).Message);
        Assert.Contains("timestep 2.5 is not an integer timestep", Assert.Throws<DiffusersException>(() => s.Step(x, 2.5, x)).Message);
    }

    [Fact]
    public void LearnedVarianceNeedsDoubledChannels()
    {
        using var s = new DDPMScheduler(new DDPMSchedulerConfig { VarianceType = "learned_range" });
        s.SetTimesteps(10);
        using var x = torch.zeros(1, 3, 2, 2);
        var e = Assert.Throws<DiffusersException>(() => s.Step(x, 900, x));
        Assert.Contains("needs a model output with twice the sample's channels", e.Message);
    }

    [Fact]
    public void DynamicThresholdingClampsToTheQuantile()
    {
        // prediction "sample": x0 = model output; s = clamp(quantile(|x0|, 0.75), 1, 3); x0 -> clamp(x0, -s, s) / s.
        using var s = new DDPMScheduler(new DDPMSchedulerConfig
        { PredictionType = "sample", Thresholding = true, DynamicThresholdingRatio = 0.75, SampleMaxValue = 3.0 });
        s.SetTimesteps(10);
        var v = new float[] { -4, -2, 0.5f, 1, 2.5f, 3, -0.25f, 5 };
        using var mo = torch.tensor(v).reshape(1, 2, 2, 2);
        using var x = torch.zeros(1, 2, 2, 2);
        using var outp = s.Step(mo, 900, x, new StepOptions { VarianceNoise = shape => torch.zeros(shape) });
        // |v| sorted: 0.25 0.5 1 2 2.5 3 4 5; numpy/torch linear quantile at 0.75 -> position 5.25 -> 3 + 0.25*(4-3) = 3.25 -> clamped 3.
        var expected = v.Select(a => Math.Clamp(a, -3f, 3f) / 3f).ToArray();
        Assert.Equal(expected, outp.PredOriginalSample!.data<float>().ToArray());
    }

    [Fact]
    public void RescaleBetasZeroSnrGivesZeroTerminalAlpha()
    {
        using var plain = new DDPMScheduler(new DDPMSchedulerConfig { BetaSchedule = "scaled_linear", BetaStart = 0.00085, BetaEnd = 0.012 });
        using var zero = new DDPMScheduler(new DDPMSchedulerConfig { BetaSchedule = "scaled_linear", BetaStart = 0.00085, BetaEnd = 0.012, RescaleBetasZeroSnr = true });
        Assert.Equal(0f, zero.AlphasCumprod[-1].item<float>());
        Assert.Equal(plain.AlphasCumprod[0].item<float>(), zero.AlphasCumprod[0].item<float>(), 6);
        // sqrt(ab') = (sqrt(ab) - sqrt(ab_T)) * sqrt(ab_0) / (sqrt(ab_0) - sqrt(ab_T)) at t = 500
        double a0 = Math.Sqrt(plain.AlphasCumprod[0].item<float>()), aT = Math.Sqrt(plain.AlphasCumprod[-1].item<float>());
        double mid = (Math.Sqrt(plain.AlphasCumprod[500].item<float>()) - aT) * a0 / (a0 - aT);
        Assert.Equal(mid * mid, zero.AlphasCumprod[500].item<float>(), 5);
    }

    [Fact]
    public void TrainedBetasAndSigmoidSchedule()
    {
        var betas = Enumerable.Range(0, 10).Select(i => 0.01 * (i + 1)).ToArray();
        using var s = new DDPMScheduler(new DDPMSchedulerConfig { NumTrainTimesteps = 10, TrainedBetas = betas });
        Assert.Equal(betas.Select(b => (float)b).ToArray(), s.Betas.data<float>().ToArray());
        using var sig = new DDPMScheduler(new DDPMSchedulerConfig { BetaSchedule = "sigmoid" });
        // sigmoid(linspace(-6, 6)) * (end - start) + start: symmetric around the middle, ends at sigmoid(±6).
        Assert.Equal(1 / (1 + Math.Exp(6)) * 0.0199 + 0.0001, sig.Betas[0].item<float>(), 6);
        Assert.Equal(1 / (1 + Math.Exp(-6)) * 0.0199 + 0.0001, sig.Betas[-1].item<float>(), 6);
        Assert.Contains("trained_betas has 3 values but num_train_timesteps is 10",
            Assert.Throws<ConfigException>(() => new DDPMScheduler(new DDPMSchedulerConfig { NumTrainTimesteps = 10, TrainedBetas = [0.1, 0.2, 0.3] })).Message);
    }

    [Fact]
    public void ConfigRoundTripKeepsUnknownKeysAndFromConfigRestoresDefaults()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(Path.Combine(dir.Path, "scheduler"));
        File.WriteAllText(Path.Combine(dir.Path, "scheduler", "scheduler_config.json"),
            "{\"_class_name\": \"DDPMScheduler\", \"beta_schedule\": \"scaled_linear\", \"my_key\": [1, 2]}");
        using var s = DDPMScheduler.FromPretrained(dir.Path);
        Assert.Equal("scaled_linear", s.TypedConfig.BetaSchedule);
        Assert.Contains("timestep_spacing", s.Config.DefaultedKeys);
        Assert.DoesNotContain("beta_schedule", s.Config.DefaultedKeys);
        Assert.True(s.Config.Extra!.ContainsKey("my_key"));
        using var again = DDPMScheduler.FromConfig(s.Config);
        Assert.Equal("scaled_linear", again.TypedConfig.BetaSchedule);
        Assert.True(again.Config.Extra!.ContainsKey("my_key"));
        string saved = Path.Combine(dir.Path, "saved.json");
        ConfigJson.Write(s.TypedConfig, saved);
        var reloaded = SchedulerConfigs.Read<DDPMSchedulerConfig>(saved);
        Assert.Equal("[1,2]", reloaded.Extra!["my_key"].GetRawText().Replace(" ", "").Replace("\n", ""));
        Assert.Equal("DDPMScheduler", reloaded.ClassName);
        Assert.Equal(s.TypedConfig with { DefaultedKeys = [], Extra = null }, reloaded with { DefaultedKeys = [], Extra = null });
    }

    [Fact]
    public void WithoutSubfolderTheFolderItselfComesFirstThenAPipelinesSchedulerFolder()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(Path.Combine(dir.Path, "scheduler"));
        File.WriteAllText(Path.Combine(dir.Path, "scheduler", "scheduler_config.json"), "{\"_class_name\": \"DDPMScheduler\", \"num_train_timesteps\": 20}");
        using (var s = DDPMScheduler.FromPretrained(dir.Path)) Assert.Equal(20, s.NumTrainTimesteps);
        File.WriteAllText(Path.Combine(dir.Path, "scheduler_config.json"), "{\"_class_name\": \"DDPMScheduler\", \"num_train_timesteps\": 30}");
        using (var s = DDPMScheduler.FromPretrained(dir.Path)) Assert.Equal(30, s.NumTrainTimesteps);
        using (var s = DDPMScheduler.FromPretrained(dir.Path, "scheduler")) Assert.Equal(20, s.NumTrainTimesteps);
        var e = Assert.Throws<DiffusersException>(() => DDPMScheduler.FromPretrained(dir.Path, "sched"));
        Assert.Equal($"'{dir.Path}' has no subfolder 'sched' ({Path.Combine(dir.Path, "sched")} does not exist)", e.Message);
    }

    [Fact]
    public void MissingConfigFileNamesThePath()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<ConfigException>(() => DDPMScheduler.FromPretrained(dir.Path));
        Assert.Contains(Path.Combine(dir.Path, "scheduler", "scheduler_config.json"), e.Message);
    }
}
