using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Schedulers;

/// <summary>
/// Options of DDIM/PNDM/Euler/EulerA/LMS/Heun/LCM that schedulers.json does not cover, checked against the
/// schedulers' formulas (expected values computed here in double precision from the scheduler's own sigma /
/// alpha tables, whose golden values are verified elsewhere), plus bad input.
/// </summary>
public class SchedulerOptionTests
{
    private static readonly EulerDiscreteSchedulerConfig SdEuler = new()
    { BetaSchedule = "scaled_linear", BetaStart = 0.00085, BetaEnd = 0.012, StepsOffset = 1 };

    private static float[] F(Tensor t) => t.to(ScalarType.Float32).cpu().data<float>().ToArray();

    [Fact]
    public void TrailingSpacingRoundsLikeNumpy()
    {
        // np.round(np.arange(1000, 0, -1000/3)) - 1 = [999, 666, 332]
        using var ddpm = new DDPMScheduler(new DDPMSchedulerConfig { TimestepSpacing = "trailing" });
        ddpm.SetTimesteps(3);
        Assert.Equal(new double[] { 999, 666, 332 }, ddpm.TimestepValues);
        Assert.Equal(ScalarType.Int64, ddpm.Timesteps.dtype);
        using var euler = new EulerDiscreteScheduler(SdEuler with { TimestepSpacing = "trailing" });
        euler.SetTimesteps(3);
        Assert.Equal(new double[] { 999, 666, 332 }, euler.TimestepValues);
        Assert.Equal(ScalarType.Float32, euler.Timesteps.dtype);
        // linspace: np.linspace(0, 999, 4).round()[::-1] = [999, 666, 333, 0]
        using var ddim = new DDIMScheduler(new DDIMSchedulerConfig { TimestepSpacing = "linspace" });
        ddim.SetTimesteps(4);
        Assert.Equal(new double[] { 999, 666, 333, 0 }, ddim.TimestepValues);
    }

    [Fact]
    public void FromConfigAcrossClassesKeepsExplicitKeysAndTakesNewDefaults()
    {
        using var pndm = SchedulerFactory.FromJson(
            "{\"_class_name\": \"PNDMScheduler\", \"beta_schedule\": \"scaled_linear\", \"beta_start\": 0.00085, \"beta_end\": 0.012, " +
            "\"skip_prk_steps\": true, \"steps_offset\": 1, \"clip_sample\": false}");
        using var euler = EulerDiscreteScheduler.FromConfig(pndm.Config);
        Assert.Equal("linspace", euler.TypedConfig.TimestepSpacing);   // PNDM's file did not set it: Euler's default
        Assert.Equal(1, euler.TypedConfig.StepsOffset);
        Assert.True(euler.Config.Extra!.ContainsKey("skip_prk_steps"));
        using var explicitLeading = SchedulerFactory.FromJson("{\"_class_name\": \"PNDMScheduler\", \"timestep_spacing\": \"leading\"}");
        using var fromLeading = EulerDiscreteScheduler.FromConfig(explicitLeading.Config);
        Assert.Equal("leading", fromLeading.TypedConfig.TimestepSpacing);
        // Every registered class can be built from every other class's default config.
        foreach (var from in SchedulerFactory.KnownClasses)
        {
            using var src = SchedulerFactory.FromJson($"{{\"_class_name\": \"{from}\"}}");
            foreach (var to in SchedulerFactory.KnownClasses)
            {
                using var built = SchedulerFactory.FromConfig(to, src.Config);
                Assert.Equal(to, built.ClassName);
            }
        }
    }

    [Fact]
    public void EulerChurnAddsNoiseOfTheRightSize()
    {
        using var s = new EulerDiscreteScheduler(SdEuler);
        s.SetTimesteps(10);
        var sig = F(s.Sigmas!);
        using var x = torch.linspace(-1, 1, 16).reshape(1, 1, 4, 4);
        using var eps = torch.linspace(0.5, -0.5, 16).reshape(1, 1, 4, 4);
        using var n = torch.linspace(1, 2, 16).reshape(1, 1, 4, 4);
        double t0 = s.TimestepValues[0];
        using var outp = s.Step(eps, t0, x, new StepOptions { SChurn = 1.0, VarianceNoise = _ => n }).PrevSample;
        double gamma = Math.Min(1.0 / 10, Math.Sqrt(2) - 1);
        double sh = sig[0] * (gamma + 1);
        using var xd = x.to(ScalarType.Float64) + n.to(ScalarType.Float64) * Math.Sqrt(sh * sh - (double)sig[0] * sig[0]);
        using var expected = xd + eps.to(ScalarType.Float64) * (sig[1] - sh);
        Tol.RelClose(outp, expected, 1e-5, "churned Euler step", floor: 1);
        // s_tmin above sigma: no churn, plain Euler step.
        s.SetTimesteps(10);
        using var plain = s.Step(eps, t0, x, new StepOptions { SChurn = 1.0, STmin = 1e9 }).PrevSample;
        using var expectedPlain = x.to(ScalarType.Float64) + eps.to(ScalarType.Float64) * ((double)sig[1] - sig[0]);
        Tol.RelClose(plain, expectedPlain, 1e-5, "s_tmin disables churn", floor: 1);
    }

