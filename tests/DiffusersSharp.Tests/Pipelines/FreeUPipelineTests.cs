using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Support;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>
/// The pipelines' <c>EnableFreeU</c> / <c>DisableFreeU</c> (diffusers' <c>pipe.enable_freeu</c> / <c>disable_freeu</c>): FreeU
/// changes the image, and once disabled the pipeline gives the bytes of a run that never had it. The UNet-level numbers
/// against diffusers are in Models/FreeUGoldenTests.
/// </summary>
public class FreeUPipelineTests
{
    private static byte[] Pixels(ImagePipelineOutput output) => output.Images.SelectMany(i => i.Pixels).ToArray();

    [Fact]
    public void StableDiffusion_EnableFreeUChangesTheImage_AndDisableFreeURestoresTheBytesOfARunWithoutIt()
    {
        using var pipe = StableDiffusionPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        ImagePipelineOutput Run() => pipe.Generate("a photo of a cat", numInferenceSteps: 3, height: 64, width: 64, seed: 0, outputType: OutputType.Pil);
        using var plain = Run();
        pipe.EnableFreeU(0.9, 0.2, 1.2, 1.4);
        using var freeU = Run();
        pipe.DisableFreeU();
        using var again = Run();
        Assert.NotEqual(Pixels(plain), Pixels(freeU));
        Assert.Equal(Pixels(plain), Pixels(again));
    }

    [Fact]
    public void StableDiffusionXL_EnableFreeUChangesTheImage_AndDisableFreeURestoresTheBytesOfARunWithoutIt()
    {
        using var pipe = StableDiffusionXLPipeline.FromPretrained(StableDiffusionXLPipelineTests.Base);
        ImagePipelineOutput Run() => pipe.Generate("a photo of a cat", numInferenceSteps: 3, height: 32, width: 32, seed: 0, outputType: OutputType.Pil);
        using var plain = Run();
        pipe.EnableFreeU(0.6, 0.4, 1.1, 1.2);
        using var freeU = Run();
        pipe.DisableFreeU();
        using var again = Run();
        Assert.NotEqual(Pixels(plain), Pixels(freeU));
        Assert.Equal(Pixels(plain), Pixels(again));
    }

    [Fact]
    public void EnableFreeUOnAPipeline_SetsItOnItsUNetsUpBlocks()
    {
        using var pipe = StableDiffusionPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        pipe.EnableFreeU(0.9, 0.2, 1.1, 1.2);
        var blocks = pipe.Unet.named_modules().Select(m => m.module).OfType<DiffusersSharp.Models.UNetUpBlock>().ToList();
        Assert.Equal(2, blocks.Count);
        Assert.All(blocks, b => Assert.Equal(new DiffusersSharp.Models.FreeUFactors(0.9, 0.2, 1.1, 1.2), b.FreeU));
        pipe.DisableFreeU();
        Assert.All(blocks, b => Assert.Null(b.FreeU));
    }
}
