using DiffusersSharp.Schedulers;
using TorchSharp;
using static TorchSharp.torch;
using G = DiffusersSharp.Tests.Schedulers.Schedulers2Golden;

namespace DiffusersSharp.Tests.Schedulers;

/// <summary>IPNDMScheduler against diffusers 0.25.1 (golden schedulers2/ipndm-*), and its refusals.</summary>
public class IPNDMSchedulerTests
{
    /// <summary>IPNDM's betas, alphas and timesteps are bit-exact (torch 1.13's sin and atan2 ported: ExactTrig32).</summary>
    private const int ScheduleUlps = 0;

    public static TheoryData<string> Cases => G.CasesOf(IPNDMScheduler.Name);

    [Fact]
    public void TheDefaultConfigIsDiffusers()
    {
        using var s = new IPNDMScheduler();
        G.AssertFullConfig("ipndm-default", s);
        Assert.Equal(1, s.Order);
        Assert.Equal(1.0, s.InitNoiseSigma);
        Assert.Empty(s.StepArguments);
    }

    [Theory, MemberData(nameof(Cases))]
    public void TheConstructorSetsTheScheduleOfNumTrainTimestepsAsDiffusersDoes(string name)
    {
        using var s = G.Create(name);
        G.AssertFullConfig(name, s);
        G.AssertUlps(s.Timesteps, G.T($"{name}/init/timesteps"), ScheduleUlps, $"{name} init timesteps");
        Assert.Equal(s.NumTrainTimesteps, s.NumInferenceSteps);
    }

    [Theory, MemberData(nameof(Cases))]
    public void TimestepsBetasAndAlphasMatchDiffusersForEveryStepCount(string name)
    {
        foreach (var set in G.Case(name).GetProperty("set_timesteps").EnumerateObject())
        {
            int n = int.Parse(set.Name);
            using var s = G.Create(name);
            s.SetTimesteps(n);
            Assert.Equal(set.Value.GetProperty("num_timesteps").GetInt32(), (int)s.Timesteps.shape[0]);
            G.AssertUlps(s.Timesteps, G.T($"{name}/timesteps_N{n}"), ScheduleUlps, $"{name} timesteps_N{n}");
            G.AssertUlps(s.Betas, G.T($"{name}/betas_N{n}"), ScheduleUlps, $"{name} betas_N{n}");
            G.AssertUlps(s.Alphas, G.T($"{name}/alphas_N{n}"), ScheduleUlps, $"{name} alphas_N{n}");
            Assert.Equal(0, s.AlphasCumprod.numel());
            Assert.Null(s.Sigmas);
        }
    }

    [Theory, MemberData(nameof(Cases))]
    public void TheLoopMatchesDiffusers(string name)
    {
        using var s = G.Create(name);
        int steps = G.RunLoop(name, s, StepOptions.Default, ScheduleUlps);
        Assert.Equal(steps, ((IPNDMScheduler)s).StepIndex);
    }

    [Fact]
    public void TheLoopRunsAgainAfterSetTimesteps()
    {
        using var s = G.Create("ipndm-default");
        G.RunLoop("ipndm-default", s, StepOptions.Default, ScheduleUlps);
        G.RunLoop("ipndm-default", s, StepOptions.Default, ScheduleUlps);   // the multistep history starts again
    }

    [Fact]
    public void BadConfigsAndCallsAreRefusedWithTheirNames()
    {
        var e = Assert.Throws<ConfigException>(() => new IPNDMScheduler(new IPNDMSchedulerConfig { TrainedBetas = [0.5] }));
        Assert.Equal("IPNDMScheduler: config key 'trained_betas': trained_betas needs at least 2 values (the betas of the steps and the one after the last), got 1", e.Message);
        Assert.Equal("trained_betas", e.Key);
        e = Assert.Throws<ConfigException>(() => new IPNDMScheduler(new IPNDMSchedulerConfig { TrainedBetas = [0.5, 1.5, 0] }));
        Assert.Equal("IPNDMScheduler: config key 'trained_betas': trained_betas[1] must be a number in [0, 1] (1 - beta is the fraction of the signal kept), got 1.5", e.Message);
        e = Assert.Throws<ConfigException>(() => SchedulerFactory.FromJson("""{"_class_name": "IPNDMScheduler", "num_train_timesteps": 0}"""));
        Assert.Equal("scheduler config: config key 'num_train_timesteps': num_train_timesteps must be between 1 and 100000, got 0", e.Message);

        using var s = new IPNDMScheduler();
        var d = Assert.Throws<DiffusersException>(() => s.SetTimesteps(0));
        Assert.Equal("IPNDMScheduler: num_inference_steps must be at least 1, got 0", d.Message);
        s.SetTimesteps(4);
        using var x = torch.zeros(1, 4, 8, 8);
        d = Assert.Throws<DiffusersException>(() => s.Step(x, 0.5, x));
        Assert.Equal("IPNDMScheduler: timestep 0.5 is not in the scheduler's timesteps", d.Message);
        d = Assert.Throws<DiffusersException>(() => s.AddNoise(x, x, s.Timesteps.narrow(0, 0, 1)));
        Assert.Equal("IPNDMScheduler does not define add_noise (diffusers' IPNDMScheduler has none), so it cannot start from a noised image (img2img, inpainting); use another scheduler there", d.Message);
        foreach (double t in s.TimestepValues) s.Step(x, t, x).Dispose();
        d = Assert.Throws<DiffusersException>(() => s.Step(x, s.TimestepValues[^1], x));
        Assert.Equal("IPNDMScheduler: Step called more times than there are timesteps (4); call SetTimesteps to start a new loop", d.Message);
    }

    [Fact]
    public void TrainedBetasSetTheNumberOfTimestepsWhateverTheStepCount()
    {
        using var s = new IPNDMScheduler(new IPNDMSchedulerConfig { TrainedBetas = [0.9, 0.5, 0.0] });
        s.SetTimesteps(7);
        Assert.Equal(2, s.Timesteps.shape[0]);
        Assert.Equal(7, s.NumInferenceSteps);
        Assert.Equal(ScalarType.Float32, s.Timesteps.dtype);
    }
}