    [Fact]
    public void EulerContinuousVPredictionTimestepsAreQuarterLogSigma()
    {
        using var s = new EulerDiscreteScheduler(SdEuler with { PredictionType = "v_prediction", TimestepType = "continuous" });
        s.SetTimesteps(5);
        var sig = F(s.Sigmas!);
        var ts = s.TimestepValues;
        Assert.Equal(5, ts.Length);
        for (int i = 0; i < 5; i++) Assert.Equal(0.25 * Math.Log(sig[i]), ts[i], 5);
        using var x = torch.ones(1, 1, 2, 2);
        using var v = torch.full(new long[] { 1, 1, 2, 2 }, 0.5f);
        using var outp = s.Step(v, ts[0], x).PredOriginalSample!;
        double sg = sig[0];
        Assert.Equal(0.5 * (-sg / Math.Sqrt(sg * sg + 1)) + 1 / (sg * sg + 1), F(outp)[0], 5);
    }

    [Fact]
    public void EulerLogLinearSigmasAreGeometric()
    {
        using var s = new EulerDiscreteScheduler(SdEuler with { InterpolationType = "log_linear" });
        s.SetTimesteps(4);
        var sig = F(s.Sigmas!);
        Assert.Equal(6, sig.Length);          // diffusers: N + 1 log-spaced sigmas, then 0
        Assert.Equal(0f, sig[^1]);
        double r = sig[1] / (double)sig[0];
        for (int i = 1; i < 5; i++) Assert.Equal(r, sig[i] / (double)sig[i - 1], 4);
    }

    [Fact]
    public void StepWithATimestepNotInTheScheduleNamesIt()
    {
        using var x = torch.zeros(1, 1, 2, 2);
        foreach (var make in new Func<SchedulerBase>[] { () => new EulerDiscreteScheduler(SdEuler), () => new EulerAncestralDiscreteScheduler(), () => new LMSDiscreteScheduler(), () => new HeunDiscreteScheduler(), () => new LCMScheduler() })
        {
            using var s = make();
            s.SetTimesteps(4);
            var e = Assert.Throws<DiffusersException>(() => s.Step(x, 123.5, x));
            Assert.Contains("123.5", e.Message);
            Assert.Contains(s.ClassName, e.Message);
        }
        using var euler = new EulerDiscreteScheduler(SdEuler);
        Assert.Contains("does not accept custom timesteps", Assert.Throws<DiffusersException>(() => euler.SetTimesteps(new long[] { 900, 100 })).Message);
        Assert.Contains("num_inference_steps 2000 cannot be larger than num_train_timesteps 1000",
            Assert.Throws<DiffusersException>(() => euler.SetTimesteps(2000)).Message);
    }

    [Fact]
    public void LmsCoefficientsAreTheExactIntegrals()
    {
        using var s = new LMSDiscreteScheduler(new LMSDiscreteSchedulerConfig { BetaSchedule = "scaled_linear", BetaStart = 0.00085, BetaEnd = 0.012 });
        s.SetTimesteps(10);
        var sig = F(s.Sigmas!).Select(v => (double)v).ToArray();
        int t = 3;
        double a = sig[t], b = sig[t + 1], s1 = sig[t - 1];
        // order 1: ∫ 1 = b - a; order 2, basis 0: (τ - σ_{t-1}) / (σ_t - σ_{t-1})
        Assert.Equal(b - a, s.LmsCoefficient(1, t, 0), 12);
        double exact = ((b - s1) * (b - s1) - (a - s1) * (a - s1)) / (2 * (a - s1));
        Assert.Equal(exact, s.LmsCoefficient(2, t, 0), 10);
        // The basis polynomials sum to 1: the coefficients of any order sum to b - a.
        Assert.Equal(b - a, Enumerable.Range(0, 4).Sum(j => s.LmsCoefficient(4, t, j)), 10);
        using var karras = new LMSDiscreteScheduler(new LMSDiscreteSchedulerConfig { UseKarrasSigmas = true });
        karras.SetTimesteps(5);
        Assert.Equal(ScalarType.Float64, karras.Timesteps.dtype);   // diffusers leaves them float64
    }

