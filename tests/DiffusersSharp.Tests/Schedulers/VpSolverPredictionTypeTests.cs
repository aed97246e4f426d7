using DiffusersSharp.Schedulers;
using TorchSharp;
using static TorchSharp.torch;
using K = DiffusersSharp.Tests.Schedulers.VpSolverKit;

namespace DiffusersSharp.Tests.Schedulers;

/// <summary>
/// The model-output conversions of the VP solvers, and the SDE-DPM-Solver second-order steps. A sample
/// x = α_s c + σ_s ε handed with a model output that is consistent with it (ε for epsilon, c for sample,
/// α_s ε − σ_s c for v_prediction) lies on the exact trajectory of a constant x0 / constant ε, so every first-order
/// solver (data or noise form) must return α_t c + σ_t ε at the next sigma.
/// </summary>
public class VpSolverPredictionTypeTests
{
    public static TheoryData<string, string, string> Cases()
    {
        var d = new TheoryData<string, string, string>();
        foreach (var p in new[] { "epsilon", "sample", "v_prediction" })
        {
            d.Add("DPMSolverMultistepScheduler", p, "\"algorithm_type\": \"dpmsolver++\", \"solver_order\": 1");
            d.Add("DPMSolverMultistepScheduler", p, "\"algorithm_type\": \"dpmsolver\", \"solver_order\": 1");
            d.Add("DPMSolverSinglestepScheduler", p, "\"algorithm_type\": \"dpmsolver++\", \"solver_order\": 1");
            d.Add("DPMSolverSinglestepScheduler", p, "\"algorithm_type\": \"dpmsolver\", \"solver_order\": 1");
            d.Add("UniPCMultistepScheduler", p, "\"predict_x0\": true, \"solver_order\": 1");
            d.Add("UniPCMultistepScheduler", p, "\"predict_x0\": false, \"solver_order\": 1");
            d.Add("DEISMultistepScheduler", p, "\"solver_order\": 1");
        }
        return d;
    }

    [Theory, MemberData(nameof(Cases))]
    public void FirstStepStaysOnTheTrajectory(string cls, string prediction, string options)
    {
        using var s = SchedulerFactory.FromJson(
            $"{{\"_class_name\": \"{cls}\", \"beta_schedule\": \"scaled_linear\", \"beta_start\": 0.00085, \"beta_end\": 0.012, \"prediction_type\": \"{prediction}\", {options}}}");
        s.SetTimesteps(5);
        var ts = K.Longs(s.Timesteps);
        Assert.Equal(new long[] { 999, 799, 599, 400, 200 }, ts);
        var (aS, sS, _) = K.Of(K.SigmaOfT(ts[0]));
        var (aT, sT, _) = K.Of(K.SigmaOfT(ts[1]));
        using var c = K.Randn(1, 1, 4, 8, 8);
        using var eps = K.Randn(2, 1, 4, 8, 8);
        using var x = c * (float)aS + eps * (float)sS;
        using var mo = prediction switch
        {
            "epsilon" => eps.clone(),
            "sample" => c.clone(),
            _ => eps * (float)aS - c * (float)sS,
        };
        using var prev = s.Step(mo, ts[0], x).PrevSample;
        K.RelMax(prev, aT * K.D(c) + sT * K.D(eps), 2e-5, $"{cls} {prediction} {options}");
    }

    /// <summary>
    /// SDE-DPM-Solver(++)-2M with a constant data / noise prediction: the D1 term vanishes and the step is the
    /// first-order SDE step, x_t = σ_t/σ_s e^{−h} x + α_t(1 − e^{−2h}) c + σ_t √(1 − e^{−2h}) z (data form) or
    /// x_t = α_t/α_s x − 2σ_t(e^h − 1) ε + σ_t √(e^{2h} − 1) z (noise form), z the step's draw.
    /// </summary>
    [Theory]
    [InlineData("sde-dpmsolver++", "midpoint")]
    [InlineData("sde-dpmsolver++", "heun")]
    [InlineData("sde-dpmsolver", "midpoint")]
    [InlineData("sde-dpmsolver", "heun")]
    public void SdeSecondOrderWithAConstantPrediction(string algorithm, string solverType)
    {
        bool data = algorithm == "sde-dpmsolver++";
        using var s = new DPMSolverMultistepScheduler(new()
        {
            BetaSchedule = "scaled_linear", BetaStart = 0.00085, BetaEnd = 0.012, AlgorithmType = algorithm,
            SolverType = solverType, PredictionType = data ? "sample" : "epsilon",
        });
        s.SetTimesteps(6);
        var ts = K.Longs(s.Timesteps);
        using var g = new Generator(5);
        using var replay = new Generator(5);
        using var m = K.Randn(1, 1, 4, 8, 8);
        var x = K.Randn(2, 1, 4, 8, 8);
        for (int i = 0; i < ts.Length; i++)
        {
            var (aS, sS, lS) = K.Of(K.SigmaOfT(ts[i]));
            var (aT, sT, lT) = K.Of(K.SigmaOfT(i + 1 < ts.Length ? ts[i + 1] : 0));
            double h = lT - lS;
            using var z = torch.randn([1, 4, 8, 8], generator: replay);
            var expected = data
                ? sT / sS * Math.Exp(-h) * K.D(x) + aT * (1 - Math.Exp(-2 * h)) * K.D(m) + sT * Math.Sqrt(1 - Math.Exp(-2 * h)) * K.D(z)
                : aT / aS * K.D(x) - 2 * sT * (Math.Exp(h) - 1) * K.D(m) + sT * Math.Sqrt(Math.Exp(2 * h) - 1) * K.D(z);
            x = s.Step(m, ts[i], x, g).PrevSample;
            K.RelMax(x, expected, 2e-5, $"{algorithm} {solverType} step {i}");
        }
    }
}
