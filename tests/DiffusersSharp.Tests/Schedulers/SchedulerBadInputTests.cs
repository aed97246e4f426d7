using DiffusersSharp.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Schedulers;

/// <summary>
/// Bad arguments to the scheduler API of every registered class (<c>Step</c>, <c>AddNoise</c>, <c>GetVelocity</c>) and
/// scheduler configs diffusers 0.25.1 builds without a word: each is a <see cref="DiffusersException"/> naming the
/// argument or key, where diffusers broadcasts silently, fails inside torch, or steps on with a value it ignores.
/// </summary>
public class SchedulerBadInputTests
{
    private static SchedulerBase Make(string cls, string keys = "") => SchedulerFactory.FromJson($"{{\"_class_name\": \"{cls}\"{keys}}}");

    /// <summary>A scheduler of <paramref name="cls"/> set to 5 steps (the caller's to dispose), its first timestep and a [1, 4, 8, 8] sample.</summary>
    private static (SchedulerBase Scheduler, double T0, Tensor Sample) Ready(string cls)
    {
        var s = Make(cls);
        s.SetTimesteps(5);
        return (s, s.TimestepValues[0], torch.linspace(-1, 1, 256).reshape(1, 4, 8, 8));
    }

    [Fact]
    public void StepRefusesAModelOutputOfAnotherShapeThanTheSample()
    {
        foreach (var cls in SchedulerFactory.KnownClasses)
        {
            var (s, t0, x) = Ready(cls);
            using var held = s;
            // another batch: torch broadcast it, and the step returned two samples for one
            var e = Assert.Throws<DiffusersException>(() => s.Step(torch.zeros(2, 4, 8, 8), t0, x));
            Assert.Equal($"{cls}: model_output has shape [2, 4, 8, 8] but sample has shape [1, 4, 8, 8]; Step needs the model's prediction for this sample, of its shape", e.Message);
            // another size: torch's "The size of tensor a (8) must match the size of tensor b (4)"
            e = Assert.Throws<DiffusersException>(() => s.Step(torch.zeros(1, 4, 4, 4), t0, x));
            Assert.Equal($"{cls}: model_output has shape [1, 4, 4, 4] but sample has shape [1, 4, 8, 8]; Step needs the model's prediction for this sample, of its shape", e.Message);
        }
    }

    // an empty list read as "no generator" drew from torch's global generator, unseen (diffusers: IndexError)
    [Theory]
    [InlineData("EulerAncestralDiscreteScheduler")]
    [InlineData("DDPMScheduler")]
    [InlineData("LCMScheduler")]
    public void AnEmptyListOfGeneratorsIsRefused(string cls)
    {
        var (s, t0, x) = Ready(cls);
        using var held = s;
        var e = Assert.Throws<DiffusersException>(() => s.Step(torch.zeros(1, 4, 8, 8), t0, x, new StepOptions { Generators = [] }));
        Assert.Equal("randn_tensor: the list of generators is empty; pass null for torch's global generator, or one generator (or one per sample)", e.Message);
    }

    [Fact]
    public void AddNoiseAndGetVelocityRefuseNoiseAndTimestepsThatDoNotFitTheSamples()
    {
        foreach (var cls in SchedulerFactory.KnownClasses)
        {
            var (s, t0, x) = Ready(cls);
            using var held = s;
            if (!s.DefinesAddNoise) continue;   // refused whatever the arguments (IPNDMSchedulerTests)
            using var t = torch.tensor(new[] { t0 }, ScalarType.Float64).to(s.Timesteps.dtype);
            using var twice = torch.cat([t, t]);
            // noise of a larger batch, or two timesteps for one sample, grew the batch without a word
            var e = Assert.Throws<DiffusersException>(() => s.AddNoise(x, torch.zeros(2, 4, 8, 8), t));
            Assert.Equal($"{cls}: add_noise: noise has shape [2, 4, 8, 8] but original_samples has shape [1, 4, 8, 8]; they must match", e.Message);
            e = Assert.Throws<DiffusersException>(() => s.AddNoise(x, torch.zeros_like(x), twice));
            Assert.Equal($"{cls}: add_noise: timesteps hold 2 values for original_samples of shape [1, 4, 8, 8]; pass one timestep or one per sample (1)", e.Message);
            if (cls is DDPMScheduler.Name or DDIMScheduler.Name or LCMScheduler.Name)
            {
                using var three = torch.tensor(new long[] { 10, 20, 30 });
                using var pair = torch.zeros(2, 4, 8, 8);
                e = Assert.Throws<DiffusersException>(() => s.GetVelocity(pair, pair, three));
                Assert.Equal($"{cls}: get_velocity: timesteps hold 3 values for sample of shape [2, 4, 8, 8]; pass one timestep or one per sample (2)", e.Message);
            }
        }
    }

    [Fact]
    public void DdpmStepsASampleWithoutAChannelDimensionUnlessItsVarianceIsLearned()
    {
        using var ddpm = new DDPMScheduler();
        ddpm.SetTimesteps(10);
        using var g = new Generator(0);
        // read shape[1] first, whatever the variance type: an IndexOutOfRangeException for a 0-dim or 1-dim sample
        using var scalar = torch.tensor(0.5f);
        using var stepped = ddpm.Step(scalar, 0, scalar, g).PrevSample;
        Assert.Empty(stepped.shape);
        using var learned = new DDPMScheduler(new DDPMSchedulerConfig { VarianceType = "learned_range" });
        learned.SetTimesteps(10);
        using var row = torch.zeros(4);
        var e = Assert.Throws<DiffusersException>(() => learned.Step(row, 0, row));
        Assert.Equal("DDPMScheduler: variance_type \"learned_range\" needs a model output with twice the sample's channels (mean and variance, dimension 1), " +
                     "got model_output of shape [4] for a sample of shape [4]", e.Message);
    }

