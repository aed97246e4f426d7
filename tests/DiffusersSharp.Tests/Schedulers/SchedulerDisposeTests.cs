using DiffusersSharp.Loading;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Schedulers;

/// <summary>
/// A scheduler owns the tensors it holds (tables, timesteps, sigmas, a solver's history) and frees every one of them on
/// <see cref="IDisposable.Dispose"/>, in <see cref="SchedulerBase"/> for every class (docs/ARCHITECTURE.md, "Tensor
/// ownership"); a disposed scheduler refuses to be used, naming its class. Counted with TorchSharp's live tensors of this
/// thread, as <c>Models/TensorOwnershipTests</c> does.
/// </summary>
public class SchedulerDisposeTests
{
    private static long Live => DisposeScopeManager.Statistics.ThreadTotalLiveCount;

    /// <summary>Every registered class (its defaults) and every alias (built from tiny-sd's scheduler config).</summary>
    public static IEnumerable<(string Name, Func<SchedulerBase> Create)> EveryClassAndAlias()
    {
        foreach (var cls in SchedulerFactory.KnownClasses)
            yield return (cls, () => SchedulerFactory.FromJson($"{{\"_class_name\": \"{cls}\"}}"));
        var sd = (DiffusersConfig)SchedulerFactory.ReadConfigFile(Golden.Path("tiny-sd"), "scheduler");
        foreach (var alias in SchedulerAliases.Aliases.Keys)
            yield return ("alias " + alias, () => (SchedulerBase)SchedulerAliases.Build(alias, sd));
    }

    [Fact]
    public void EverySchedulerClassAndAliasFreesAllItsTensorsOnDispose()
    {
        var left = new List<string>();
        foreach (var (name, create) in EveryClassAndAlias())
        {
            long before = Live;
            var scheduler = create();
            Run(scheduler, 5);   // the step history too (DPM-Solver, UniPC, DEIS, LMS, PNDM, Heun, KDPM2 keep model outputs or samples)
            Assert.True(Live > before, $"{name}: holds no tensor to free");
            scheduler.Dispose();
            if (Live != before) left.Add($"{name}: {Live - before}");
        }
        Assert.True(left.Count == 0, "tensors left alive after Dispose: " + string.Join("; ", left));
    }

    [Fact]
    public void AfterDisposeEveryUseThrowsObjectDisposedExceptionNamingTheClass()
    {
        foreach (var cls in SchedulerFactory.KnownClasses)
        {
            var scheduler = SchedulerFactory.FromJson($"{{\"_class_name\": \"{cls}\"}}");
            scheduler.SetTimesteps(5);
            using var x = torch.zeros(1, 4, 8, 8);
            using var t = scheduler.Timesteps[0].clone();
            using var ts = scheduler.Timesteps.narrow(0, 0, 1).clone();
            scheduler.Dispose();
            string message = $"{cls} is disposed: its tensors are freed (a pipeline disposes the scheduler it holds when it is disposed); " +
                             $"build another, e.g. {cls}.FromConfig(scheduler.Config)" + Environment.NewLine + $"Object name: '{cls}'.";
            var uses = new (string Use, Action Call)[]
            {
                ("SetTimesteps(int)", () => scheduler.SetTimesteps(5)),
                ("SetTimesteps(timesteps)", () => scheduler.SetTimesteps([3L, 2L, 1L])),
                ("Step(double)", () => scheduler.Step(x, 1.0, x)),
                ("Step(tensor)", () => scheduler.Step(x, t, x)),
                ("AddNoise", () => scheduler.AddNoise(x, x, ts)),
                ("GetVelocity", () => scheduler.GetVelocity(x, x, ts)),
                ("ScaleModelInput(double)", () => scheduler.ScaleModelInput(x, 1.0)),
                ("ScaleModelInput(tensor)", () => scheduler.ScaleModelInput(x, t)),
                ("Timesteps", () => _ = scheduler.Timesteps),
                ("TimestepValues", () => _ = scheduler.TimestepValues),
                ("Sigmas", () => _ = scheduler.Sigmas),
                ("Betas", () => _ = scheduler.Betas),
                ("Alphas", () => _ = scheduler.Alphas),
                ("AlphasCumprod", () => _ = scheduler.AlphasCumprod),
                ("InitNoiseSigma", () => _ = scheduler.InitNoiseSigma),
                ("NonFiniteCause", () => scheduler.NonFiniteCause(1.0)),
            };
            foreach (var (use, call) in uses)
            {
                var e = Assert.Throws<ObjectDisposedException>(call);
                Assert.True(message == e.Message, $"{cls}.{use}: {e.Message}");
                Assert.Equal(cls, e.ObjectName);
            }
        }
    }

