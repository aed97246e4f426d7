using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Models;
using DiffusersSharp.Tests.Support;
using static TorchSharp.torch;

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

    [Fact]
    public void ABf16Img2ImgWithATiledTinyVaeEncodesIntoTheUNetsDtype()
    {
        // a tiled AutoencoderTiny encodes into float32 whatever its dtype (diffusers 0.25.1's _tiled_encode; a bf16 UNet then
        // failed on "mat1 and mat2 must have the same dtype" in its time embedding, in diffusers as here): the latents are
        // the tiled encode's, in the image's dtype. tiny-taesd-out1: out_channels 1, so 2 ** out_channels is its real scale.
        var bf16 = new LoadOptions { Dtype = ScalarType.BFloat16 };
        using var pipe = StableDiffusionImg2ImgPipeline.FromPretrained(StableDiffusionPipelineTests.Model, bf16);
        using (pipe.Vae) pipe.Vae = AutoencoderTiny.FromPretrained(Golden.Path("model-transcripts-taesd-tiling", "tiny-taesd-out1"), null, bf16);
        pipe.EnableVaeTiling();
        var seen = new Dictionary<string, Tensor>();
        pipe.Trace = (name, _, t) =>
        {
            if (name is "image_latents" or "image_preprocessed") seen[name] = t.detach().clone().DetachFromDisposeScope();
        };
        using var result = pipe.Generate("a photo of a cat", Image.Load(Golden.Path("img2img-init.png")), strength: 0.6,
            numInferenceSteps: 3, seed: 1, outputType: OutputType.Np);

        using var latents = seen["image_latents"];
        using var pixels = seen["image_preprocessed"];
        Assert.Equal(ScalarType.BFloat16, latents.dtype);
        using (var input = pixels.to(ScalarType.BFloat16))
        using (var encoded = ((AutoencoderTiny)pipe.Vae).Encode(input))
        {
            Assert.Equal(ScalarType.Float32, encoded.Latents.dtype);
            using var expected = encoded.Latents.to(ScalarType.BFloat16);
            Tol.Close(latents, expected, 0, "image_latents");
        }
        Assert.Equal(new long[] { 1, 64, 64, 3 }, result.Array!.shape);
        using var finite = result.Array!.isfinite().all();
        Assert.True(finite.item<bool>());
    }
}

