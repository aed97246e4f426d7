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

    /// <summary>One run of <paramref name="steps"/> steps (and an add_noise) on a small random sample, its temporaries freed.</summary>
    private static void Run(SchedulerBase scheduler, int steps)
    {
        using var scope = torch.NewDisposeScope();
        using var generator = new Generator(0);
        scheduler.SetTimesteps(steps);
        var x = torch.randn([1, 4, 8, 8], generator: generator);
        x = scheduler.AddNoise(x, torch.randn([1, 4, 8, 8], generator: generator), scheduler.Timesteps.narrow(0, 0, 1)) * 0.5;
        foreach (double t in scheduler.TimestepValues)
        {
            var input = scheduler.ScaleModelInput(x, t);
            var eps = torch.randn([1, 4, 8, 8], generator: generator) * 0.1 + input * 0.01;
            x = scheduler.Step(eps, t, x, generator).PrevSample;
        }
    }
}