    [Fact]
    public void DisposeTwiceDoesNothingAndTheConfigStillBuildsANewScheduler()
    {
        // what `using var old = pipe.Scheduler; pipe.Scheduler = X.FromConfig(old.Config);` relies on
        var scheduler = DPMSolverMultistepScheduler.FromConfig(SchedulerFactory.ReadConfigFile(Golden.Path("tiny-sd"), "scheduler"));
        Run(scheduler, 4);
        long before = Live;
        scheduler.Dispose();
        long after = Live;
        Assert.True(after < before);
        scheduler.Dispose();
        Assert.Equal(after, Live);
        Assert.Equal("DPMSolverMultistepScheduler", scheduler.ClassName);
        Assert.Equal(1000, scheduler.NumTrainTimesteps);
        Assert.Empty(scheduler.StepArguments);   // dpmsolver++: no SDE noise
        using var euler = EulerDiscreteScheduler.FromConfig(scheduler.Config);
        Assert.Equal(0.012, euler.TypedConfig.BetaEnd);
        euler.SetTimesteps(3);
        Assert.Equal(3, euler.NumInferenceSteps);
    }

    [Fact]
    public void AFromConfigCopyOwnsItsOwnTensors()
    {
        foreach (var cls in SchedulerFactory.KnownClasses)
        {
            var original = SchedulerFactory.FromJson($"{{\"_class_name\": \"{cls}\"}}");
            original.SetTimesteps(5);
            var copy = SchedulerFactory.FromConfig((DiffusersConfig)original.Config);
            copy.SetTimesteps(5);
            var copyTensors = new[] { copy.Betas, copy.Alphas, copy.AlphasCumprod, copy.Timesteps, copy.Sigmas };
            original.Dispose();
            foreach (var t in copyTensors)
                Assert.True(t is null || !t.IsInvalid, $"{cls}: disposing the original freed a tensor of its FromConfig copy");
            Run(copy, 5);
            copy.Dispose();
        }
    }