    [Fact]
    public void HeunDoublesTheInnerTimestepsAndAlternatesOrders()
    {
        using var s = new HeunDiscreteScheduler(new HeunDiscreteSchedulerConfig { PredictionType = "sample" });
        s.SetTimesteps(3);
        Assert.Equal(2, s.Order);
        var ts = s.TimestepValues;
        Assert.Equal(5, ts.Length);
        Assert.Equal(ts[1], ts[2]);
        Assert.Equal(ts[3], ts[4]);
        var sig = F(s.Sigmas!).Select(v => (double)v).ToArray();
        Assert.Equal(6, sig.Length);
        using var x = torch.full(new long[] { 1, 1, 2, 2 }, 2.0f);
        using var x0a = torch.full(new long[] { 1, 1, 2, 2 }, 0.5f);
        Assert.True(s.StateInFirstOrder);
        using var mid = s.Step(x0a, ts[0], x).PrevSample;
        double d1 = (2.0 - 0.5) / sig[0];
        double xm = 2.0 + d1 * (sig[1] - sig[0]);
        Assert.Equal(xm, F(mid)[0], 4);
        Assert.False(s.StateInFirstOrder);
        using var x0b = torch.full(new long[] { 1, 1, 2, 2 }, 0.25f);
        using var end = s.Step(x0b, ts[1], mid).PrevSample;
        double d2 = (xm - 0.25) / sig[1];
        Assert.Equal(2.0 + (d1 + d2) / 2 * (sig[1] - sig[0]), F(end)[0], 4);
        Assert.True(s.StateInFirstOrder);
    }

    [Fact]
    public void HeunAddNoiseFollowsTheStepCount()
    {
        // diffusers' index_for_timestep of the two-call schedulers: before any step the second occurrence of a repeated
        // timestep, then the occurrence the count of steps taken at it points at; past the last one, an error naming it.
        using var s = new HeunDiscreteScheduler();
        s.SetTimesteps(3);
        var ts = s.TimestepValues;   // [t0, t1, t1, t2, t2]
        var sig = F(s.Sigmas!);
        using var x0 = torch.full(new long[] { 1, 1, 2, 2 }, 0.5f);
        using var noise = torch.full(new long[] { 1, 1, 2, 2 }, 2.0f);
        using (var t = torch.tensor(new[] { (float)ts[1] }))
        using (var noisy = s.AddNoise(x0, noise, t))
            Assert.Equal(0.5 + 2.0 * sig[2], F(noisy)[0], 4);
        using var x = torch.full(new long[] { 1, 1, 2, 2 }, 1.0f);
        s.Step(x0, ts[0], x).PrevSample.Dispose();
        s.Step(x0, ts[1], x).PrevSample.Dispose();
        s.Step(x0, ts[2], x).PrevSample.Dispose();
        using (var t = torch.tensor(new[] { (float)ts[0] }))
            Assert.Contains($"add_noise timestep {(float)ts[0]} has no occurrence #2 in the scheduler's timesteps",
                Assert.Throws<DiffusersException>(() => s.AddNoise(x0, noise, t)).Message);
        using (var t = torch.tensor(new[] { (float)ts[3] }))
        using (var noisy = s.AddNoise(x0, noise, t))
            Assert.Equal(0.5 + 2.0 * sig[3], F(noisy)[0], 4);
        using (var t = torch.tensor(new[] { 123.25f }))
            Assert.Contains("HeunDiscreteScheduler: add_noise timestep 123.25 is not in the scheduler's timesteps",
                Assert.Throws<DiffusersException>(() => s.AddNoise(x0, noise, t)).Message);
    }

    [Fact]
    public void LcmScheduleAndErrors()
    {
        using var s = new LCMScheduler();
        s.SetTimesteps(4);
        // k = 1000 // 50 = 20; origin = [19, 39, ..., 999] reversed; indices floor(linspace(0, 50, 4, endpoint=False)) = [0, 12, 25, 37]
        Assert.Equal(new double[] { 999, 759, 499, 259 }, s.TimestepValues);
        Assert.Contains("original_inference_steps x strength = 50 x 1 is smaller than num_inference_steps 51",
            Assert.Throws<DiffusersException>(() => s.SetTimesteps(51)).Message);
        // strength > 1 reached timesteps past num_train_timesteps (50 x 1.5 = 75 origin steps: up to 1499), NaN none
        foreach (double bad in new[] { 1.5, -0.1, double.NaN })
            Assert.Equal($"LCMScheduler: strength {bad} must be in [0, 1]",
                Assert.Throws<DiffusersException>(() => s.SetTimesteps(4, null, null, bad)).Message);
        Assert.Equal(new double[] { 999, 759, 499, 259 }, s.TimestepValues);
        s.SetTimesteps(new long[] { 999, 499, 99 });
        Assert.True(s.CustomTimesteps);
        Assert.Equal(new double[] { 999, 499, 99 }, s.TimestepValues);
        Assert.Contains("descending order", Assert.Throws<DiffusersException>(() => s.SetTimesteps(new long[] { 99, 499 })).Message);
        // The last step returns the consistency estimate without new noise: c_out·x0 + c_skip·x.
        using var p = new LCMScheduler(new LCMSchedulerConfig { PredictionType = "sample" });
        p.SetTimesteps(1);
        Assert.Equal(new double[] { 999 }, p.TimestepValues);
        using var x = torch.full(new long[] { 1, 1, 2, 2 }, 3.0f);
        using var x0 = torch.full(new long[] { 1, 1, 2, 2 }, 0.5f);
        using var outp = p.Step(x0, 999, x, new StepOptions { VarianceNoise = _ => throw new InvalidOperationException("no noise on the last step") }).PrevSample;
        double st = 9990, cSkip = 0.25 / (st * st + 0.25), cOut = st / Math.Sqrt(st * st + 0.25);
        Assert.Equal(cOut * 0.5 + cSkip * 3.0, F(outp)[0], 5);
    }

