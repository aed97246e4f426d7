using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Models;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>
/// diffusers' <c>pipe.enable_vae_tiling()</c> / <c>enable_vae_slicing()</c> and their <c>disable_</c> pairs: each switches
/// the VAE the pipeline holds now, whichever kind (AutoencoderKL, AutoencoderTiny), on SD and SDXL pipelines.
/// </summary>
public class VaeSwitchTests
{
    private static void AssertSwitches(ILatentDiffusionPipeline pipe, Func<bool> tiling, Func<bool> slicing)
    {
        Assert.False(tiling());
        Assert.False(slicing());
        pipe.EnableVaeTiling();
        Assert.True(tiling());
        Assert.False(slicing());
        pipe.EnableVaeSlicing();
        Assert.True(slicing());
        pipe.DisableVaeTiling();
        Assert.False(tiling());
        Assert.True(slicing());
        pipe.DisableVaeSlicing();
        Assert.False(slicing());
    }

    [Fact]
    public void StableDiffusionSwitchesItsAutoencoderKLAndATinyVaeSwappedIn()
    {
        using var pipe = StableDiffusionPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        var kl = Assert.IsType<AutoencoderKL>(pipe.Vae);
        AssertSwitches(pipe, () => kl.UseTiling, () => kl.UseSlicing);

        using (pipe.Vae) pipe.Vae = AutoencoderTinyGoldenTests.LoadTiny();
        var tiny = Assert.IsType<AutoencoderTiny>(pipe.Vae);
        AssertSwitches(pipe, () => tiny.UseTiling, () => tiny.UseSlicing);
    }

    [Fact]
    public void StableDiffusionXLSwitchesItsVae()
    {
        using var pipe = StableDiffusionXLPipeline.FromPretrained(StableDiffusionXLPipelineTests.Base);
        var kl = Assert.IsType<AutoencoderKL>(pipe.Vae);
        AssertSwitches(pipe, () => kl.UseTiling, () => kl.UseSlicing);
    }
}
