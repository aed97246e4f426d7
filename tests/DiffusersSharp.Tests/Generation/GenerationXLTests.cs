using DiffusersSharp.Generation;
using DiffusersSharp.Imaging;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Generation;

/// <summary>The generation service on an SDXL base folder (tests/golden/tiny-sdxl): text to image with and without a LoRA.</summary>
public class GenerationXLTests(ITestOutputHelper log)
{
    /// <summary>8-bit levels: diffusers' float image vs our PNG (as GenerationServiceTests).</summary>
    private const int LevelTolerance = 1;

    private int MaxLevelDiff(byte[] png, string file, string key)
    {
        var image = Image.Decode(png);
        using var expected = Golden.Tensor(file, key);
        using var e = (expected[0] * 255).round().to(ScalarType.Int32).flatten();
        int max = e.data<int>().ToArray().Select((v, i) => Math.Abs(v - image.Pixels[i])).Max();
        log.WriteLine($"{key}: max level difference {max}");
        return max;
    }

    [Fact]
    public void AnSdxlFolderServesTextToImageWithAndWithoutLora()
    {
        using var service = GenerationService.Load(Golden.Path("tiny-sdxl"));
        service.LoraDirectory = Golden.Path("tiny-sdxl-lora");
        var plain = service.Generate(new GenerationRequest
        {
            Prompt = "a photo of a cat", Steps = 4, GuidanceScale = 5.0, Width = 64, Height = 64, Seed = 0,
        });
        Assert.True(MaxLevelDiff(plain.Images[0], "tiny-sdxl-expected.safetensors", "pipeline/txt2img_default/images") <= LevelTolerance);
        var lora = service.Generate(new GenerationRequest
        {
            Prompt = "a photo of a cat", NegativePrompt = "", Steps = 4, GuidanceScale = 5.0, Width = 64, Height = 64, Seed = 0,
            Loras = new Dictionary<string, double> { ["kohya"] = 1.0 },
        });
        Assert.True(MaxLevelDiff(lora.Images[0], "tiny-sdxl-lora-expected.safetensors", "pipeline/lora_b_kohya_scale1/images") <= LevelTolerance);
        var e = Assert.Throws<DiffusersException>(() => service.Generate(new GenerationRequest
        {
            Prompt = "x", Steps = 1, Width = 64, Height = 64, InitImage = Image.Decode(plain.Images[0]),
        }));
        Assert.Equal($"image: {Golden.Path("tiny-sdxl")} is an SDXL model; the service runs SDXL text to image only (no image or mask)", e.Message);
    }

    /// <summary>Without a tiny VAE, an SDXL run's previews are the latent → RGB map with the SDXL factors (were SD's).</summary>
    [Fact]
    public void WithoutATinyVaeSdxlPreviewsMapTheLatentsByTheSdxlFactors()
    {
        var request = new GenerationRequest { Prompt = "a photo of a cat", Steps = 2, GuidanceScale = 5.0, Width = 64, Height = 64, Seed = 3 };
        var expected = new List<byte[]>();
        using (var pipe = StableDiffusionXLPipeline.FromPretrained(Golden.Path("tiny-sdxl")))
        {
            using var _ = pipe.Generate(request.Prompt, height: 64, width: 64, numInferenceSteps: 2, guidanceScale: 5.0, seed: 3,
                callbackOnStepEnd: (step, t, tensors) =>
                    expected.Add(LatentRgbPreview.Preview(tensors[DenoisingContext.LatentsKey], 0, pipe.VaeScaleFactor, LatentSpace.StableDiffusionXL).ToPng()));
        }
        using var service = GenerationService.Load(Golden.Path("tiny-sdxl"));
        service.PreviewEvery = 1;
        var reports = new List<GenerationProgress>();
        service.Generate(request, new GenerationServiceTests.SyncProgress(reports.Add));
        Assert.Equal(2, reports.Count);
        Assert.Equal(expected[0], reports[0].PreviewPng);   // the last step's image is the result, not a preview
    }
}