    /// <summary>
    /// A config every class refuses in its own checks, after the base has built betas, alphas, alphas_cumprod and the
    /// empty timesteps (and the base's own refusals, which come after the empty timesteps), with the message it gives.
    /// </summary>
    public static IEnumerable<(string Name, Func<SchedulerBase> Create, string Message)> RefusedConfigs()
    {
        const string spacings = "expected one of \"linspace\", \"leading\", \"trailing\"";
        var refusals = new (string Class, Func<SchedulerConfig> Config, Func<SchedulerConfig, SchedulerBase> Create, string Message)[]
        {
            (DDPMScheduler.Name, () => new DDPMSchedulerConfig { VarianceType = "bogus" }, c => new DDPMScheduler((DDPMSchedulerConfig)c),
                "DDPMScheduler: variance_type \"bogus\" is not supported; expected one of \"fixed_small\", \"fixed_small_log\", \"fixed_large\", \"fixed_large_log\", \"learned\", \"learned_range\""),
            (DDIMScheduler.Name, () => new DDIMSchedulerConfig { TimestepSpacing = "bogus" }, c => new DDIMScheduler((DDIMSchedulerConfig)c),
                "DDIMScheduler: timestep_spacing \"bogus\" is not supported; " + spacings),
            (PNDMScheduler.Name, () => new PNDMSchedulerConfig { PredictionType = "sample" }, c => new PNDMScheduler((PNDMSchedulerConfig)c),
                "PNDMScheduler: prediction_type \"sample\" is not supported; expected one of \"epsilon\", \"v_prediction\""),
            (LCMScheduler.Name, () => new LCMSchedulerConfig { PredictionType = "bogus" }, c => new LCMScheduler((LCMSchedulerConfig)c),
                "LCMScheduler: prediction_type \"bogus\" is not supported; expected one of \"epsilon\", \"sample\", \"v_prediction\""),
            (EulerDiscreteScheduler.Name, () => new EulerDiscreteSchedulerConfig { InterpolationType = "bogus" },
                c => new EulerDiscreteScheduler((EulerDiscreteSchedulerConfig)c),
                "EulerDiscreteScheduler: interpolation_type \"bogus\" is not supported; expected one of \"linear\", \"log_linear\""),
            (EulerAncestralDiscreteScheduler.Name, () => new EulerAncestralDiscreteSchedulerConfig { PredictionType = "sample" },
                c => new EulerAncestralDiscreteScheduler((EulerAncestralDiscreteSchedulerConfig)c),
                "EulerAncestralDiscreteScheduler: prediction_type \"sample\" is not implemented for EulerAncestralDiscreteScheduler (diffusers raises NotImplementedError); use \"epsilon\" or \"v_prediction\""),
            (HeunDiscreteScheduler.Name, () => new HeunDiscreteSchedulerConfig { PredictionType = "bogus" },
                c => new HeunDiscreteScheduler((HeunDiscreteSchedulerConfig)c),
                "HeunDiscreteScheduler: prediction_type \"bogus\" is not supported; expected one of \"epsilon\", \"sample\", \"v_prediction\""),
            (LMSDiscreteScheduler.Name, () => new LMSDiscreteSchedulerConfig { TimestepSpacing = "bogus" },
                c => new LMSDiscreteScheduler((LMSDiscreteSchedulerConfig)c),
                "LMSDiscreteScheduler: timestep_spacing \"bogus\" is not supported; " + spacings),
            (KDPM2DiscreteScheduler.Name, () => new KDPM2DiscreteSchedulerConfig { PredictionType = "sample" },
                c => new KDPM2DiscreteScheduler((KDPM2DiscreteSchedulerConfig)c),
                "KDPM2DiscreteScheduler: prediction_type \"sample\" is not implemented for KDPM2DiscreteScheduler (diffusers raises NotImplementedError); use \"epsilon\" or \"v_prediction\""),
            (KDPM2AncestralDiscreteScheduler.Name, () => new KDPM2AncestralDiscreteSchedulerConfig { TimestepSpacing = "bogus" },
                c => new KDPM2AncestralDiscreteScheduler((KDPM2AncestralDiscreteSchedulerConfig)c),
                "KDPM2AncestralDiscreteScheduler: timestep_spacing \"bogus\" is not supported; choose one of \"linspace\", \"leading\" or \"trailing\""),
            (DPMSolverMultistepScheduler.Name, () => new DPMSolverMultistepSchedulerConfig { AlgorithmType = "bogus" },
                c => new DPMSolverMultistepScheduler((DPMSolverMultistepSchedulerConfig)c),
                "DPMSolverMultistepScheduler: algorithm_type \"bogus\" is not implemented; expected one of \"dpmsolver\", \"dpmsolver++\", \"sde-dpmsolver\", \"sde-dpmsolver++\" (or \"deis\", read as \"dpmsolver++\")"),
            (DPMSolverSinglestepScheduler.Name, () => new DPMSolverSinglestepSchedulerConfig { SolverOrder = 4 },
                c => new DPMSolverSinglestepScheduler((DPMSolverSinglestepSchedulerConfig)c),
                "DPMSolverSinglestepScheduler: solver_order 4 is not supported; singlestep DPM-Solver has orders 1, 2 and 3"),
            (DEISMultistepScheduler.Name, () => new DEISMultistepSchedulerConfig { SolverType = "bogus" },
                c => new DEISMultistepScheduler((DEISMultistepSchedulerConfig)c),
                "DEISMultistepScheduler: solver_type \"bogus\" is not implemented; expected \"logrho\" (\"midpoint\", \"heun\", \"bh1\", \"bh2\" are read as \"logrho\")"),
            (IPNDMScheduler.Name, () => new IPNDMSchedulerConfig { TrainedBetas = [0.5] }, c => new IPNDMScheduler((IPNDMSchedulerConfig)c),
                "IPNDMScheduler: config key 'trained_betas': trained_betas needs at least 2 values (the betas of the steps and the one after the last), got 1"),
            (DDIMInverseScheduler.Name, () => new DDIMInverseSchedulerConfig { TimestepSpacing = "linspace" }, c => new DDIMInverseScheduler((DDIMInverseSchedulerConfig)c),
                "DDIMInverseScheduler: timestep_spacing \"linspace\" is not supported; expected one of \"leading\", \"trailing\""),
            (DPMSolverMultistepInverseScheduler.Name, () => new DPMSolverMultistepInverseSchedulerConfig { SolverOrder = 0 },
                c => new DPMSolverMultistepInverseScheduler((DPMSolverMultistepInverseSchedulerConfig)c),
                "DPMSolverMultistepInverseScheduler: solver_order 0 is not supported; DPM-Solver has orders 1, 2 and 3"),
            (CMStochasticIterativeScheduler.Name, () => new CMStochasticIterativeSchedulerConfig { SigmaData = 0 },
                c => new CMStochasticIterativeScheduler((CMStochasticIterativeSchedulerConfig)c),
                "CMStochasticIterativeScheduler: config key 'sigma_data': sigma_data must be a finite positive number, got 0"),
            (UniPCMultistepScheduler.Name, () => new UniPCMultistepSchedulerConfig { SolverOrder = 0 },
                c => new UniPCMultistepScheduler((UniPCMultistepSchedulerConfig)c),
                "UniPCMultistepScheduler: solver_order must be at least 1, got 0"),
        };
        Assert.Equal(SchedulerFactory.KnownClasses.Order(), refusals.Select(r => r.Class).Order());   // every class
        foreach (var (cls, config, create, message) in refusals)
            yield return (cls, () => create(config()), message);
        // the base's refusals: the config check and the beta schedule, after the empty timesteps exist
        yield return ("DDPMScheduler, beta_schedule", () => new DDPMScheduler(new DDPMSchedulerConfig { BetaSchedule = "bogus" }),
            "DDPMScheduler: beta_schedule \"bogus\" is not implemented for DDPMScheduler; expected one of \"linear\", \"scaled_linear\", \"squaredcos_cap_v2\", \"sigmoid\" (or trained_betas)");
        yield return ("EulerDiscreteScheduler, beta_start NaN", () => new EulerDiscreteScheduler(new EulerDiscreteSchedulerConfig { BetaStart = double.NaN }),
            "EulerDiscreteScheduler: config key 'beta_start': beta_start must be a number, got NaN");
        // every alias, from a config its class refuses
        foreach (var (alias, (cls, _)) in SchedulerAliases.Aliases)
        {
            var (_, config, _, message) = refusals.Single(r => r.Class == cls);
            yield return ("alias " + alias, () => (SchedulerBase)SchedulerAliases.Build(alias, (DiffusersConfig)config()), message);
        }
    }

