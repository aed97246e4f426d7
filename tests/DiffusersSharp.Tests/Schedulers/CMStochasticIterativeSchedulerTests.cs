using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;
using G = DiffusersSharp.Tests.Schedulers.Schedulers2Golden;

namespace DiffusersSharp.Tests.Schedulers;

/// <summary>CMStochasticIterativeScheduler against diffusers 0.25.1 (golden schedulers2/cm-*), and its refusals.</summary>
public class CMStochasticIterativeSchedulerTests
{
    /// <summary>
    /// The float64 timesteps 250·log σ of the loops: numpy's float64 log and pow (its own SIMD code on AVX-512 machines)
    /// and the C library's may differ in the last bit; the float32 sigmas of every SetTimesteps are bit-exact.
    /// </summary>
    private const int TimestepUlps = 1;

    /// <summary>
    /// The float64 schedules (the constructor's sigmas and every timestep table) relative to their largest value: a
    /// last-bit difference of σ near 1 is many ulps of log σ ≈ 0 (32 in cm-variant), never more than 1e-13 of the table.
    /// </summary>
    private const double Float64ScheduleRel = 1e-13;

    private static void AssertSchedule(Tensor actual, Tensor expected, string what)
    {
        Assert.Equal(expected.dtype, actual.dtype);
        using var mx = expected.abs().max();
        Tol.RelClose(actual, expected, Float64ScheduleRel, what, floor: mx.item<double>());
    }

    public static TheoryData<string> Cases => G.CasesOf(CMStochasticIterativeScheduler.Name);

    [Fact]
    public void TheDefaultConfigIsDiffusers()
    {
        using var s = new CMStochasticIterativeScheduler();
        G.AssertFullConfig("cm-default", s);
        Assert.Equal(1, s.Order);
        Assert.Equal(80.0, s.InitNoiseSigma);
        Assert.Equal(["generator"], s.StepArguments);
        Assert.True(s.DefinesAddNoise);
        Assert.Equal(0, s.Betas.numel());
    }

    [Theory, MemberData(nameof(Cases))]
    public void TheConstructorsAndSetTimestepsSchedulesMatchDiffusers(string name)
    {
        using var s0 = G.Create(name);
        G.AssertFullConfig(name, s0);
        Assert.Equal(G.Case(name).GetProperty("init_noise_sigma").GetDouble(), s0.InitNoiseSigma);
        AssertSchedule(s0.Timesteps, G.T($"{name}/init/timesteps"), $"{name} init timesteps");
        AssertSchedule(s0.Sigmas!, G.T($"{name}/init/sigmas"), $"{name} init sigmas");
        foreach (var set in G.Case(name).GetProperty("set_timesteps").EnumerateObject())
        {
            int n = int.Parse(set.Name);
            using var s = SchedulerFactory.FromConfig(s0.Config);
            s.SetTimesteps(n);
            AssertSchedule(s.Timesteps, G.T($"{name}/timesteps_N{n}"), $"{name} timesteps_N{n}");
            G.AssertUlps(s.Sigmas!, G.T($"{name}/sigmas_N{n}"), 0, $"{name} sigmas_N{n}");
        }
    }

    [Theory, MemberData(nameof(Cases))]
    public void TheLoopWithTheGeneratorMatchesDiffusers(string name)
    {
        var loop = G.Case(name).GetProperty("loop");
        using var g = new Generator(loop.GetProperty("generator_seed").GetUInt64());
        using var s = G.Create(name);
        G.RunLoop(name, s, g, TimestepUlps);
        if (G.Has(name, "add_noise/noisy"))
        {
            using var noisy = s.AddNoise(G.T("inputs/add_noise_original"), G.T("inputs/add_noise_noise"), G.T($"{name}/add_noise/timesteps"));
            SchedulerGoldenTests.Rel(noisy, G.T($"{name}/add_noise/noisy"), $"{name} add_noise");
        }
    }

