using DiffusersSharp.Loading;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.ScopeAudit;

/// <summary>
/// Every scheduler of <see cref="SchedulerAliases"/> builds, sets its timesteps (by count and, where it takes them,
/// custom ones), scales the model input, steps and adds noise with no dispose scope open and leaves no tensor made
/// outside a scope (docs/ARCHITECTURE.md, "Tensor ownership"; <see cref="Support.ScopeAudit"/>).
/// </summary>
public class SchedulerScopeAuditTests
{
    public static TheoryData<string> Aliases() => new(SchedulerAliases.Aliases.Keys.Order(StringComparer.Ordinal));

    /// <summary>The registered classes no alias names (built by class name, as <c>--scheduler IPNDMScheduler</c> builds them).</summary>
    public static TheoryData<string> ClassesWithoutAnAlias() =>
        new(SchedulerFactory.KnownClasses.Where(c => !SchedulerAliases.Aliases.Values.Any(a => a.ClassName == c)));

    [Theory]
    [MemberData(nameof(Aliases))]
    [MemberData(nameof(ClassesWithoutAnAlias))]
    public void EverySchedulerRunsItsTensorWorkInADisposeScope(string alias)
    {
        var config = (DiffusersConfig)SchedulerFactory.ReadConfigFile(Golden.Path("tiny-sd"), "scheduler");
        var audit = new Support.ScopeAudit();
        var scheduler = audit.Call("SchedulerAliases.Build", () => SchedulerAliases.Build(alias, config));
        audit.Call("SchedulerFactory.FromPretrained", () => SchedulerFactory.FromPretrained(Golden.Path("tiny-sd"), "scheduler"));
        try
        {
            audit.Call("SetTimesteps(custom)", () => scheduler.SetTimesteps([999, 500, 1]));
        }
        catch (DiffusersException e) when (e.Message.Contains("does not accept custom timesteps", StringComparison.Ordinal))
        {
        }
        audit.Call("SetTimesteps(10)", () => scheduler.SetTimesteps(10));
        var g = new Generator(0);
        var sample = torch.randn([1, 4, 8, 8], generator: g) * scheduler.InitNoiseSigma;
        double[] timesteps = ((SchedulerBase)scheduler).TimestepValues;
        // img2img's order: noise added at the first timestep, before any step
        var original = torch.randn([2, 4, 8, 8], generator: g);
        var noise = torch.randn([2, 4, 8, 8], generator: g);
        var first = torch.full([2], timesteps[0], scheduler.Timesteps.dtype);
        if (((SchedulerBase)scheduler).DefinesAddNoise)
            audit.Call("AddNoise", () => scheduler.AddNoise(original, noise, first));
        for (int i = 0; i < 4; i++)
        {
            double t = timesteps[i];
            var scaled = audit.Call($"ScaleModelInput (step {i})", () => scheduler.ScaleModelInput(sample, t));
            var modelOutput = scaled * 0.5 - 0.1;
            using var output = audit.Call($"Step (step {i})", () => scheduler.Step(modelOutput, t, sample, g));
            sample = output.PrevSample;
            Assert.True(sample.isfinite().all().item<bool>(), $"step {i}");
        }
        audit.AssertAllScoped();
    }
}
