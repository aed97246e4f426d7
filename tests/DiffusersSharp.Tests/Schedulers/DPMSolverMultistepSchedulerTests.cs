using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;
using K = DiffusersSharp.Tests.Schedulers.VpSolverKit;

namespace DiffusersSharp.Tests.Schedulers;

/// <summary>
/// DPMSolverMultistepScheduler beyond the golden cases (dpmpp2m-sd, dpmpp2m-sd-karras): spacings, clipping,
/// Karras/Lu schedules, order 1 = DDIM, exactness of the heun-2M / 3M updates on a model whose prediction is
/// linear in λ, lower-order and Euler final steps, the SDE variants' noise, thresholding, bad input.
/// Every expectation is computed here in float64 from the formulas of the DPM-Solver(++) papers.
/// </summary>
public class DPMSolverMultistepSchedulerTests
{
    private static DPMSolverMultistepSchedulerConfig Sd => new()
    {
        BetaSchedule = "scaled_linear", BetaStart = 0.00085, BetaEnd = 0.012, StepsOffset = 1,
    };

    /// <summary>
    /// With torch's SLEEF exp reproduced, the golden DPM++(2M) (and UniPC) loops are bit-exact (the shared harness allows 1e-5;
    /// correctly rounded exp gives ~3e-7).
    /// </summary>
    [Theory]
    [InlineData("dpmpp2m-sd")]
    [InlineData("dpmpp2m-sd-karras")]
    [InlineData("unipc-bh2-order2-sd")]
    public void GoldenLoopsAreBitExact(string name)
    {
        using var s = SchedulerGoldenCases.Create(name);
        SchedulerGoldenCases.SetLoopTimesteps(name, s);
        using var e = SchedulerGoldenCases.T(name, "loop/E");
        using var prev = SchedulerGoldenCases.T(name, "loop/prev_sample");
        var sample = SchedulerGoldenCases.T(name, "loop/x_T");
        var ts = s.TimestepValues;
        for (int i = 0; i < ts.Length; i++)
        {
            using var mo = s.ScaleModelInput(sample, ts[i]) * 0.1f + e;
            sample = s.Step(mo, ts[i], sample).PrevSample;
            SchedulerGoldenTests.AssertExact(sample, prev[i], $"{name} step {i}");
        }
    }

    [Fact]
    public void TorchExpIsSleefExpf()
    {
        // exp(1) and exp(-1) in float32 are the correctly rounded values; 0 and large arguments follow SLEEF's limits.
        Assert.Equal(MathF.E, ExactFloat32.Exp(1f));
        Assert.Equal(0.36787945f, ExactFloat32.Exp(-1f));
        Assert.Equal(1f, ExactFloat32.Exp(0f));
        Assert.Equal(float.PositiveInfinity, ExactFloat32.Exp(101f));
        Assert.Equal(0f, ExactFloat32.Exp(-105f));
        for (float x = -20f; x < 20f; x += 0.37f)
            Assert.True(Math.Abs(ExactFloat32.Exp(x) - Math.Exp(x)) <= 2e-7 * Math.Exp(x), $"exp({x})");
    }

    [Theory]
    [InlineData("linspace", new long[] { 999, 799, 599, 400, 200 })] // linspace(0, 999, 6).round()[::-1][:-1]
    [InlineData("leading", new long[] { 831, 665, 499, 333, 167 })]  // arange(6) * (1000 // 6), reversed, [:-1], + 1
    [InlineData("trailing", new long[] { 999, 799, 599, 399, 199 })] // arange(1000, 0, -200) - 1
    public void SpacingsGiveTheFormulaTimestepsAndSigmas(string spacing, long[] expected)
    {
        using var s = new DPMSolverMultistepScheduler(Sd with { TimestepSpacing = spacing });
        s.SetTimesteps(5);
        Assert.Equal(ScalarType.Int64, s.Timesteps.dtype);
        Assert.Equal(expected, K.Longs(s.Timesteps));
        var sig = s.Sigmas!.data<float>().ToArray();
        Assert.Equal(6, sig.Length);
        for (int i = 0; i < 5; i++) Assert.Equal(K.SigmaOfT(expected[i]), sig[i], 1e-6 * K.SigmaOfT(expected[i]));
        Assert.Equal(K.SigmaOfT(0), sig[5], 1e-6); // final sigma = sigma(t = 0)
    }

