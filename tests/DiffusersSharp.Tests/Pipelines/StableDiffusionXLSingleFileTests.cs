using DiffusersSharp.Imaging;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Pipelines.SingleFile;
using DiffusersSharp.Tests.Support;
using Xunit.Abstractions;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>
/// <c>FromSingleFile</c> on the SDXL pipelines, proven by round trip: the tiny-sdxl (and refiner) folder written in the
/// original layout by <see cref="SingleFileConverter.ToOriginal"/>, loaded back with the folder's configs, gives diffusers'
/// golden images (section F).
/// </summary>
public class StableDiffusionXLSingleFileTests(ITestOutputHelper log)
{
    [Fact]
    public void BaseSingleFileRoundTripGivesDiffusersImage()
    {
        using var dir = new TempDir();
        string file = dir.File("sdxl.safetensors");
        SingleFileConverter.ToOriginal(StableDiffusionXLPipelineTests.Base, file);
        using var pipe = StableDiffusionXLPipeline.FromSingleFile(file, new SingleFileOptions { Config = StableDiffusionXLPipelineTests.Base });
        Assert.True(pipe.ForceZerosForEmptyPrompt);
        using var trace = new SdTrace(pipe);
        using var result = pipe.Generate("a photo of a cat", numInferenceSteps: 4, guidanceScale: 5.0, height: 64, width: 64,
            outputType: OutputType.Np, seed: 0);
        StableDiffusionXLPipelineTests.CheckRun(log, trace, "txt2img_default", result.Array!, fullUnetOutput: true);
    }

    [Fact]
    public void RefinerSingleFileRoundTripGivesDiffusersImage()
    {
        using var dir = new TempDir();
        string file = dir.File("refiner.safetensors");
        SingleFileConverter.ToOriginal(StableDiffusionXLPipelineTests.Refiner, file);
        using var pipe = StableDiffusionXLImg2ImgPipeline.FromSingleFile(file, new SingleFileOptions { Config = StableDiffusionXLPipelineTests.Refiner });
        Assert.Null(pipe.TextEncoder);
        Assert.True(pipe.RequiresAestheticsScore);
        using var trace = new SdTrace(pipe);
        using var result = pipe.Generate("a photo of a cat", Image.Load(Golden.Path("img2img-init.png")), negativePrompt: "ugly",
            strength: 0.3, numInferenceSteps: 10, guidanceScale: 5.0, aestheticScore: 7.0, negativeAestheticScore: 2.0,
            outputType: OutputType.Np, seed: 5);
        StableDiffusionXLPipelineTests.CheckRun(log, trace, "refiner_strength0.3_aesthetic", result.Array!, fullUnetOutput: false);

        var e = Assert.Throws<ConfigException>(() => StableDiffusionXLPipeline.FromSingleFile(file));
        Assert.Contains("is an SDXL refiner checkpoint (no first text encoder); load it with StableDiffusionXLImg2ImgPipeline.FromSingleFile", e.Message);
        Assert.Equal(file, e.FilePath);
    }

    [Fact]
    public void AnSd15SingleFileIsRefusedByTheXlPipelines()
    {
        string file = Golden.Path("single-file", "tiny-sd15-layout.safetensors");
        var e = Assert.Throws<ConfigException>(() => StableDiffusionXLImg2ImgPipeline.FromSingleFile(file));
        Assert.Contains("StableDiffusionXLImg2ImgPipeline.FromSingleFile loads Stable Diffusion XL files (use StableDiffusionPipeline.FromSingleFile)", e.Message);
        Assert.Equal(file, e.FilePath);
    }
}
