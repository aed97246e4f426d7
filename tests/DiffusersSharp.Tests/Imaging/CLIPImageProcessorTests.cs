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

    /// <summary>
    /// An image narrower than the crop is padded with zeros as transformers' <c>center_crop</c> pads it (before the rescale,
    /// so a padded value is (0 − mean) / std): a 5×9 image cropped to 8×6 keeps rows 1…6 (top (9 − 6) // 2) and sits
    /// ceil((8 − 5) / 2) = 2 columns from the left, black columns 0, 1 and 7.
    /// </summary>
    [Fact]
    public void AnImageSmallerThanTheCropIsPaddedWithZerosAsTransformersPadsIt()
    {
        const int w = 5, h = 9;
        var px = new byte[w * h * 3];
        for (int i = 0; i < px.Length; i++) px[i] = (byte)(1 + i % 250);
        var image = new Image(w, h, 3, px);
        var p = new CLIPImageProcessor { DoResize = false, CropWidth = 8, CropHeight = 6 };
        var im = p.ResizeAndCrop(image);
        Assert.Equal((8, 6), (im.Width, im.Height));
        for (int y = 0; y < 6; y++)
            for (int x = 0; x < 8; x++)
                for (int c = 0; c < 3; c++)
                    Assert.Equal(x is >= 2 and < 2 + w ? image[x - 2, y + 1, c] : (byte)0, im[x, y, c]);
        // both dimensions smaller: 3×2 in 6×5, at ceil(3 / 2) = 2 columns and ceil(3 / 2) = 2 rows
        var small = new Image(3, 2, 3, [.. Enumerable.Range(1, 18).Select(v => (byte)v)]);
        var padded = new CLIPImageProcessor { DoResize = false, CropWidth = 6, CropHeight = 5 }.ResizeAndCrop(small);
        for (int y = 0; y < 5; y++)
            for (int x = 0; x < 6; x++)
                Assert.Equal(x is >= 2 and < 5 && y is >= 2 and < 4 ? small[x - 2, y - 2, 0] : (byte)0, padded[x, y, 0]);
        using var pixels = p.Preprocess([image]);
        Assert.Equal(new long[] { 1, 3, 6, 8 }, pixels.shape);
        Assert.Equal((float)((0 - (float)p.ImageMean[1]) / (float)p.ImageStd[1]), pixels[0, 1, 3, 0].item<float>());
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
