using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>Previews of a run with the tiny TAESD (golden README section I: the txt2img latents decoded by TAESD).</summary>
public class TaesdPreviewTests(ITestOutputHelper log)
{
    private const string Expected = "tiny-taesd-expected.safetensors";

    private static int MaxLevelDifference(DiffusersSharp.Imaging.Image image, Tensor expectedNhwc)
    {
        using var e = (expectedNhwc[0] * 255).round().to(ScalarType.Int32).flatten();
        var expected = e.data<int>().ToArray();
        Assert.Equal(expected.Length, image.Pixels.Length);
        return expected.Select((v, i) => Math.Abs(v - image.Pixels[i])).Max();
    }

    [Fact]
    public void PreviewOfTheFinalLatentsIsDiffusersTaesdImage()
    {
        using var taesd = AutoencoderTinyGoldenTests.LoadTiny();
        var preview = new TaesdPreview(taesd);
        using var g = new SafetensorsLike(Expected);
        using var latents = g.Load("pipeline/txt2img_taesd/final_latents");
        using var copy = latents.clone();
        var image = preview.Preview(latents);
        Assert.Equal((64, 64, 3), (image.Width, image.Height, image.Channels));
        using var expected = g.Load("pipeline/txt2img_taesd/images");
        int worst = MaxLevelDifference(image, expected);
        log.WriteLine($"preview vs diffusers' TAESD image: max {worst} levels");
        Assert.True(worst <= 1, $"{worst} levels");
        Assert.Equal(0.0, Tol.MaxAbsDiff(latents, copy));
    }

    [Fact]
    public void EveryNStepsHandsOutPreviewsOfTheRunningLatents()
    {
        // the txt2img latents do not depend on the VAE: a run with the folder's VAE previews as the TAESD run decodes
        using var taesd = AutoencoderTinyGoldenTests.LoadTiny();
        using var pipe = StableDiffusionPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        var preview = new TaesdPreview(taesd, maxSize: 32);
        var seen = new List<(int Index, DiffusersSharp.Imaging.Image Image)>();
        var full = new TaesdPreview(taesd);
        var every = preview.Every(2, (step, _, image) => seen.Add((step, image)));
        using var result = pipe.Generate("a photo of a cat", "", guidanceScale: 7.5, numInferenceSteps: 4, height: 64, width: 64, seed: 0,
            outputType: OutputType.Latent, callbackOnStepEnd: every);
        // PNDM with 4 steps makes 5 UNet calls: previews after calls 2 and 4
        Assert.Equal(new[] { 1, 3 }, seen.Select(s => s.Index));
        Assert.All(seen, s => Assert.Equal((32, 32), (s.Image.Width, s.Image.Height)));
        var last = full.Preview(result.Tensor!); // output_type "latent": the final latents
        using var g = new SafetensorsLike(Expected);
        using var expected = g.Load("pipeline/txt2img_taesd/images");
        int worst = MaxLevelDifference(last, expected);
        log.WriteLine($"last preview vs diffusers' TAESD image: max {worst} levels");
        Assert.True(worst <= 1, $"{worst} levels");
    }

    [Fact]
    public void LatentsOfTheWrongWidthAreAClearError()
    {
        using var taesd = AutoencoderTinyGoldenTests.LoadTiny();
        var preview = new TaesdPreview(taesd);
        using var z = torch.zeros(1, 16, 8, 8);
        var e = Assert.Throws<DiffusersException>(() => preview.Decode(z));
        Assert.Contains("expected latents of shape (batch, 4, height, width), got [1, 16, 8, 8]", e.Message);
        var every = Assert.Throws<ArgumentOutOfRangeException>(() => preview.Every(0, (_, _, _) => { }));
        Assert.Equal(("everyNSteps", 0), (every.ParamName, every.ActualValue));
        Assert.Equal($"everyNSteps must be at least 1 (Parameter 'everyNSteps'){Environment.NewLine}Actual value was 0.", every.Message);
    }
}
