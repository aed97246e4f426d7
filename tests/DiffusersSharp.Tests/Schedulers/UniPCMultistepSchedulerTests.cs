using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;
using K = DiffusersSharp.Tests.Schedulers.VpSolverKit;

namespace DiffusersSharp.Tests.Schedulers;

/// <summary>
/// UniPCMultistepScheduler beyond the golden case (unipc-bh2-order2-sd): order 1 = DDIM, UniP-2/bh2 without the
/// corrector = DPM-Solver++(2M) midpoint, the order-3 predictor and corrector (bh1 and bh2, on x0 and on ε) exact for
/// a model prediction quadratic in λ, disable_corrector, bad input.
/// </summary>
public class UniPCMultistepSchedulerTests
{
    private static UniPCMultistepSchedulerConfig Sd => new()
    {
        BetaSchedule = "scaled_linear", BetaStart = 0.00085, BetaEnd = 0.012, StepsOffset = 1,
    };

    [Theory]
    [InlineData("linspace", new long[] { 999, 799, 599, 400, 200 })]
    [InlineData("leading", new long[] { 831, 665, 499, 333, 167 })]
    [InlineData("trailing", new long[] { 999, 799, 599, 399, 199 })]
    public void SpacingsGiveTheFormulaTimesteps(string spacing, long[] expected)
    {
        using var s = new UniPCMultistepScheduler(Sd with { TimestepSpacing = spacing });
        s.SetTimesteps(5);
        Assert.Equal(expected, K.Longs(s.Timesteps));
        Assert.Equal(K.SigmaOfT(0), s.Sigmas!.data<float>()[5], 1e-6);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void OrderOneWithoutCorrectorIsDdim(bool predictX0)
    {
        using var s = new UniPCMultistepScheduler(Sd with { SolverOrder = 1, PredictX0 = predictX0, DisableCorrector = [0, 1, 2, 3, 4] });
        s.SetTimesteps(5);
        long[] ts = [999, 799, 599, 400, 200];
        using var eps = K.Randn(3, 1, 4, 8, 8);
        var x = K.Randn(4, 1, 4, 8, 8);
        var xd = K.D(x);
        for (int i = 0; i < ts.Length; i++)
        {
            double ab = K.Ab[ts[i]], abPrev = K.Ab[i + 1 < ts.Length ? ts[i + 1] : 0];
            var x0 = (xd - Math.Sqrt(1 - ab) * K.D(eps)) / Math.Sqrt(ab);
            xd = Math.Sqrt(abPrev) * x0 + Math.Sqrt(1 - abPrev) * K.D(eps);
            x = s.Step(eps, ts[i], x).PrevSample;
            K.RelMax(x, xd, 1e-5, $"step {i}");
        }
    }

    [Fact]
    public void Bh2OrderTwoPredictorIsDpmSolverPlusPlusMidpoint()
    {
        using var u = new UniPCMultistepScheduler(Sd with { DisableCorrector = Enumerable.Range(0, 10).ToArray() });
        using var d = new DPMSolverMultistepScheduler(new() { BetaSchedule = "scaled_linear", BetaStart = 0.00085, BetaEnd = 0.012, StepsOffset = 1 });
        u.SetTimesteps(10);
        d.SetTimesteps(10);
        using var e = K.Randn(3, 1, 4, 8, 8);
        var xu = K.Randn(4, 1, 4, 8, 8);
        var xd = xu.clone();
        foreach (var t in u.TimestepValues)
        {
            using var mu = xu * 0.1f + e;
            using var md = xd * 0.1f + e;
            xu = u.Step(mu, t, xu).PrevSample;
            xd = d.Step(md, t, xd).PrevSample;
            K.RelMax(xu, xd, 1e-6, $"t={t}");
        }
    }

    [Fact]
    public void OrderOneCorrectorUsesHalfTheNewDifferenceTimesB()
    {
        // UniC-1 (rho = 1/2): x_c = σ_t/σ_s x_last − α_t (e^{−h} − 1) m0 − α_t B(h) ½ (m_t − m0), B(h) = −h (bh1) or e^{−h} − 1 (bh2).
        foreach (var bh in new[] { "bh1", "bh2" })
        {
            using var s = new UniPCMultistepScheduler(Sd with { SolverOrder = 1, SolverType = bh, PredictionType = "sample" });
            s.SetTimesteps(5);
            var ts = K.Longs(s.Timesteps);
            using var m0 = K.Randn(5, 1, 4, 8, 8);
            using var mt = K.Randn(6, 1, 4, 8, 8);
            using var x = K.Randn(7, 1, 4, 8, 8);
            using var x1 = s.Step(m0, ts[0], x).PrevSample;
            using var x2 = s.Step(mt, ts[1], x1).PrevSample;
            var (a0, s0, l0) = K.Of(K.SigmaOfT(ts[0]));
            var (a1, s1, l1) = K.Of(K.SigmaOfT(ts[1]));
            var (a2, s2, l2) = K.Of(K.SigmaOfT(ts[2]));
            double h = l1 - l0, b = bh == "bh1" ? -h : Math.Exp(-h) - 1;
            var corrected = s1 / s0 * K.D(x) - a1 * (Math.Exp(-h) - 1) * K.D(m0) - a1 * b * 0.5 * (K.D(mt) - K.D(m0));
            double h2 = l2 - l1;
            var expected = s2 / s1 * corrected - a2 * (Math.Exp(-h2) - 1) * K.D(mt);
            K.RelMax(x2, expected, 1e-5, bh);
        }
    }

    /// <summary>
    /// UniP-3 matches the moments of the exact φ-integrals up to degree 2 (its 2×2 system), UniC-3 up to degree 3, so
    /// with a prediction quadratic in λ both are exact: once the warm-up is over each step maps its input along the
    /// exact flow. Data prediction x0 = A + Bλ + Cλ²: x_t = σ_t/σ_s x + α_t F(λ_t) − σ_t α_s/σ_s F(λ_s),
    /// F = A + B(λ−1) + C(λ²−2λ+2); noise prediction ε = A + Bλ + Cλ²: x_t = α_t/α_s x + σ_t G(λ_t) − α_t σ_s/α_s G(λ_s),
    /// G = A + B(λ+1) + C(λ²+2λ+2).
    /// </summary>
    [Theory]
    [InlineData("bh1", true, false)]
    [InlineData("bh2", true, false)]
    [InlineData("bh1", true, true)]
    [InlineData("bh2", true, true)]
    [InlineData("bh2", false, false)]
    [InlineData("bh1", false, true)]
    public void OrderThreeIsExactForAQuadraticPrediction(string bh, bool predictX0, bool corrector)
    {
        const int n = 9;
        using var s = new UniPCMultistepScheduler(Sd with
        {
            SolverOrder = 3,
            SolverType = bh,
            PredictX0 = predictX0,
            LowerOrderFinal = false,
            PredictionType = predictX0 ? "sample" : "epsilon",
            DisableCorrector = corrector ? [] : Enumerable.Range(0, n).ToArray(),
        });
        s.SetTimesteps(n);
        var ts = K.Longs(s.Timesteps);
        using var a = K.Randn(5, 1, 4, 8, 8);
        using var b = K.Randn(6, 1, 4, 8, 8) * 0.3;
        using var c = K.Randn(7, 1, 4, 8, 8) * 0.1;
        Tensor F(double l) => predictX0
            ? K.D(a) + K.D(b) * (l - 1) + K.D(c) * (l * l - 2 * l + 2)
            : K.D(a) + K.D(b) * (l + 1) + K.D(c) * (l * l + 2 * l + 2);
        var x = K.Randn(8, 1, 4, 8, 8);
        int firstExact = corrector ? 3 : 2;
        for (int i = 0; i < n; i++)
        {
            var (aS, sS, lS) = K.Of(K.SigmaOfT(ts[i]));
            var (aT, sT, lT) = K.Of(K.SigmaOfT(i + 1 < n ? ts[i + 1] : 0));
            using var pred = a + b * (float)lS + c * (float)(lS * lS);
            var xin = K.D(x);
            x = s.Step(pred, ts[i], x).PrevSample;
            if (i < firstExact) continue;
            var expected = predictX0
                ? sT / sS * xin + aT * F(lT) - sT * aS / sS * F(lS)
                : aT / aS * xin + sT * F(lT) - aT * sS / aS * F(lS);
            K.RelMax(x, expected, 5e-5, $"{bh} predict_x0={predictX0} corrector={corrector} step {i}");
        }
    }

    [Fact]
    public void DisablingTheCorrectorChangesOnlyTheFollowingStep()
    {
        using var on = new UniPCMultistepScheduler(Sd);
        using var off = new UniPCMultistepScheduler(Sd with { DisableCorrector = [2] });
        on.SetTimesteps(6);
        off.SetTimesteps(6);
        using var e = K.Randn(3, 1, 4, 8, 8);
        var x1 = K.Randn(4, 1, 4, 8, 8);
        var x2 = x1.clone();
        var ts = on.TimestepValues;
        for (int i = 0; i < ts.Length; i++)
        {
            using var m1 = x1 * 0.1f + e;
            using var m2 = x2 * 0.1f + e;
            x1 = on.Step(m1, ts[i], x1).PrevSample;
            x2 = off.Step(m2, ts[i], x2).PrevSample;
            using var d = (x1 - x2).abs().max();
            if (i < 3) Assert.Equal(0f, d.item<float>());
            else Assert.True(d.item<float>() > 1e-4, $"step {i}: the skipped correction at step 3 should show");
        }
    }

    [Fact]
    public void BadInput()
    {
        Assert.Contains("solver_type \"rk4\" is not implemented",
            Assert.Throws<ConfigException>(() => SchedulerFactory.FromJson("{\"_class_name\": \"UniPCMultistepScheduler\", \"solver_type\": \"rk4\"}")).Message);
        Assert.Contains("solver_order must be at least 1",
            Assert.Throws<ConfigException>(() => new UniPCMultistepScheduler(new() { SolverOrder = 0 })).Message);
        Assert.Contains("solver_p",
            Assert.Throws<ConfigException>(() => SchedulerFactory.FromJson("{\"_class_name\": \"UniPCMultistepScheduler\", \"solver_p\": {\"x\": 1}}")).Message);
        Assert.Contains("prediction_type \"noise\"",
            Assert.Throws<ConfigException>(() => new UniPCMultistepScheduler(new() { PredictionType = "noise" })).Message);
        using var midpoint = new UniPCMultistepScheduler(new() { SolverType = "midpoint" });
        Assert.Equal("bh2", midpoint.TypedConfig.SolverType);
        using var s = new UniPCMultistepScheduler(Sd);
        s.SetTimesteps(3);
        using var x = torch.zeros(1, 4, 8, 8);
        Assert.Contains("timestep 5 is not in the scheduler's timesteps", Assert.Throws<DiffusersException>(() => s.Step(x, 5, x)).Message);
    }
}