    [Theory, MemberData(nameof(Cases))]
    public void TheStepsDrawTheRecordedNoiseInOrder(string name)
    {
        int expected = G.Case(name).GetProperty("loop").GetProperty("noise_draws").GetInt32();
        using var noise = expected > 0 ? G.T($"{name}/loop/noise") : null;
        using var stepOf = expected > 0 ? G.T($"{name}/loop/noise_step_index") : null;
        int draws = 0;
        using var s = G.Create(name);
        var replay = new StepOptions
        {
            VarianceNoise = shape =>
            {
                Assert.True(noise is not null && draws < noise.shape[0], $"{name}: more draws than diffusers made");
                Assert.Equal(stepOf![draws].item<long>(), (long)((CMStochasticIterativeScheduler)s).StepIndex!.Value);   // the step drawing
                return noise![draws++];
            },
        };
        G.RunLoop(name, s, replay, TimestepUlps);
        Assert.Equal(expected, draws);
    }

    [Fact]
    public void BadConfigsAndCallsAreRefusedWithTheirNames()
    {
        var e = Assert.Throws<ConfigException>(() => new CMStochasticIterativeScheduler(new CMStochasticIterativeSchedulerConfig { SigmaData = 0 }));
        Assert.Equal("CMStochasticIterativeScheduler: config key 'sigma_data': sigma_data must be a finite positive number, got 0", e.Message);
        e = Assert.Throws<ConfigException>(() => new CMStochasticIterativeScheduler(new CMStochasticIterativeSchedulerConfig { Rho = double.PositiveInfinity }));
        Assert.Equal("CMStochasticIterativeScheduler: config key 'rho': rho must be a finite positive number, got Infinity", e.Message);
        e = Assert.Throws<ConfigException>(() => new CMStochasticIterativeScheduler(new CMStochasticIterativeSchedulerConfig { SNoise = -1 }));
        Assert.Equal("CMStochasticIterativeScheduler: config key 's_noise': s_noise must be a finite number ≥ 0, got -1", e.Message);
        e = Assert.Throws<ConfigException>(() => new CMStochasticIterativeScheduler(new CMStochasticIterativeSchedulerConfig { NumTrainTimesteps = 1 }));
        Assert.Equal("CMStochasticIterativeScheduler: config key 'num_train_timesteps': num_train_timesteps must be at least 2 (the Karras ramp runs from sigma_max to sigma_min), got 1", e.Message);
        e = Assert.Throws<ConfigException>(() => SchedulerFactory.FromJson("""{"_class_name": "CMStochasticIterativeScheduler", "sigma_min": 90.0}"""));
        Assert.Equal("scheduler config: config key 'sigma_min': sigma_min (90) must be smaller than sigma_max (80)", e.Message);

        using var s = new CMStochasticIterativeScheduler();
        var d = Assert.Throws<DiffusersException>(() => s.SetTimesteps(41));
        Assert.StartsWith("CMStochasticIterativeScheduler: num_inference_steps 41 cannot be larger than num_train_timesteps 40", d.Message);
        d = Assert.Throws<DiffusersException>(() => s.SetTimesteps([0L, 22L]));
        Assert.Equal("CMStochasticIterativeScheduler: custom timesteps must be in descending order; 22 follows 0", d.Message);
        d = Assert.Throws<DiffusersException>(() => s.SetTimesteps([40L, 0L]));
        Assert.Equal("CMStochasticIterativeScheduler: custom timesteps must start before num_train_timesteps 40, got 40", d.Message);
        s.SetTimesteps([22L, 0L]);
        Assert.True(s.CustomTimesteps);
        using var x = torch.zeros(1, 3, 4, 4);
        d = Assert.Throws<DiffusersException>(() => s.Step(x, 22, x));
        Assert.Equal("CMStochasticIterativeScheduler: timestep 22 is not in the scheduler's timesteps", d.Message);
        using var g = new Generator(0);
        foreach (double t in s.TimestepValues) s.Step(x, t, x, g).Dispose();
        d = Assert.Throws<DiffusersException>(() => s.Step(x, s.TimestepValues[^1], x, g));
        Assert.Equal("CMStochasticIterativeScheduler: Step called more times than there are timesteps (2); call SetTimesteps to start a new loop", d.Message);
    }
}
