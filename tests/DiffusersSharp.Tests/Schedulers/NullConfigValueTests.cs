using DiffusersSharp.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Schedulers;

/// <summary>
/// Config keys that diffusers 0.25.1 types <c>Optional</c> take JSON null as it does: a DPM-Solver config's
/// <c>variance_type: null</c> switched to DDPM steps as fixed_small; <c>use_karras_sigmas: null</c> (and Heun's
/// <c>clip_sample: null</c>) is off.
/// </summary>
public class NullConfigValueTests
{
    [Fact]
    public void ADpmSolverConfigSwitchedToDdpmStepsAsFixedSmall()
    {
        using var dpm = new DPMSolverMultistepScheduler(new DPMSolverMultistepSchedulerConfig());
        Assert.Null(dpm.TypedConfig.VarianceType);
        using var fromDpm = Assert.IsType<DDPMScheduler>(SchedulerFactory.FromConfig(DDPMScheduler.Name, dpm.Config));
        Assert.Null(fromDpm.TypedConfig.VarianceType);
        using var fixedSmall = Assert.IsType<DDPMScheduler>(SchedulerFactory.FromConfig(DDPMScheduler.Name,
            ((DDPMSchedulerConfig)fromDpm.Config) with { VarianceType = "fixed_small" }));
        using var sample = torch.linspace(-1, 1, 2 * 4 * 4 * 4).reshape(2, 4, 4, 4);
        using var output = torch.linspace(1, -0.5, 2 * 4 * 4 * 4).reshape(2, 4, 4, 4);
        foreach (var s in new[] { fromDpm, fixedSmall }) s.SetTimesteps(10);
        using var g1 = new Generator(7);
        using var g2 = new Generator(7);
        using var a = fromDpm.Step(output, 500, sample, new StepOptions { Generators = [g1] }).PrevSample;
        using var b = fixedSmall.Step(output, 500, sample, new StepOptions { Generators = [g2] }).PrevSample;
        Assert.True(a.eq(b).all().item<bool>(), "variance_type null did not step as fixed_small");
    }

    [Theory]
    [InlineData("EulerDiscreteScheduler", "{\"use_karras_sigmas\": null}")]
    [InlineData("LMSDiscreteScheduler", "{\"use_karras_sigmas\": null}")]
    [InlineData("HeunDiscreteScheduler", "{\"use_karras_sigmas\": null, \"clip_sample\": null}")]
    public void NullForAnOptionalBoolIsOff(string cls, string keys)
    {
        string json = "{\"_class_name\": \"" + cls + "\", " + keys.TrimStart('{');
        using var withNull = SchedulerFactory.FromJson(json);
        using var plain = SchedulerFactory.FromJson("{\"_class_name\": \"" + cls + "\"}");
        withNull.SetTimesteps(8);
        plain.SetTimesteps(8);
        Assert.Equal(plain.Timesteps.data<float>().ToArray(), withNull.Timesteps.data<float>().ToArray());
    }
}
