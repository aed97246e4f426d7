using DiffusersSharp.Schedulers;
using TorchSharp;
using static TorchSharp.torch;
using K = DiffusersSharp.Tests.Schedulers.VpSolverKit;

namespace DiffusersSharp.Tests.Schedulers;

/// <summary>
/// DPMSolverSinglestepScheduler (no golden case): order lists, order 1 = DDIM, each order-k macro step exact along the
/// ODE flow from its first sub-step for a prediction of degree k − 1 in λ (heun 3 even for degree 2), bad input.
/// </summary>
public class DPMSolverSinglestepSchedulerTests
{
    private static DPMSolverSinglestepSchedulerConfig Sd => new() { BetaSchedule = "scaled_linear", BetaStart = 0.00085, BetaEnd = 0.012 };

    [Theory]
    [InlineData(9, 3, true, new[] { 1, 2, 3, 1, 2, 3, 1, 2, 1 })]
    [InlineData(10, 3, true, new[] { 1, 2, 3, 1, 2, 3, 1, 2, 3, 1 })]
    [InlineData(8, 3, true, new[] { 1, 2, 3, 1, 2, 3, 1, 2 })]
    [InlineData(5, 2, true, new[] { 1, 2, 1, 2, 1 })]
    [InlineData(6, 2, false, new[] { 1, 2, 1, 2, 1, 2 })]
    [InlineData(9, 3, false, new[] { 1, 2, 3, 1, 2, 3, 1, 2, 3 })]
    [InlineData(3, 1, true, new[] { 1, 1, 1 })]
    public void OrderLists(int steps, int order, bool lowerOrderFinal, int[] expected)
    {
        using var s = new DPMSolverSinglestepScheduler(Sd with { SolverOrder = order, LowerOrderFinal = lowerOrderFinal });
        s.SetTimesteps(steps);
        Assert.Equal(expected, s.OrderList);
        Assert.Equal(new long[] { 999, 799, 599, 400, 200 }, Take5());
    }

    private static long[] Take5()
    {
        using var s = new DPMSolverSinglestepScheduler(Sd);
        s.SetTimesteps(5);
        return K.Longs(s.Timesteps);
    }

    [Fact]
    public void UnevenStepsSwitchLowerOrderFinalOn()
    {
        using var s = new DPMSolverSinglestepScheduler(Sd with { SolverOrder = 3, LowerOrderFinal = false });
        s.SetTimesteps(7);
        Assert.True(s.TypedConfig.LowerOrderFinal);
        Assert.Equal(new[] { 1, 2, 3, 1, 2, 3, 1 }, s.OrderList);
    }

    [Theory]
    [InlineData("dpmsolver++")]
    [InlineData("dpmsolver")]
    public void OrderOneIsDdim(string algorithm)
    {
        using var s = new DPMSolverSinglestepScheduler(Sd with { SolverOrder = 1, AlgorithmType = algorithm });
        s.SetTimesteps(5);
        K.AssertDdimLoop(s, [999, 799, 599, 400, 200]);
    }

    /// <summary>
    /// A step of order k integrates from the sample given at its first sub-step (k − 1 steps earlier) to the next sigma;
    /// heun-2 and midpoint-3 (which uses only the newest difference) are exact for a prediction linear in λ, heun-3 for a
    /// quadratic one.
    /// </summary>
    [Theory]
    [InlineData("dpmsolver++", "heun", 2, false)]
    [InlineData("dpmsolver", "heun", 2, false)]
    [InlineData("dpmsolver++", "midpoint", 3, false)]
    [InlineData("dpmsolver", "midpoint", 3, false)]
    [InlineData("dpmsolver++", "heun", 3, true)]
    [InlineData("dpmsolver", "heun", 3, true)]
    public void MacroStepsAreExactForPolynomialPredictions(string algorithm, string solverType, int order, bool quadratic)
    {
        const int n = 9;
        bool data = algorithm == "dpmsolver++";
        using var s = new DPMSolverSinglestepScheduler(Sd with
        {
            SolverOrder = order,
            SolverType = solverType,
            AlgorithmType = algorithm,
            LowerOrderFinal = false,
            PredictionType = data ? "sample" : "epsilon",
        });
        s.SetTimesteps(n);
        var ts = K.Longs(s.Timesteps);
        double Sg(int i) => K.SigmaOfT(i < n ? ts[i] : 0);
        using var a = K.Randn(5, 1, 4, 8, 8);
        using var b = K.Randn(6, 1, 4, 8, 8) * 0.3;
        using var c = quadratic ? K.Randn(7, 1, 4, 8, 8) * 0.1 : torch.zeros(1, 4, 8, 8);
        var inputs = new List<Tensor>();
        var x = K.Randn(8, 1, 4, 8, 8);
        int checkedSteps = 0;
        for (int i = 0; i < n; i++)
        {
            inputs.Add(x);
            using var pred = K.Poly(a, b, c, K.Of(Sg(i)).Lambda);
            x = s.Step(pred, ts[i], x).PrevSample;
            int k = s.OrderList[i];
            if (k != order) continue;
            int start = i - (k - 1);
            using var expected = data
                ? K.FlowData(inputs[start], Sg(start), Sg(i + 1), a, b, c)
                : K.FlowEps(inputs[start], Sg(start), Sg(i + 1), a, b, c);
            K.RelMax(x, expected, 5e-5, $"{algorithm} {solverType} order {k} step {i}");
            checkedSteps++;
        }
        Assert.Equal(n / order, checkedSteps);
    }

    [Fact]
    public void BadInput()
    {
        Assert.Contains("algorithm_type \"sde-dpmsolver++\" is not implemented",
            Assert.Throws<ConfigException>(() => new DPMSolverSinglestepScheduler(new() { AlgorithmType = "sde-dpmsolver++" })).Message);
        Assert.Contains("solver_type \"rk4\" is not implemented",
            Assert.Throws<ConfigException>(() => new DPMSolverSinglestepScheduler(new() { SolverType = "rk4" })).Message);
        Assert.Contains("solver_order 4 is not supported",
            Assert.Throws<ConfigException>(() => SchedulerFactory.FromJson("{\"_class_name\": \"DPMSolverSinglestepScheduler\", \"solver_order\": 4}")).Message);
        using var bh2 = new DPMSolverSinglestepScheduler(new() { SolverType = "bh2" });
        Assert.Equal("midpoint", bh2.TypedConfig.SolverType);
        using var s = new DPMSolverSinglestepScheduler(Sd);
        using var x = torch.zeros(1, 4, 8, 8);
        Assert.Contains("call SetTimesteps", Assert.Throws<DiffusersException>(() => s.Step(x, 999, x)).Message);
    }
}
