using DiffusersSharp.Imaging;
using DiffusersSharp.Tests.Support;

namespace DiffusersSharp.Tests.Imaging;

/// <summary>
/// <see cref="CLIPImageProcessor"/> against the PIL + numpy transcription of transformers 4.36's CLIPImageProcessor in
/// tests/golden/ip-adapter/make.py: shortest-edge resize, centre crop, rescale and normalisation.
/// </summary>
public class CLIPImageProcessorTests
{
    private const string Expected = "ip-adapter/ip-adapter-expected.safetensors";

    /// <summary>float32 (x − mean) / std computed in the same order as numpy: the same bits but for the last place.</summary>
    private const double Float32Pixels = 1e-6;

    private static string TempConfig(string json)
    {
        string dir = Directory.CreateTempSubdirectory("clipproc").FullName;
        File.WriteAllText(Path.Combine(dir, CLIPImageProcessor.ConfigName), json);
        return dir;
    }

    [Fact]
    public void BilinearResizeARectangularCropAndOwnMeanAndStdMatchTransformers()
    {
        string dir = TempConfig("""{"size": {"shortest_edge": 24}, "crop_size": {"height": 20, "width": 16}, "resample": 2, "image_mean": [0.5, 0.4, 0.3], "image_std": [0.2, 0.25, 0.3]}""");
        var p = CLIPImageProcessor.FromPretrained(dir);
        var pixels = p.Preprocess(Image.LoadImage(Golden.Path("img2img-init.png")));
        Assert.Equal(new long[] { 1, 3, 20, 16 }, pixels.shape);
        Tol.Close(pixels, Golden.Tensor(Expected, "processor/init_bilinear_24_20x16"), Float32Pixels);
        Directory.Delete(dir, true);
    }

    [Fact]
    public void TheDefaultsAreTransformersOpenAIClipSettings()
    {
        var p = new CLIPImageProcessor();
        Assert.Equal((224, 224, 224, ResampleFilter.Bicubic), (p.ShortestEdge, p.CropHeight, p.CropWidth, p.Resample));
        Assert.Equal(new[] { 0.48145466, 0.4578275, 0.40821073 }, p.ImageMean);
        Assert.Equal(new[] { 0.26862954, 0.26130258, 0.27577711 }, p.ImageStd);
        var im = p.ResizeAndCrop(Image.LoadImage(Golden.Path("ip-adapter", "ip-image.png")));
        Assert.Equal((224, 224), (im.Width, im.Height));
    }

    [Fact]
    public void ABadSizeKeyIsAnErrorNamingTheFileAndKey()
    {
        string dir = TempConfig("""{"size": {"height": 24, "width": 24}}""");
        var e = Assert.Throws<ConfigException>(() => CLIPImageProcessor.FromPretrained(dir));
        Assert.Equal($"{Path.Combine(dir, CLIPImageProcessor.ConfigName)}: config key 'size': expected {{\"shortest_edge\": n}} or a number (CLIPImageProcessor resizes the shortest edge), got an object", e.Message);
        Assert.Equal("size", e.Key);
        Directory.Delete(dir, true);
    }
}
