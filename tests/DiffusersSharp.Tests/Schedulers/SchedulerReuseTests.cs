using DiffusersSharp.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Schedulers;

/// <summary>
/// A scheduler reused for many runs (as <c>GenerationService</c> and the server reuse one per kind) keeps no tensors from
/// earlier runs: the timesteps and sigma tables <c>SetTimesteps</c> rebuilds replace the old ones, which are disposed at
/// once (<see cref="SchedulerBase"/>'s ownership rule) rather than left for the GC to finalize.
/// </summary>
public class SchedulerReuseTests
{
    [Fact]
    public void SetTimestepsDisposesTheTablesItReplacesInEveryScheduler()
    {
        foreach (var cls in SchedulerFactory.KnownClasses)
        {
            using var scheduler = SchedulerFactory.FromJson($"{{\"_class_name\": \"{cls}\"}}");
            Run(scheduler, 5);
            var oldTimesteps = scheduler.Timesteps;
            var oldSigmas = scheduler.Sigmas;
            Run(scheduler, 6);
            Assert.True(oldTimesteps.IsInvalid, $"{cls}: the previous run's timesteps were not disposed by SetTimesteps");
            Assert.True(oldSigmas is null || oldSigmas.IsInvalid, $"{cls}: the previous run's sigmas were not disposed by SetTimesteps");
            Assert.False(scheduler.Timesteps.IsInvalid, $"{cls}: the current timesteps were disposed");
            Assert.Equal(6, scheduler.NumInferenceSteps);
        }
    }

    /// <summary>One run of <paramref name="steps"/> steps on a small random sample.</summary>
    private static void Run(SchedulerBase scheduler, int steps)
    {
        using var generator = new Generator(0);
        scheduler.SetTimesteps(steps);
        using var scope = torch.NewDisposeScope();
        var x = torch.randn([1, 4, 8, 8], generator: generator);
        foreach (double t in scheduler.TimestepValues)
        {
            var input = scheduler.ScaleModelInput(x, t);
            var eps = torch.randn([1, 4, 8, 8], generator: generator) * 0.1 + input * 0.01;
            x = scheduler.Step(eps, t, x, generator).PrevSample;
        }
    }
}