    [Fact]
    public void LambdaMinClippedDropsTheLowestSnrTimesteps()
    {
        // squaredcos_cap_v2: lambda(t) = 0.5 log(ab / (1 - ab)) falls below -5.1 for the last training steps.
        double prev = 1; int below = 0;
        double Ab(double t) { double c = Math.Cos((t + 0.008) / 1.008 * Math.PI / 2); return c * c; }
        for (int i = 0; i < 1000; i++)
        {
            double beta = Math.Min(1 - Ab((i + 1) / 1000.0) / Ab(i / 1000.0), 0.999);
            prev *= 1 - beta;
            if (0.5 * Math.Log(prev / (1 - prev)) < -5.1) below++;
        }
        Assert.InRange(below, 1, 10); // ᾱ < e^-10.2 only in the last few steps
        int last = 1000 - below;
        var expected = Enumerable.Range(0, 5).Select(k => (long)Math.Round((last - 1) * k / 4.0, MidpointRounding.ToEven)).Reverse().Take(4).ToArray();
        using var s = new DPMSolverMultistepScheduler(new() { BetaSchedule = "squaredcos_cap_v2", LambdaMinClipped = -5.1 });
        s.SetTimesteps(4);
        Assert.Equal(expected, K.Longs(s.Timesteps));
        using var unclipped = new DPMSolverMultistepScheduler(new() { BetaSchedule = "squaredcos_cap_v2" });
        unclipped.SetTimesteps(4);
        Assert.Equal(999, K.Longs(unclipped.Timesteps)[0]);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void KarrasAndLuSchedules(bool lu)
    {
        const int n = 6;
        using var s = new DPMSolverMultistepScheduler(lu ? Sd with { UseLuLambdas = true } : Sd with { UseKarrasSigmas = true });
        s.SetTimesteps(n);
        double[] expected = lu ? K.Lu(n) : K.Karras(n);
        var sig = s.Sigmas!.data<float>().ToArray();
        Assert.Equal(n + 1, sig.Length);
        for (int i = 0; i < n; i++) Assert.Equal(expected[i], sig[i], 2e-6 * expected[i]);
        Assert.Equal(sig[n - 1], sig[n]); // the last sigma is repeated
        var ts = K.Longs(s.Timesteps);
        for (int i = 0; i < n; i++) Assert.Equal((long)Math.Round(K.TOfSigma(expected[i])), ts[i]);
        if (lu)
        {
            // uniform steps in log sigma (= uniform in lambda)
            double d0 = Math.Log(sig[0]) - Math.Log(sig[1]);
            for (int i = 1; i < n - 1; i++) Assert.Equal(d0, Math.Log(sig[i]) - Math.Log(sig[i + 1]), 1e-5);
        }
    }

    [Theory]
    [InlineData("dpmsolver++")]
    [InlineData("dpmsolver")]
    public void FirstOrderIsDdim(string algorithm)
    {
        // DPM-Solver-1 is DDIM (eta 0): x_prev = sqrt(ab_prev) x0 + sqrt(1 - ab_prev) eps, x0 = (x - sqrt(1 - ab) eps) / sqrt(ab).
        using var s = new DPMSolverMultistepScheduler(Sd with { SolverOrder = 1, AlgorithmType = algorithm });
        s.SetTimesteps(5);
        long[] ts = [999, 799, 599, 400, 200];
        Assert.Equal(ts, K.Longs(s.Timesteps));
        using var eps = K.Randn(3, 1, 4, 8, 8);
        var x = K.Randn(4, 1, 4, 8, 8);
        var xd = K.D(x);
        var epsd = K.D(eps);
        for (int i = 0; i < ts.Length; i++)
        {
            double ab = K.Ab[ts[i]], abPrev = K.Ab[i + 1 < ts.Length ? ts[i + 1] : 0];
            var x0 = (xd - Math.Sqrt(1 - ab) * epsd) / Math.Sqrt(ab);
            xd = Math.Sqrt(abPrev) * x0 + Math.Sqrt(1 - abPrev) * epsd;
            x = s.Step(eps, ts[i], x).PrevSample;
            K.RelMax(x, xd, 1e-5, $"{algorithm} order 1 step {i}");
        }
    }

    /// <summary>
    /// With a data prediction x0(λ) = A + Bλ the ODE x' solves exactly: x_t = σ_t/σ_s x_s + α_t(A + B(λ_t − 1)) −
    /// σ_t α_s/σ_s (A + B(λ_s − 1)); the heun second-order and the third-order multistep updates are exact for it
    /// (their divided differences recover B exactly), so every step after the first-order warm-up must match.
    /// The noise-prediction form ε(λ) = A + Bλ likewise: x_t = α_t/α_s x_s + σ_t(A + B(λ_t + 1)) − α_t σ_s/α_s (A + B(λ_s + 1)).
    /// </summary>
    [Theory]
    [InlineData("dpmsolver++", 2)]
    [InlineData("dpmsolver++", 3)]
    [InlineData("dpmsolver", 2)]
    [InlineData("dpmsolver", 3)]
    public void HigherOrderStepsAreExactForAPredictionLinearInLambda(string algorithm, int order)
    {
        bool data = algorithm == "dpmsolver++";
        using var s = new DPMSolverMultistepScheduler(Sd with
        {
            SolverOrder = order,
            SolverType = "heun",
            AlgorithmType = algorithm,
            LowerOrderFinal = false,
            PredictionType = data ? "sample" : "epsilon",
        });
        const int n = 8;
        s.SetTimesteps(n);
        var ts = K.Longs(s.Timesteps);
        using var a = K.Randn(5, 1, 4, 8, 8);
        using var b = K.Randn(6, 1, 4, 8, 8) * 0.2;
        var x = K.Randn(7, 1, 4, 8, 8);
        for (int i = 0; i < n; i++)
        {
            var (aS, sS, lS) = K.Of(K.SigmaOfT(ts[i]));
            var (aT, sT, lT) = K.Of(K.SigmaOfT(i + 1 < n ? ts[i + 1] : 0));
            using var pred = a + b * (float)lS;
            var xd = K.D(x);
            Tensor expected = i == 0
                ? (data ? sT / sS * xd + (aT - sT * aS / sS) * K.D(pred) : aT / aS * xd - (aT * sS / aS - sT) * K.D(pred))
                : data
                    ? sT / sS * xd + aT * (K.D(a) + K.D(b) * (lT - 1)) - sT * aS / sS * (K.D(a) + K.D(b) * (lS - 1))
                    : aT / aS * xd + sT * (K.D(a) + K.D(b) * (lT + 1)) - aT * sS / aS * (K.D(a) + K.D(b) * (lS + 1));
            x = s.Step(pred, ts[i], x).PrevSample;
            K.RelMax(x, expected, 2e-5, $"{algorithm} order {order} step {i}");
        }
    }

    /// <summary>The first-order update with a constant data prediction (what lower_order_final / euler_at_final switch to).</summary>
    private static Tensor FirstOrder(Tensor x, Tensor x0, long t, long tNext)
    {
        var (aS, sS, _) = K.Of(K.SigmaOfT(t));
        var (aT, sT, _) = K.Of(K.SigmaOfT(tNext));
        return sT / sS * K.D(x) + (aT - sT * aS / sS) * K.D(x0);
    }

    [Theory]
    [InlineData(10, true, false, true)]   // < 15 steps: lower_order_final makes the last step first order
    [InlineData(10, false, false, false)]
    [InlineData(20, true, false, false)]  // >= 15 steps: lower_order_final does nothing
    [InlineData(20, true, true, true)]    // euler_at_final forces it
    public void FinalStepOrder(int n, bool lowerOrderFinal, bool eulerAtFinal, bool firstOrderAtEnd)
    {
        using var s = new DPMSolverMultistepScheduler(Sd with
        {
            SolverType = "heun",
            PredictionType = "sample",
            LowerOrderFinal = lowerOrderFinal,
            EulerAtFinal = eulerAtFinal,
        });
        s.SetTimesteps(n);
        var ts = K.Longs(s.Timesteps);
        using var a = K.Randn(5, 1, 4, 8, 8);
        using var b = K.Randn(6, 1, 4, 8, 8);
        var x = K.Randn(7, 1, 4, 8, 8);
        for (int i = 0; i < n; i++)
        {
            var (_, _, lS) = K.Of(K.SigmaOfT(ts[i]));
            using var pred = a + b * (float)lS;
            var before = x;
            x = s.Step(pred, ts[i], x).PrevSample;
            if (i == n - 1)
            {
                using var first = FirstOrder(before, pred, ts[i], 0);
                using var diff = (K.D(x) - first).abs().max();
                if (firstOrderAtEnd) K.RelMax(x, first, 1e-5, "first-order final step");
                else Assert.True(diff.item<double>() > 1e-3, "the final step should be second order");
            }
        }
    }

    /// <summary>
    /// SDE-DPM-Solver++-1 (arXiv 2211.01095 eq. for the first-order SDE solver):
    /// x_t = σ_t/σ_s e^{−h} x_s + α_t (1 − e^{−2h}) x0 + σ_t √(1 − e^{−2h}) z, one z ~ N(0, I) of the sample's shape per
    /// step, drawn from the step's generator; SDE-DPM-Solver-1: x_t = α_t/α_s x_s − 2σ_t(e^h − 1) ε + σ_t √(e^{2h} − 1) z.
    /// </summary>
    [Theory]
    [InlineData("sde-dpmsolver++")]
    [InlineData("sde-dpmsolver")]
    public void SdeFirstOrderDrawsOneNoisePerStepFromTheGenerator(string algorithm)
    {
        const int n = 5;
        using var s = new DPMSolverMultistepScheduler(Sd with { SolverOrder = 1, AlgorithmType = algorithm });
        s.SetTimesteps(n);
        var ts = K.Longs(s.Timesteps);
        using var g = new Generator(1234);
        using var replay = new Generator(1234);
        using var mo = K.Randn(8, 1, 4, 8, 8);
        var x = K.Randn(9, 1, 4, 8, 8);
        for (int i = 0; i < n; i++)
        {
            var (aS, sS, lS) = K.Of(K.SigmaOfT(ts[i]));
            var (aT, sT, lT) = K.Of(K.SigmaOfT(i + 1 < n ? ts[i + 1] : 0));
            double h = lT - lS;
            using var z = torch.randn([1, 4, 8, 8], generator: replay);
            Tensor expected;
            if (algorithm == "sde-dpmsolver++")
            {
                var x0 = (K.D(x) - sS * K.D(mo)) / aS; // epsilon prediction converted to x0
                expected = sT / sS * Math.Exp(-h) * K.D(x) + aT * (1 - Math.Exp(-2 * h)) * x0 + sT * Math.Sqrt(1 - Math.Exp(-2 * h)) * K.D(z);
            }
            else
                expected = aT / aS * K.D(x) - 2 * sT * (Math.Exp(h) - 1) * K.D(mo) + sT * Math.Sqrt(Math.Exp(2 * h) - 1) * K.D(z);
            x = s.Step(mo, ts[i], x, g).PrevSample;
            K.RelMax(x, expected, 2e-5, $"{algorithm} step {i}");
        }
        // exactly n draws of [1,4,8,8] were taken: both generators are at the same place
        using var next = torch.randn([16], generator: g);
        using var nextReplay = torch.randn([16], generator: replay);
        Tol.Close(next, nextReplay, 0, "generator position after the loop");
    }

    [Fact]
    public void SdeSecondOrderDrawsEveryStepAndInjectedNoiseReplaysTheGenerator()
    {
        var cfg = Sd with { AlgorithmType = "sde-dpmsolver++" };
        using var s1 = new DPMSolverMultistepScheduler(cfg);
        using var s2 = new DPMSolverMultistepScheduler(cfg);
        s1.SetTimesteps(6);
        s2.SetTimesteps(6);
        using var g = new Generator(77);
        using var replay = new Generator(77);
        var shapes = new List<long[]>();
        var replayOptions = new StepOptions { VarianceNoise = shape => { shapes.Add(shape); return torch.randn(shape, generator: replay); } };
        using var mo = K.Randn(8, 1, 4, 8, 8);
        var x1 = K.Randn(9, 1, 4, 8, 8);
        var x2 = x1.clone();
        foreach (var t in s1.TimestepValues)
        {
            x1 = s1.Step(mo, t, x1, g).PrevSample;
            x2 = s2.Step(mo, t, x2, replayOptions).PrevSample;
        }
        Assert.Equal(6, shapes.Count);
        Assert.All(shapes, sh => Assert.Equal(new long[] { 1, 4, 8, 8 }, sh));
        Tol.Close(x1, x2, 0, "generator vs injected noise");
    }

    [Fact]
    public void ThresholdingWithMaxValueOneClampsX0()
    {
        // sample_max_value 1: s = clamp(quantile, 1, 1) = 1, so dynamic thresholding is clamp(x0, -1, 1).
        using var s = new DPMSolverMultistepScheduler(Sd with { Thresholding = true, PredictionType = "sample" });
        s.SetTimesteps(5);
        var ts = K.Longs(s.Timesteps);
        using var x0 = K.Randn(10, 2, 4, 8, 8) * 3;
        using var x = K.Randn(11, 2, 4, 8, 8);
        using var outp = s.Step(x0, ts[0], x).PrevSample;
        using var expected = FirstOrder(x, x0.clamp(-1, 1), ts[0], ts[1]);
        K.RelMax(outp, expected, 1e-5, "thresholded first step");
    }

    [Fact]
    public void LearnedVarianceUsesTheFirstThreeChannels()
    {
        using var s = new DPMSolverMultistepScheduler(Sd with { VarianceType = "learned_range" });
        using var r = new DPMSolverMultistepScheduler(Sd);
        s.SetTimesteps(4);
        r.SetTimesteps(4);
        using var eps = K.Randn(12, 1, 3, 8, 8);
        using var v = K.Randn(13, 1, 3, 8, 8);
        using var withVar = torch.cat([eps, v], 1);
        using var x = K.Randn(14, 1, 3, 8, 8);
        using var a = s.Step(withVar, 999, x).PrevSample;
        using var e = r.Step(eps, 999, x).PrevSample;
        Tol.Close(a, e, 0, "learned_range");
    }

    [Theory]
    [InlineData("algorithm_type", "\"dpm-fancy\"", "algorithm_type \"dpm-fancy\" is not implemented")]
    [InlineData("solver_type", "\"rk4\"", "solver_type \"rk4\" is not implemented")]
    [InlineData("solver_order", "4", "solver_order 4 is not supported")]
    [InlineData("solver_order", "0", "solver_order 0 is not supported")]
    [InlineData("prediction_type", "\"noise\"", "prediction_type \"noise\" must be one of")]
    [InlineData("timestep_spacing", "\"random\"", "timestep_spacing \"random\" is not supported")]
    [InlineData("beta_schedule", "\"cubic\"", "beta_schedule \"cubic\" is not implemented")]
    public void BadOptionsAreConfigErrors(string key, string value, string message)
    {
        var e = Assert.Throws<ConfigException>(() =>
            SchedulerFactory.FromJson($"{{\"_class_name\": \"DPMSolverMultistepScheduler\", \"{key}\": {value}}}", "bad.json"));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void ThirdOrderSdeIsRejectedAndOtherSolversNamesAreMapped()
    {
        var e = Assert.Throws<ConfigException>(() => new DPMSolverMultistepScheduler(new() { AlgorithmType = "sde-dpmsolver++", SolverOrder = 3 }));
        Assert.Contains("solver_order 3 is not defined for algorithm_type \"sde-dpmsolver++\"", e.Message);
        using var s = new DPMSolverMultistepScheduler(new() { AlgorithmType = "deis", SolverType = "bh2" });
        Assert.Equal("dpmsolver++", s.TypedConfig.AlgorithmType);
        Assert.Equal("midpoint", s.TypedConfig.SolverType);
    }

    [Fact]
    public void StepErrors()
    {
        using var s = new DPMSolverMultistepScheduler(Sd);
        using var x = torch.zeros(1, 4, 8, 8);
        Assert.Contains("call SetTimesteps", Assert.Throws<DiffusersException>(() => s.Step(x, 999, x)).Message);
        s.SetTimesteps(2);
        Assert.Contains("timestep 998 is not in the scheduler's timesteps [999, 500]", Assert.Throws<DiffusersException>(() => s.Step(x, 998, x)).Message);
        s.Step(x, 999, x).PrevSample.Dispose();
        s.Step(x, 500, x).PrevSample.Dispose();
        Assert.Contains("all 2 steps of the schedule are done", Assert.Throws<DiffusersException>(() => s.Step(x, 500, x)).Message);
        Assert.Contains("cannot be larger than num_train_timesteps 1000", Assert.Throws<DiffusersException>(() => s.SetTimesteps(1001)).Message);
    }

    [Fact]
    public void FromDdpmConfigKeepsTheSharedKeysAndTakesItsOwnDefaults()
    {
        using var ddpm = new DDPMScheduler(new DDPMSchedulerConfig { BetaSchedule = "scaled_linear", BetaStart = 0.00085, BetaEnd = 0.012, StepsOffset = 1 });
        using var s = DPMSolverMultistepScheduler.FromConfig(ddpm.Config);
        Assert.Equal("scaled_linear", s.TypedConfig.BetaSchedule);
        Assert.Equal(0.00085, s.TypedConfig.BetaStart);
        Assert.Equal(2, s.TypedConfig.SolverOrder);
        Assert.Equal("DPMSolverMultistepScheduler", s.Config.ClassName);
        s.SetTimesteps(10);
        SchedulerGoldenTests.AssertExact(s.AlphasCumprod, Golden.Tensor("schedulers.safetensors", "dpmpp2m-sd/alphas_cumprod"), "alphas_cumprod");
    }
}
