using DiffusersSharp.Schedulers;
using TorchSharp;
using static TorchSharp.torch;
using K = DiffusersSharp.Tests.Schedulers.VpSolverKit;

namespace DiffusersSharp.Tests.Schedulers;

/// <summary>
/// DEISMultistepScheduler (no golden case): spacings, order 1 = DDIM, and the log-ρ Lagrange integrator exact for an ε
/// that is a polynomial of degree order − 1 in log ρ = −λ (order 2: linear, order 3: quadratic), bad input.
/// </summary>
public class DEISMultistepSchedulerTests
{
    private static DEISMultistepSchedulerConfig Sd => new()
    {
        BetaSchedule = "scaled_linear", BetaStart = 0.00085, BetaEnd = 0.012, StepsOffset = 1,
    };

    [Theory]
    [InlineData("linspace", new long[] { 999, 799, 599, 400, 200 })]
    [InlineData("leading", new long[] { 831, 665, 499, 333, 167 })]
    [InlineData("trailing", new long[] { 999, 799, 599, 399, 199 })]
    public void SpacingsGiveTheFormulaTimesteps(string spacing, long[] expected)
    {
        using var s = new DEISMultistepScheduler(Sd with { TimestepSpacing = spacing });
        s.SetTimesteps(5);
        Assert.Equal(expected, K.Longs(s.Timesteps));
        Assert.Equal(K.SigmaOfT(0), s.Sigmas!.data<float>()[5], 1e-6);
    }

    [Fact]
    public void OrderOneIsDdim()
    {
        using var s = new DEISMultistepScheduler(Sd with { SolverOrder = 1 });
        s.SetTimesteps(5);
        K.AssertDdimLoop(s, [999, 799, 599, 400, 200]);
    }

    [Theory]
    [InlineData(2, false)]
    [InlineData(3, true)]
    public void ExactForAPolynomialNoisePrediction(int order, bool quadratic)
    {
        const int n = 8;
        using var s = new DEISMultistepScheduler(Sd with { SolverOrder = order, LowerOrderFinal = false });
        s.SetTimesteps(n);
        var ts = K.Longs(s.Timesteps);
        using var a = K.Randn(5, 1, 4, 8, 8);
        using var b = K.Randn(6, 1, 4, 8, 8) * 0.3;
        using var c = quadratic ? K.Randn(7, 1, 4, 8, 8) * 0.1 : torch.zeros(1, 4, 8, 8);
        var x = K.Randn(8, 1, 4, 8, 8);
        for (int i = 0; i < n; i++)
        {
            double sgS = K.SigmaOfT(ts[i]), sgT = K.SigmaOfT(i + 1 < n ? ts[i + 1] : 0);
            using var eps = K.Poly(a, b, c, K.Of(sgS).Lambda);
            var before = x;
            x = s.Step(eps, ts[i], x).PrevSample;
            if (i < order - 1) continue; // warm-up steps are of lower order
            using var expected = K.FlowEps(before, sgS, sgT, a, b, c);
            K.RelMax(x, expected, 5e-5, $"DEIS order {order} step {i}");
        }
    }

    [Fact]
    public void LowerOrderFinalDropsToFirstOrderAtTheEnd()
    {
        // The last step of a < 15-step schedule is first order: exact only for a constant ε, so a linear ε shows it.
        using var s = new DEISMultistepScheduler(Sd with { SolverOrder = 2 });
        s.SetTimesteps(6);
        var ts = K.Longs(s.Timesteps);
        using var a = K.Randn(5, 1, 4, 8, 8);
        using var b = K.Randn(6, 1, 4, 8, 8) * 0.3;
        using var zero = torch.zeros(1, 4, 8, 8);
        var x = K.Randn(8, 1, 4, 8, 8);
        for (int i = 0; i < 6; i++)
        {
            double sgS = K.SigmaOfT(ts[i]), sgT = K.SigmaOfT(i + 1 < 6 ? ts[i + 1] : 0);
            using var eps = K.Poly(a, b, zero, K.Of(sgS).Lambda);
            var before = x;
            x = s.Step(eps, ts[i], x).PrevSample;
            if (i == 5)
            {
                using var firstOrder = K.FlowEps(before, sgS, sgT, eps, zero, zero); // constant ε = its value at s
                K.RelMax(x, firstOrder, 1e-5, "first-order final step");
            }
        }
    }

    [Fact]
    public void BadInputAndMappedNames()
    {
        Assert.Contains("algorithm_type \"dpm\" is not implemented",
            Assert.Throws<ConfigException>(() => new DEISMultistepScheduler(new() { AlgorithmType = "dpm" })).Message);
        Assert.Contains("solver_type \"euler\" is not implemented",
            Assert.Throws<ConfigException>(() => new DEISMultistepScheduler(new() { SolverType = "euler" })).Message);
        Assert.Contains("solver_order 4 is not supported",
            Assert.Throws<ConfigException>(() => SchedulerFactory.FromJson("{\"_class_name\": \"DEISMultistepScheduler\", \"solver_order\": 4}")).Message);
        using var s = new DEISMultistepScheduler(new() { AlgorithmType = "dpmsolver++", SolverType = "midpoint" });
        Assert.Equal("deis", s.TypedConfig.AlgorithmType);
        Assert.Equal("logrho", s.TypedConfig.SolverType);
        // from_config of a DPM-Solver config: its algorithm/solver names map onto DEIS's
        using var dpm = new DPMSolverMultistepScheduler();
        using var d = DEISMultistepScheduler.FromConfig(dpm.Config);
        Assert.Equal("deis", d.TypedConfig.AlgorithmType);
        Assert.Equal("logrho", d.TypedConfig.SolverType);
    }
}
