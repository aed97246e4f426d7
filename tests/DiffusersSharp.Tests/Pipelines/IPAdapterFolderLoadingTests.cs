using System.Text.Json.Nodes;
using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Support;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>
/// A pipeline folder as diffusers 0.25.1's <c>save_pretrained</c> writes it after <c>load_ip_adapter</c>: model_index.json
/// lists <c>image_encoder: ["transformers", "CLIPVisionModelWithProjection"]</c> and <c>feature_extractor: ["transformers",
/// "CLIPImageProcessor"]</c> with their folders (here tiny-sd / tiny-sdxl with the golden ip-adapter encoder and its
/// preprocessor config). FromPretrained and DiffusionPipeline.FromPretrained load both; LoadIPAdapter then keeps them,
/// and the run is the real diffusers one.
/// </summary>
public class IPAdapterFolderLoadingTests
{
    private const string Expected = "ip-adapter/ip-adapter-expected.safetensors";

    /// <summary>Copies <paramref name="model"/> into <paramref name="dir"/> with the IP-Adapter components listed (<paramref name="featureExtractor"/>: also that one).</summary>
    private static string SavedFolder(TempDir dir, string model, bool featureExtractor = true, string encoderClass = "CLIPVisionModelWithProjection")
    {
        string folder = Path.Combine(dir.Path, "pipe");
        CopyDir(Golden.Path(model), folder);
        string encoder = Golden.Path("ip-adapter", "image_encoder");
        Directory.CreateDirectory(Path.Combine(folder, "image_encoder"));
        foreach (var f in new[] { "config.json", "model.safetensors" })
            File.Copy(Path.Combine(encoder, f), Path.Combine(folder, "image_encoder", f));
        var index = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "model_index.json")))!.AsObject();
        index["image_encoder"] = new JsonArray("transformers", encoderClass);
        if (featureExtractor)
        {
            Directory.CreateDirectory(Path.Combine(folder, "feature_extractor"));
            File.Copy(Path.Combine(encoder, CLIPImageProcessor.ConfigName), Path.Combine(folder, "feature_extractor", CLIPImageProcessor.ConfigName));
            index["feature_extractor"] = new JsonArray("transformers", "CLIPImageProcessor");
        }
        File.WriteAllText(Path.Combine(folder, "model_index.json"), index.ToJsonString());
        return folder;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AStableDiffusionFolderWithAnImageEncoderLoadsItAndRunsAsDiffusers(bool throughDiffusionPipeline)
    {
        using var dir = new TempDir();
        string folder = SavedFolder(dir, "tiny-sd");
        var logged = new List<string>();
        var options = new LoadOptions { Log = logged.Add };
        using var pipe = throughDiffusionPipeline
            ? (StableDiffusionPipeline)DiffusionPipeline.FromPretrained(folder, options)
            : StableDiffusionPipeline.FromPretrained(folder, options);
        Assert.Empty(logged);
        var encoder = pipe.ImageEncoder!;
        Assert.Same(encoder, pipe.Components["image_encoder"]);
        Assert.Equal((32, 32, 32), (pipe.FeatureExtractor!.ShortestEdge, pipe.FeatureExtractor.CropHeight, pipe.FeatureExtractor.CropWidth));
        pipe.LoadIPAdapter(Golden.Path("ip-adapter"), "", "ip-adapter-basic.bin");
        Assert.Same(encoder, pipe.ImageEncoder);
        using var pe = Golden.Tensor("tiny-sd-expected.safetensors", "pipeline/ddim/prompt_embeds");
        using var npe = Golden.Tensor("tiny-sd-expected.safetensors", "pipeline/ddim/negative_prompt_embeds");
        using var o = pipe.Generate(promptEmbeds: pe, negativePromptEmbeds: npe, numInferenceSteps: 3, guidanceScale: 7.5, height: 64, width: 64,
            seed: 0, outputType: OutputType.Np, ipAdapterImage: Image.LoadImage(Golden.Path("ip-adapter", "ip-image.png")));
        Tol.Close(o.Array!, Golden.Tensor(Expected, "pipeline/basic/images"), 1e-4, "basic");
    }

    [Fact]
    public void AnSdxlFolderWithAnImageEncoderLoadsIt()
    {
        using var dir = new TempDir();
        string folder = SavedFolder(dir, "tiny-sdxl", featureExtractor: false);
        using var pipe = StableDiffusionXLImg2ImgPipeline.FromPretrained(folder);
        Assert.Same(pipe.ImageEncoder, pipe.Components["image_encoder"]);
        Assert.Null(pipe.FeatureExtractor);
        Assert.Equal(32, pipe.ImageEncoder!.Config.ImageSize);
    }

    /// <summary>A feature_extractor listed but not in the folder (a Hub download leaves it out) is logged and not loaded, as before.</summary>
    [Fact]
    public void AListedFeatureExtractorWithoutItsFolderIsLogged()
    {
        using var dir = new TempDir();
        string folder = SavedFolder(dir, "tiny-sd");
        Directory.Delete(Path.Combine(folder, "feature_extractor"), recursive: true);
        var logged = new List<string>();
        using var pipe = StableDiffusionPipeline.FromPretrained(folder, new LoadOptions { Log = logged.Add });
        Assert.Equal([$"{Path.Combine(folder, "model_index.json")}: the 'feature_extractor' component (transformers.CLIPImageProcessor) is not loaded or run by DiffusersSharp"], logged);
        Assert.Null(pipe.FeatureExtractor);
        Assert.NotNull(pipe.ImageEncoder);
    }

    [Fact]
    public void AListedImageEncoderWithoutItsFolderNamesIt()
    {
        using var dir = new TempDir();
        string folder = SavedFolder(dir, "tiny-sd");
        Directory.Delete(Path.Combine(folder, "image_encoder"), recursive: true);
        var e = Assert.Throws<ConfigException>(() => StableDiffusionPipeline.FromPretrained(folder));
        string sub = Path.Combine(folder, "image_encoder");
        Assert.Equal($"{folder}: the pipeline's 'image_encoder' component folder is missing ({sub}), though {Path.Combine(folder, "model_index.json")} lists it", e.Message);
        Assert.Equal(("image_encoder", sub), (e.Key, e.FilePath));
    }

    [Fact]
    public void AnImageEncoderOfAnotherClassIsLoggedNotLoaded()
    {
        using var dir = new TempDir();
        string folder = SavedFolder(dir, "tiny-sd", featureExtractor: false, encoderClass: "CLIPVisionModel");
        var logged = new List<string>();
        using var pipe = StableDiffusionPipeline.FromPretrained(folder, new LoadOptions { Log = logged.Add });
        Assert.Equal([$"{Path.Combine(folder, "model_index.json")}: the 'image_encoder' component (transformers.CLIPVisionModel) is not loaded or run by DiffusersSharp (it loads CLIPVisionModelWithProjection)"], logged);
        Assert.Null(pipe.ImageEncoder);
    }

    private static void CopyDir(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
        foreach (var d in Directory.GetDirectories(from)) CopyDir(d, Path.Combine(to, Path.GetFileName(d)));
    }
}
