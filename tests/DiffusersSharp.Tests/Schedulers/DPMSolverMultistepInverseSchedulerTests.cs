using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;
using G = DiffusersSharp.Tests.Schedulers.Schedulers2Golden;

namespace DiffusersSharp.Tests.Schedulers;

/// <summary>DPMSolverMultistepInverseScheduler against diffusers 0.25.1 (golden schedulers2/dpminv-*), and its refusals.</summary>
public class DPMSolverMultistepInverseSchedulerTests
{
    public static TheoryData<string> Cases => G.CasesOf(DPMSolverMultistepInverseScheduler.Name);

    [Fact]
    public void TheDefaultConfigIsDiffusers()
    {
        using var s = new DPMSolverMultistepInverseScheduler();
        G.AssertFullConfig("dpminv-default", s);
        Assert.Equal(1, s.Order);
        Assert.Equal(1.0, s.InitNoiseSigma);
        Assert.Empty(s.StepArguments);
        Assert.True(s.DefinesAddNoise);
        Assert.Equal(999, s.NoisiestTimestep);
    }

    [Theory, MemberData(nameof(Cases))]
    public void TablesTimestepsAndSigmasMatchDiffusers(string name)
    {
        using var s0 = G.Create(name);
        G.AssertFullConfig(name, s0);
        SchedulerGoldenTests.AssertExact(s0.Betas, G.T($"{name}/betas"), $"{name} betas");
        SchedulerGoldenTests.AssertExact(s0.AlphasCumprod, G.T($"{name}/alphas_cumprod"), $"{name} alphas_cumprod");
        SchedulerGoldenTests.AssertExact(s0.Timesteps, G.T($"{name}/init/timesteps"), $"{name} init timesteps");
        foreach (var set in G.Case(name).GetProperty("set_timesteps").EnumerateObject())
        {
            int n = int.Parse(set.Name);
            using var s = SchedulerFactory.FromConfig(s0.Config);
            s.SetTimesteps(n);
            SchedulerGoldenTests.AssertExact(s.Timesteps, G.T($"{name}/timesteps_N{n}"), $"{name} timesteps_N{n}");
            Assert.Equal(set.Value.GetProperty("num_timesteps").GetInt32(), s.NumInferenceSteps);
            Tol.RelClose(s.Sigmas!, G.T($"{name}/sigmas_N{n}"), Tol.SchedulerRel, $"{name} sigmas_N{n}", floor: 1e-6);
        }
    }

    [Theory, MemberData(nameof(Cases))]
    public void TheLoopAndAddNoiseMatchDiffusers(string name)
    {
        using var s = G.Create(name);
        G.RunLoop(name, s, StepOptions.Default, timestepUlps: 0);
        using var noisy = s.AddNoise(G.T("inputs/add_noise_original"), G.T("inputs/add_noise_noise"), G.T($"{name}/add_noise/timesteps"));
        SchedulerGoldenTests.Rel(noisy, G.T($"{name}/add_noise/noisy"), $"{name} add_noise");
    }

    [Fact]
    public void TheSdeVariantsAreRefusedBecauseDiffusersStepsToNaN()
    {
        // golden cases.json "sde_inverse": diffusers' first step is NaN in every value for both
        Assert.Equal(2, G.Doc.GetProperty("sde_inverse").EnumerateObject().Count());
        foreach (var algorithm in new[] { "sde-dpmsolver++", "sde-dpmsolver" })
        {
            var e = Assert.Throws<ConfigException>(() => new DPMSolverMultistepInverseScheduler(new DPMSolverMultistepInverseSchedulerConfig { AlgorithmType = algorithm }));
            Assert.Equal($"DPMSolverMultistepInverseScheduler: algorithm_type \"{algorithm}\" gives NaN from the first step of the inverse, as in diffusers: " +
                         "its noise term, sqrt(1 - exp(-2h)) or sqrt(exp(2h) - 1), takes the root of a negative number where the noise grows (h < 0); " +
                         "use \"dpmsolver++\" or \"dpmsolver\"", e.Message);
            Assert.Equal("algorithm_type", e.Key);
        }
    }

