using DiffusersSharp.Generation;
using DiffusersSharp.Imaging;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Generation;

/// <summary>
/// LoRA in the generation service (tiny-sd and tests/golden/tiny-sd-lora as the LoRA directory): a request's LoRA gives
/// diffusers' image (golden section G) and the library pipeline's bytes at another weight; a following request without
/// LoRAs gives the base model's image again.
/// </summary>
public class GenerationLoraTests(ITestOutputHelper log)
{
    /// <summary>8-bit levels: diffusers' float image vs our PNG (as GenerationServiceTests).</summary>
    private const int LevelTolerance = 1;

    private static string LoraDir => Golden.Path("tiny-sd-lora");

    private static GenerationRequest Request(IReadOnlyDictionary<string, double>? loras) => new()
    {
        Prompt = "a photo of a cat", NegativePrompt = "", Steps = 4, GuidanceScale = 7.5, Width = 64, Height = 64, Seed = 0, Loras = loras,
    };

    private int MaxLevelDiff(byte[] png, string key)
    {
        var image = Image.Decode(png);
        using var expected = Golden.Tensor("tiny-sd-lora-expected.safetensors", key);
        using var e = (expected[0] * 255).round().to(ScalarType.Int32).flatten();
        int max = e.data<int>().ToArray().Select((v, i) => Math.Abs(v - image.Pixels[i])).Max();
        log.WriteLine($"{key}: max level difference {max}");
        return max;
    }

    [Fact]
    public void ALoraRequestMatchesThePipelineAndALaterRequestWithoutLorasIsTheBaseModel()
    {
        byte[] expected07;
        using (var pipe = StableDiffusionPipeline.FromPretrained(GenerationServiceTests.Model))
        {
            pipe.LoadLoraWeights(Path.Combine(LoraDir, "kohya.safetensors"), adapterName: "kohya");
            pipe.SetAdapters(["kohya"], [0.7]);
            using var r = pipe.Generate("a photo of a cat", "", guidanceScale: 7.5, height: 64, width: 64, numInferenceSteps: 4, seed: 0);
            expected07 = r.Images[0].ToPng();
        }
        using var service = GenerationService.Load(GenerationServiceTests.Model);
        service.LoraDirectory = LoraDir;
        Assert.Equal(["kohya"], service.AvailableLoras);

        var full = service.Generate(Request(new Dictionary<string, double> { ["kohya"] = 1.0 }));
        Assert.True(MaxLevelDiff(full.Images[0], "pipeline/lora_b_kohya_scale1/images") <= LevelTolerance);
        var weighted = service.Generate(Request(new Dictionary<string, double> { ["kohya.safetensors"] = 0.7 }));
        Assert.Equal(expected07, weighted.Images[0]);
        var plain = service.Generate(Request(null));
        Assert.True(MaxLevelDiff(plain.Images[0], "pipeline/base/images") <= LevelTolerance);
        Assert.NotEqual(plain.Images[0], full.Images[0]);
    }

    [Fact]
    public void LoraNamesArePlainFileNamesOfTheDirectory()
    {
        var style = new Dictionary<string, double> { ["style"] = 0.8 };
        var e = Assert.Throws<DiffusersException>(() => GenerationService.ValidateLoras(style, null));
        Assert.Equal("loras: this server has no LoRA directory (serve --lora-dir), so it cannot apply style", e.Message);
        e = Assert.Throws<DiffusersException>(() => GenerationService.ValidateLoras(style, LoraDir));
        Assert.Equal($"loras: no LoRA named 'style' in the server's LoRA directory ({LoraDir})", e.Message);
        e = Assert.Throws<DiffusersException>(() => GenerationService.ValidateLoras(
            new Dictionary<string, double> { ["../tiny-sd-lora/kohya"] = 1 }, LoraDir));
        Assert.Equal("loras: '../tiny-sd-lora/kohya' is not a LoRA name (give the file name of a LoRA in the server's LoRA directory)", e.Message);
        e = Assert.Throws<DiffusersException>(() => GenerationService.ValidateLoras(
            new Dictionary<string, double> { ["kohya"] = double.NaN }, LoraDir));
        Assert.Equal("loras: the weight of 'kohya' must be a finite number between -100 and 100, got NaN", e.Message);
    }

    [Fact]
    public void ALoraNameResolvesToAFullPathEvenInARelativeDirectory()
    {
        // a relative result such as 'loras/x.safetensors' is also a valid Hub id: were the file gone by the load, the
        // server would have asked the Hub for it
        using var dir = new TempDir();
        string relative = Path.GetRelativePath(Environment.CurrentDirectory, dir.Path);
        File.WriteAllBytes(Path.Combine(dir.Path, "x.safetensors"), [0]);
        string path = GenerationLoras.Resolve("x", relative);
        Assert.True(Path.IsPathRooted(path), path);
        Assert.Equal(Path.Combine(dir.Path, "x.safetensors"), path);
    }
}
