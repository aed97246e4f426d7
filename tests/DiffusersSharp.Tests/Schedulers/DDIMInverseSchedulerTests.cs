using DiffusersSharp.Schedulers;
using TorchSharp;
using static TorchSharp.torch;
using G = DiffusersSharp.Tests.Schedulers.Schedulers2Golden;

namespace DiffusersSharp.Tests.Schedulers;

/// <summary>DDIMInverseScheduler against diffusers 0.25.1 (golden schedulers2/ddiminv-*), and its refusals.</summary>
public class DDIMInverseSchedulerTests
{
    public static TheoryData<string> Cases => G.CasesOf(DDIMInverseScheduler.Name);

    [Fact]
    public void TheDefaultConfigIsDiffusers()
    {
        using var defaults = new DDIMInverseScheduler();
        using var sd = G.Create("ddiminv-sd");
        G.AssertFullConfig("ddiminv-sd", sd);
        var ours = SchedulerConfigs.ToJsonObject(defaults.Config);
        // ddiminv-linear-v-trailing-clip sets only prediction_type, timestep_spacing and clip_sample_range
        using var other = G.Create("ddiminv-linear-v-trailing-clip");
        G.AssertFullConfig("ddiminv-linear-v-trailing-clip", other);
        var theirs = SchedulerConfigs.ToJsonObject(other.Config);
        foreach (var key in new[] { "num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas", "clip_sample", "set_alpha_to_one", "steps_offset", "rescale_betas_zero_snr" })
            Assert.Equal(theirs[key]?.ToJsonString(), ours[key]?.ToJsonString());
        Assert.Equal(1, defaults.Order);
        Assert.Equal(1.0, defaults.InitNoiseSigma);
        Assert.Empty(defaults.StepArguments);
        Assert.False(defaults.DefinesAddNoise);
    }

    [Theory, MemberData(nameof(Cases))]
    public void TablesAndTimestepsAreBitExact(string name)
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
            Assert.Null(s.Sigmas);
        }
    }

    [Theory, MemberData(nameof(Cases))]
    public void TheLoopMatchesDiffusers(string name)
    {
        using var s = G.Create(name);
        G.RunLoop(name, s, StepOptions.Default, timestepUlps: 0);
    }

    [Fact]
    public void BadConfigsAndCallsAreRefusedWithTheirNames()
    {
        var e = Assert.Throws<ConfigException>(() => new DDIMInverseScheduler(new DDIMInverseSchedulerConfig { TimestepSpacing = "linspace" }));
        Assert.Equal("DDIMInverseScheduler: timestep_spacing \"linspace\" is not supported; expected one of \"leading\", \"trailing\"", e.Message);
        Assert.Equal("timestep_spacing", e.Key);
        e = Assert.Throws<ConfigException>(() => new DDIMInverseScheduler(new DDIMInverseSchedulerConfig { PredictionType = "flow" }));
        Assert.Equal("DDIMInverseScheduler: prediction_type \"flow\" is not supported; expected one of \"epsilon\", \"sample\", \"v_prediction\"", e.Message);
        e = Assert.Throws<ConfigException>(() => SchedulerFactory.FromJson("""{"_class_name": "DDIMInverseScheduler", "set_alpha_to_zero": 0}"""));
        Assert.Equal("scheduler config: DDIMInverseScheduler: config key 'set_alpha_to_zero': set_alpha_to_zero must be true or false, got 0", e.Message);

        using var s = new DDIMInverseScheduler();
        using var x = torch.zeros(1, 4, 8, 8);
        var d = Assert.Throws<DiffusersException>(() => s.Step(x, 0, x));
        Assert.Equal("DDIMInverseScheduler: the number of inference steps is not set; call SetTimesteps before Step", d.Message);
        d = Assert.Throws<DiffusersException>(() => s.SetTimesteps(1001));
        Assert.StartsWith("DDIMInverseScheduler: num_inference_steps 1001 cannot be larger than num_train_timesteps 1000", d.Message);
        s.SetTimesteps(10);
        Assert.Equal(new long[] { 0, 100, 200, 300, 400, 500, 600, 700, 800, 900 }, s.Timesteps.data<long>().ToArray());
        d = Assert.Throws<DiffusersException>(() => s.Step(x, 1000, x));
        Assert.Equal("DDIMInverseScheduler: timestep 1000 is not an integer timestep in [0, 1000)", d.Message);
        d = Assert.Throws<DiffusersException>(() => s.AddNoise(x, x, s.Timesteps.narrow(0, 0, 1)));
        Assert.Equal("DDIMInverseScheduler does not define add_noise (diffusers' DDIMInverseScheduler has none): it runs a clean sample towards noise itself; use DDIMScheduler to noise a sample", d.Message);
        // "trailing" at 61 of 1000 steps rounds its first timestep to -1
        using var trailing = new DDIMInverseScheduler(new DDIMInverseSchedulerConfig { TimestepSpacing = "trailing" });
        d = Assert.Throws<DiffusersException>(() => trailing.SetTimesteps(61));
        Assert.StartsWith("DDIMInverseScheduler: timestep_spacing \"trailing\" with num_inference_steps 61 gives timestep -1, outside [0, 1000)", d.Message);
    }

    [Fact]
    public void TheDeprecatedSetAlphaToZeroReplacesSetAlphaToOneAsInDiffusers()
    {
        using var plain = SchedulerFactory.FromJson("""{"_class_name": "DDIMInverseScheduler"}""");
        using var zero = SchedulerFactory.FromJson("""{"_class_name": "DDIMInverseScheduler", "set_alpha_to_zero": false}""");
        Assert.Equal(1.0, ((DDIMInverseScheduler)plain).InitialAlphaCumprod);
        Assert.Equal(plain.AlphasCumprod[0].item<float>(), (float)((DDIMInverseScheduler)zero).InitialAlphaCumprod);
    }

    [Fact]
    public void ASamplePredictionFromAlphaOneIsNotFiniteAndTheCauseIsNamed()
    {
        // diffusers: the first step's epsilon divides by sqrt(1 - 1) (golden make.py notes it)
        using var s = new DDIMInverseScheduler(new DDIMInverseSchedulerConfig { PredictionType = "sample", ClipSample = false });
        s.SetTimesteps(10);
        using var x = torch.linspace(-1, 1, 256).reshape(1, 4, 8, 8);
        using var output = s.Step(x * 0.5, 0, x);
        Assert.False(output.PrevSample.isfinite().all().item<bool>());
        Assert.Equal("the step to timestep 0 starts from alpha_cumprod 1 (set_alpha_to_one), and a \"sample\" prediction's epsilon, " +
                     "(x - sqrt(alpha_cumprod) * x0) / sqrt(1 - alpha_cumprod), divides by 0 there, as in diffusers: set set_alpha_to_one false",
                     s.NonFiniteCause(0));
        Assert.Null(s.NonFiniteCause(100));
        using var fixedOne = new DDIMInverseScheduler(new DDIMInverseSchedulerConfig { PredictionType = "sample", ClipSample = false, SetAlphaToOne = false });
        fixedOne.SetTimesteps(10);
        using var ok = fixedOne.Step(x * 0.5, 0, x);
        Assert.True(ok.PrevSample.isfinite().all().item<bool>());
        Assert.Null(fixedOne.NonFiniteCause(0));
    }
}