    [Fact]
    public void MultistepSolversRefuseToAddNoiseAtATimestepNotInTheSchedule()
    {
        foreach (var cls in new[] { DPMSolverMultistepScheduler.Name, DPMSolverSinglestepScheduler.Name, UniPCMultistepScheduler.Name, DEISMultistepScheduler.Name })
        {
            var (s, _, x) = Ready(cls);
            using var held = s;
            // diffusers takes the schedule's last sigma for a timestep it does not hold: x noised to another level
            using var t = torch.tensor(new long[] { 7 });
            var e = Assert.Throws<DiffusersException>(() => s.AddNoise(x, torch.zeros_like(x), t));
            Assert.Equal($"{cls}: add_noise timestep 7 is not in the scheduler's timesteps [999, 799, 599, 400, 200]", e.Message);
        }
    }

    [Fact]
    public void SigmaSchedulersAndLcmRefuseATimestepNotInTheScheduleAfterTheFirstStep()
    {
        string[] classes = [EulerDiscreteScheduler.Name, EulerAncestralDiscreteScheduler.Name, HeunDiscreteScheduler.Name, LMSDiscreteScheduler.Name,
            KDPM2DiscreteScheduler.Name, KDPM2AncestralDiscreteScheduler.Name, LCMScheduler.Name];
        foreach (var cls in classes)
        {
            var (s, t0, x) = Ready(cls);
            using var held = s;
            using var g = new Generator(0);
            using var first = s.Step(x * 0.1, t0, x, g).PrevSample;
            // diffusers reads the step index only, once set: the timestep given is ignored
            var e = Assert.Throws<DiffusersException>(() => s.Step(first * 0.1, 3, first, g));
            Assert.Equal($"{cls}: timestep 3 is not in the scheduler's timesteps", e.Message);
            if (cls != LCMScheduler.Name)
                Assert.Equal($"{cls}: timestep 3 is not in the scheduler's timesteps",
                    Assert.Throws<DiffusersException>(() => s.ScaleModelInput(first, 3)).Message);
        }
    }

    [Fact]
    public void LcmRefusesMoreStepsThanTheSchedule()
    {
        var (s, _, x) = Ready(LCMScheduler.Name);
        using var held = s;
        using var g = new Generator(0);
        var ts = s.TimestepValues;
        foreach (double t in ts) x = s.Step(x * 0.1, t, x, g).PrevSample;
        // diffusers' step past the end keeps t as the previous timestep and noises the sample again
        var e = Assert.Throws<DiffusersException>(() => s.Step(x * 0.1, ts[^1], x, g));
        Assert.Equal("LCMScheduler: Step called more times than there are timesteps (5); call SetTimesteps to start a new loop", e.Message);
    }

    [Fact]
    public void LinearBetaSchedulesRefuseSwappedOrZeroBounds()
    {
        // every class with a training beta schedule (IPNDM builds its own, consistency models have none)
        foreach (var cls in SchedulerFactory.KnownClasses.Where(c => SchedulerConfigs.KnownKeys(SchedulerFactory.ConfigType(c)).Contains("beta_start")))
        {
            var e = Assert.Throws<ConfigException>(() => Make(cls, ", \"beta_schedule\": \"linear\", \"beta_start\": 0.02, \"beta_end\": 0.0001"));
            Assert.Equal("scheduler config: config key 'beta_start': beta_start (0.02) must not be larger than beta_end (0.0001): the linear schedule runs from beta_start up to beta_end", e.Message);
            Assert.Equal("beta_start", e.Key);
            // every beta 0: alphas_cumprod 1 everywhere, and the steps divide by 1 - alphas_cumprod (NaN samples)
            e = Assert.Throws<ConfigException>(() => Make(cls, ", \"beta_schedule\": \"scaled_linear\", \"beta_start\": 0.0, \"beta_end\": 0.0"));
            Assert.Equal("scheduler config: config key 'beta_end': beta_end must be larger than 0: with beta_start and beta_end 0 the scaled_linear schedule has every beta 0, " +
                         "no noise is ever added and the steps divide by 1 - alphas_cumprod = 0", e.Message);
        }
        // the cosine schedule ignores both bounds
        using var cosine = Make(DDIMScheduler.Name, ", \"beta_schedule\": \"squaredcos_cap_v2\", \"beta_start\": 0.02, \"beta_end\": 0.0001");
        cosine.SetTimesteps(5);
    }

    [Fact]
    public void SigmaToTimestepConversionsNeedTwoTrainingTimesteps()
    {
        const string message = "num_train_timesteps 1: turning a sigma back into a timestep (Karras or Lu sigmas, KDPM2's interpolated timesteps) " +
                               "interpolates between two training sigmas; use num_train_timesteps of at least 2";
        // an IndexOutOfRangeException in _sigma_to_t (diffusers' index -1 wraps round to a garbage timestep)
        foreach (var (cls, keys) in new[] { (KDPM2DiscreteScheduler.Name, ""), (EulerDiscreteScheduler.Name, ", \"use_karras_sigmas\": true"),
                     (DPMSolverMultistepScheduler.Name, ", \"use_karras_sigmas\": true") })
        {
            var s = new Func<SchedulerBase>(() => Make(cls, ", \"num_train_timesteps\": 1" + keys));
            var e = Assert.Throws<ConfigException>(() =>
            {
                using var made = s();
                made.SetTimesteps(1);
            });
            Assert.EndsWith(message, e.Message);
            Assert.Equal("num_train_timesteps", e.Key);
        }
    }
}