    [Fact]
    public void PndmPrkNeedsFourStepsAndPlmsFollowsItsFormula()
    {
        using var prk = new PNDMScheduler();
        Assert.Contains("needs at least 4 inference steps", Assert.Throws<DiffusersException>(() => prk.SetTimesteps(3)).Message);
        prk.SetTimesteps(10);
        Assert.Equal(12, prk.PrkTimesteps.Count);
        // skip_prk: [901, 801, 801, 701, ..., 1] with steps_offset 1
        using var plms = new PNDMScheduler(new PNDMSchedulerConfig { SkipPrkSteps = true, StepsOffset = 1 });
        plms.SetTimesteps(10);
        Assert.Equal(new double[] { 901, 801, 801, 701, 601, 501, 401, 301, 201, 101, 1 }, plms.TimestepValues);
        Assert.Contains("prediction_type \"sample\" is not supported",
            Assert.Throws<ConfigException>(() => new PNDMScheduler(new PNDMSchedulerConfig { PredictionType = "sample" })).Message);
    }

    [Fact]
    public void EulerAncestralRejectsSamplePrediction()
    {
        Assert.Contains("prediction_type \"sample\" is not implemented for EulerAncestralDiscreteScheduler",
            Assert.Throws<ConfigException>(() => new EulerAncestralDiscreteScheduler(new EulerAncestralDiscreteSchedulerConfig { PredictionType = "sample" })).Message);
    }

    [Fact]
    public void SavePretrainedStampsThisLibrarysDiffusersVersion()
    {
        // diffusers' to_json_string writes its own __version__, not the loaded config's
        using var dir = new TempDir();
        using var s = SchedulerFactory.FromJson("""{"_class_name": "DDPMScheduler", "_diffusers_version": "0.1.1", "num_train_timesteps": 500}""");
        Assert.Equal("0.1.1", s.Config.DiffusersVersion);
        s.SavePretrained(dir.Path);
        using var reloaded = SchedulerFactory.FromPretrained(dir.Path, subfolder: null);
        Assert.Equal("0.25.1", reloaded.Config.DiffusersVersion);
        Assert.Contains("\"_diffusers_version\": \"0.25.1\"", File.ReadAllText(Path.Combine(dir.Path, "scheduler_config.json")));
    }

    [Fact]
    public void SavePretrainedRoundTripsEveryClass()
    {
        using var dir = new TempDir();
        foreach (var name in SchedulerFactory.KnownClasses)
        {
            using var s = SchedulerFactory.FromJson($"{{\"_class_name\": \"{name}\", \"num_train_timesteps\": 500, \"extra_key\": \"kept\"}}");
            string sub = Path.Combine(dir.Path, name);
            s.SavePretrained(sub);
            var text = File.ReadAllText(Path.Combine(sub, "scheduler_config.json"));
            Assert.Contains($"\"_class_name\": \"{name}\"", text);
            Assert.Contains("\"extra_key\": \"kept\"", text);
            // exactly diffusers' keys: the class's config keys, the two bookkeeping ones and the unknown one kept (no C#
            // property of ours, such as TrainTimesteps, which every class wrote until 2026-12-06)
            Assert.Equal(ConfigKeys.Scheduler(name, "extra_key"), ConfigKeys.TopLevel(Path.Combine(sub, "scheduler_config.json")));
            using var back = SchedulerFactory.FromPretrained(sub, subfolder: null);
            Assert.Equal(name, back.ClassName);
            Assert.Equal(500, back.NumTrainTimesteps);
            // Same keys and values (compared as JSON: records compare arrays by reference).
            Assert.Equal(SchedulerConfigs.ToJsonObject(s.Config with { DiffusersVersion = "0.25.1" }).ToJsonString(),
                SchedulerConfigs.ToJsonObject(back.Config).ToJsonString());
        }
    }
}
