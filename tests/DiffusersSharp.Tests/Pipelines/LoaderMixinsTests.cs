using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Models;
using DiffusersSharp.Tests.Support;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>
/// The pipelines whose diffusers 0.25.1 class has no <c>IPAdapterMixin</c> and whose <c>Generate</c> takes no image prompt
/// refuse <c>LoadIPAdapter</c> / <c>SetIPAdapterScale</c> (a loaded adapter would do nothing), SD and SDXL alike, and leave the
/// UNet without an adapter; the classes with the mixin still load it (IPAdapterPipelineTests).
/// </summary>
public class LoaderMixinsTests
{
    private static void RefusesIPAdapter(IIPAdapterPipeline pipe, Func<LoaderMixins, bool> supports, string className)
    {
        string diffusers = $" is not available: diffusers 0.25.1's {className} has no ";
        var e = Assert.Throws<DiffusersException>(() => pipe.LoadIPAdapter(Golden.Path("ip-adapter"), "", "ip-adapter-basic.bin"));
        Assert.Equal($"{className}: LoadIPAdapter{diffusers}load_ip_adapter (its class has no IPAdapterMixin)", e.Message);
        e = Assert.Throws<DiffusersException>(() => pipe.SetIPAdapterScale(0.5));
        Assert.Equal($"{className}: SetIPAdapterScale{diffusers}set_ip_adapter_scale (its class has no IPAdapterMixin)", e.Message);
        Assert.False(supports(LoaderMixins.IPAdapter));
        Assert.True(supports(LoaderMixins.Lora | LoaderMixins.TextualInversion));
        Assert.Null(pipe.ImageEncoder);
        Assert.Null(pipe.IPAdapterImageProjection);
    }

    [Fact]
    public void SdxlInstructPix2PixRefusesTheIPAdapter()
    {
        using var folder = StableDiffusionXLInstructPix2PixPipelineTests.Folder();
        using var pipe = StableDiffusionXLInstructPix2PixPipeline.FromPretrained(folder.Path);
        RefusesIPAdapter(pipe, pipe.Supports, StableDiffusionXLInstructPix2PixPipeline.Name);
    }

    [Fact]
    public void SdxlControlNetImageToImageAndInpaintingRefuseTheIPAdapter()
    {
        using (var pipe = StableDiffusionXLControlNetImg2ImgPipelineTests.Pipe()) RefusesIPAdapter(pipe, pipe.Supports, StableDiffusionXLControlNetImg2ImgPipeline.Name);
        using (var pipe = StableDiffusionXLControlNetInpaintPipelineTests.Pipe()) RefusesIPAdapter(pipe, pipe.Supports, StableDiffusionXLControlNetInpaintPipeline.Name);
    }

    [Fact]
    public void TheT2IAdapterPipelinesRefuseTheIPAdapter()
    {
        using (var pipe = T2IAdapterPipelineTests.SdPipe(T2IAdapter.FromPretrained(T2IAdapterGoldenTests.Folder("sd-full"))))
            RefusesIPAdapter(pipe, pipe.Supports, StableDiffusionAdapterPipeline.Name);
        using (var pipe = T2IAdapterPipelineTests.SdxlPipe(T2IAdapter.FromPretrained(T2IAdapterGoldenTests.Folder("sdxl-full"))))
            RefusesIPAdapter(pipe, pipe.Supports, StableDiffusionXLAdapterPipeline.Name);
    }
}