    [Fact]
    public void BadConfigsAndCallsAreRefusedWithTheirNames()
    {
        var e = Assert.Throws<ConfigException>(() => new DPMSolverMultistepInverseScheduler(new DPMSolverMultistepInverseSchedulerConfig { SolverOrder = 4 }));
        Assert.Equal("DPMSolverMultistepInverseScheduler: solver_order 4 is not supported; DPM-Solver has orders 1, 2 and 3", e.Message);
        e = Assert.Throws<ConfigException>(() => new DPMSolverMultistepInverseScheduler(new DPMSolverMultistepInverseSchedulerConfig { TimestepSpacing = "uniform" }));
        Assert.Equal("DPMSolverMultistepInverseScheduler: timestep_spacing \"uniform\" is not supported; choose one of \"linspace\", \"leading\" or \"trailing\"", e.Message);
        // diffusers' renames, as in the forward class
        using var deis = new DPMSolverMultistepInverseScheduler(new DPMSolverMultistepInverseSchedulerConfig { AlgorithmType = "deis", SolverType = "bh2" });
        Assert.Equal(("dpmsolver++", "midpoint"), (deis.TypedConfig.AlgorithmType, deis.TypedConfig.SolverType));

        using var s = new DPMSolverMultistepInverseScheduler();
        using var x = torch.zeros(1, 4, 8, 8);
        var d = Assert.Throws<DiffusersException>(() => s.Step(x, 0, x));
        Assert.Equal("DPMSolverMultistepInverseScheduler: call SetTimesteps before Step", d.Message);
        s.SetTimesteps(4);
        Assert.Equal(new long[] { 0, 250, 500, 749 }, s.Timesteps.data<long>().ToArray());
        d = Assert.Throws<DiffusersException>(() => s.Step(x, 7, x));
        Assert.Equal("DPMSolverMultistepInverseScheduler: timestep 7 is not in the scheduler's timesteps [0, 250, 500, 749]", d.Message);
        foreach (double t in s.TimestepValues) s.Step(x, t, x).Dispose();
        d = Assert.Throws<DiffusersException>(() => s.Step(x, 749, x));
        Assert.Equal("DPMSolverMultistepInverseScheduler: all 4 steps of the schedule are done; call SetTimesteps again before a new loop", d.Message);
    }

    [Fact]
    public void AHeunLastStepOntoTheRepeatedNoisiestSigmaIsNotFiniteAndTheCauseIsNamed()
    {
        // "trailing" ends at the noisiest timestep, whose sigma is also the final one: h = 0 on the last step, and
        // diffusers' heun second-order update computes (exp(-h) - 1) / h = 0 / 0 there (20 steps: not lowered);
        // golden cases.json "heun_trailing_inverse_finite": diffusers' finiteness after each step, both ways
        var finite = G.Doc.GetProperty("heun_trailing_inverse_finite");
        Assert.Equal([.. Enumerable.Repeat(true, 19), false], finite.GetProperty("plain").EnumerateArray().Select(e => e.GetBoolean()));
        Assert.All(finite.GetProperty("euler_at_final").EnumerateArray(), e => Assert.True(e.GetBoolean()));
        var config = new DPMSolverMultistepInverseSchedulerConfig { TimestepSpacing = "trailing", SolverType = "heun" };
        using var s = new DPMSolverMultistepInverseScheduler(config);
        s.SetTimesteps(20);
        var x = torch.linspace(-1, 1, 256).reshape(1, 4, 8, 8);
        var ts = s.TimestepValues;
        for (int i = 0; i < ts.Length; i++)
        {
            x = s.Step(x * 0.1, ts[i], x).PrevSample;
            if (i < ts.Length - 1) Assert.True(x.isfinite().all().item<bool>(), $"step {i}");
        }
        Assert.False(x.isfinite().all().item<bool>());
        Assert.Equal("step 19 (timestep 999) of 20: h = lambda(t) - lambda(s0) is 0, and the second-order update's heun term (exp(-h) - 1) / h is NaN, " +
                     "as in diffusers' DPMSolverMultistepInverseScheduler.step; its sigma equals the final one (the noisiest timestep's, where this schedule ends): " +
                     "set euler_at_final true, which makes the last step first-order, or use fewer than 15 steps with lower_order_final", s.NonFiniteCause(999));
        using var euler = new DPMSolverMultistepInverseScheduler(config with { EulerAtFinal = true });
        euler.SetTimesteps(20);
        x = torch.linspace(-1, 1, 256).reshape(1, 4, 8, 8);
        foreach (double t in euler.TimestepValues) x = euler.Step(x * 0.1, t, x).PrevSample;
        Assert.True(x.isfinite().all().item<bool>());
        Assert.Null(euler.NonFiniteCause(999));
    }
}