    [Fact]
    public void AConstructorThatRefusesItsConfigFreesTheTensorsItHadBuilt()
    {
        foreach (var cls in SchedulerFactory.KnownClasses)   // the process's first-use set-up is not the scheduler's
            SchedulerFactory.FromJson($"{{\"_class_name\": \"{cls}\"}}").Dispose();
        var left = new List<string>();
        foreach (var (name, create, message) in RefusedConfigs())
        {
            long before = Live;
            var e = Assert.ThrowsAny<DiffusersException>(() => create());
            Assert.True(message == e.Message, $"{name}: {e.Message}");
            if (Live != before) left.Add($"{name}: {Live - before}");
        }
        Assert.True(left.Count == 0, "tensors left to the finalizer by a refused construction: " + string.Join("; ", left));
    }

    /// <summary>One run of <paramref name="steps"/> steps (and an add_noise) on a small random sample, its temporaries freed.</summary>
    private static void Run(SchedulerBase scheduler, int steps)
    {
        using var scope = torch.NewDisposeScope();
        using var generator = new Generator(0);
        scheduler.SetTimesteps(steps);
        var x = torch.randn([1, 4, 8, 8], generator: generator);
        if (scheduler.DefinesAddNoise)
            x = scheduler.AddNoise(x, torch.randn([1, 4, 8, 8], generator: generator), scheduler.Timesteps.narrow(0, 0, 1)) * 0.5;
        foreach (double t in scheduler.TimestepValues)
        {
            var input = scheduler.ScaleModelInput(x, t);
            var eps = torch.randn([1, 4, 8, 8], generator: generator) * 0.1 + input * 0.01;
            x = scheduler.Step(eps, t, x, generator).PrevSample;
        }
    }
}
