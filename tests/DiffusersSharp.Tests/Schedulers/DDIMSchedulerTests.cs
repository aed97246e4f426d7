using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Schedulers;

/// <summary>DDIMScheduler options the golden cases do not cover, checked against DDIM's formulas.</summary>
public class DDIMSchedulerTests
{
    private static double[] LinearAlphasCumprod() =>
        Golden.Tensor("schedulers.safetensors", "ddpm-linear-eps-fixedsmall-clip-leading/alphas_cumprod").to(ScalarType.Float64).data<double>().ToArray();

    [Fact]
    public void FromConfigOfADdpmConfigFollowsDiffusers()
    {
        using var ddpm = DDPMScheduler.FromPretrained(Golden.Path("tiny-ddpm"));
        using var ddim = DDIMScheduler.FromConfig(ddpm.Config);
        Assert.Equal("DDIMScheduler", ddim.Config.ClassName);
        Assert.True(ddim.TypedConfig.ClipSample);          // taken from the DDPM file
        Assert.True(ddim.TypedConfig.SetAlphaToOne);       // absent there: DDIM's default
        Assert.Equal("fixed_small", ddim.Config.Extra!["variance_type"].GetString()); // unknown to DDIM: kept aside
        using var swapped = SchedulerFactory.FromConfig("DDIMScheduler", ddpm.Config);
        Assert.IsType<DDIMScheduler>(swapped);
        // Keys the source took by default are dropped, so the target's defaults apply.
        using var dflt = new DDPMScheduler(new DDPMSchedulerConfig { DefaultedKeys = ["beta_end"], BetaEnd = 0.05 });
        using var fromDefaulted = DDIMScheduler.FromConfig(dflt.Config);
        Assert.Equal(0.02, fromDefaulted.TypedConfig.BetaEnd);
    }

    [Fact]
    public void FinalStepWithAlphaOneReturnsX0()
    {
        using var s = new DDIMScheduler(new DDIMSchedulerConfig { PredictionType = "sample", ClipSample = false });
        s.SetTimesteps(10);
        Assert.Equal(0, s.TimestepValues[^1]);
        using var x = torch.linspace(-2, 2, 16).reshape(1, 1, 4, 4);
        using var x0 = torch.linspace(0.3, -0.6, 16).reshape(1, 1, 4, 4);
        using var prev = s.Step(x0, 0, x).PrevSample;
        Tol.Close(prev, x0, 1e-6, "t=0 with set_alpha_to_one");
    }

    [Fact]
    public void UseClippedModelOutputRecomputesEpsilon()
    {
        using var s = new DDIMScheduler();  // linear betas, epsilon, clip_sample true, set_alpha_to_one
        s.SetTimesteps(10);
        using var x = torch.linspace(-3, 3, 16).reshape(1, 1, 4, 4);
        using var eps = torch.linspace(1, -1, 16).reshape(1, 1, 4, 4);
        using var prev = s.Step(eps, 500, x, new StepOptions { UseClippedModelOutput = true }).PrevSample;
        var ab = LinearAlphasCumprod();
        double at = ab[500], ap = ab[400];
        using var xd = x.to(ScalarType.Float64);
        using var x0 = ((xd - Math.Sqrt(1 - at) * eps.to(ScalarType.Float64)) / Math.Sqrt(at)).clamp(-1, 1);
        using var epsC = (xd - Math.Sqrt(at) * x0) / Math.Sqrt(1 - at);
        using var expected = Math.Sqrt(ap) * x0 + Math.Sqrt(1 - ap) * epsC;
        Tol.Close(prev, expected, 2e-6, "use_clipped_model_output");
        using var plain = s.Step(eps, 500, x).PrevSample;
        Assert.True(Tol.MaxAbsDiff(plain, expected) > 1e-3, "clipping must change the result for this input");
    }

    [Fact]
    public void EtaAndVarianceNoiseComeThroughTheStepOptions()
    {
        using var s = new DDIMScheduler(new DDIMSchedulerConfig { ClipSample = false });
        s.SetTimesteps(5);
        using var x = torch.linspace(-1, 1, 16).reshape(1, 1, 4, 4);
        using var n = torch.linspace(0.5, 1.5, 16).reshape(1, 1, 4, 4);
        using var noisy = ((IScheduler)s).Step(x, 600, x, new StepOptions { Eta = 0.5, VarianceNoise = _ => n }).PrevSample;
        // formula (12) of the DDIM paper with σ_t = η sqrt((1-ᾱ_prev)/(1-ᾱ_t) (1 - ᾱ_t/ᾱ_prev)), ε = x (the model output)
        var ab = LinearAlphasCumprod();
        double at = ab[600], ap = ab[400];
        double std = 0.5 * Math.Sqrt((1 - ap) / (1 - at) * (1 - at / ap));
        using var xd = x.to(ScalarType.Float64);
        using var x0 = (xd - Math.Sqrt(1 - at) * xd) / Math.Sqrt(at);
        using var expected = Math.Sqrt(ap) * x0 + Math.Sqrt(1 - ap - std * std) * xd + std * n.to(ScalarType.Float64);
        Tol.Close(noisy, expected, 2e-6, "eta 0.5 with variance noise");
        using var g = new Generator(1);
        Assert.Contains("either a generator or variance noise",
            Assert.Throws<DiffusersException>(() => s.Step(x, 600, x, new StepOptions { Eta = 0.5, Generators = [g], VarianceNoise = _ => n })).Message);
        Assert.Contains("eta must be a number ≥ 0",
            Assert.Throws<DiffusersException>(() => s.Step(x, 600, x, new StepOptions { Eta = -1 })).Message);
        Assert.Equal(["eta", "generator", "use_clipped_model_output", "variance_noise"], s.StepArguments.Order());
    }

    [Fact]
    public void StepBeforeSetTimestepsIsAnError()
    {
        using var s = new DDIMScheduler();
        using var x = torch.zeros(1, 1, 2, 2);
        Assert.Contains("call SetTimesteps before Step", Assert.Throws<DiffusersException>(() => s.Step(x, 10, x)).Message);
        Assert.Contains("beta_schedule \"sigmoid\" is not implemented for DDIMScheduler",
            Assert.Throws<ConfigException>(() => new DDIMScheduler(new DDIMSchedulerConfig { BetaSchedule = "sigmoid" })).Message);
    }
}
