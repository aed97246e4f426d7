using DiffusersSharp.Imaging;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;
using Image = DiffusersSharp.Imaging.Image;

namespace DiffusersSharp.Tests.Imaging;

public class ImageTests
{
    [Fact]
    public void ASixteenBitGrayscalePngIsRefusedSayingWhyPilWouldSeeAnotherImage()
    {
        // PIL opens it in mode "I" and clips to 0-255 (tests/golden/pil-imaging/README.md: [0, 255, 255, 255, ...]);
        // SkiaSharp would scale (keep the high byte: [0, 0, 1, 255, ...]): refused rather than a different image
        string path = Golden.Path("pil-imaging", "gray16.png");
        const string why = "the image is a 16-bit grayscale PNG, which PIL (and so diffusers) reads clipped to 0-255 instead of scaled: every value above 255 turns white; save it with 8 bits per sample";
        var e = Assert.Throws<DiffusersException>(() => Image.Load(path));
        Assert.Equal($"{path}: {why}", e.Message);
        Assert.Equal(path, e.FilePath);
        Assert.Equal(why, Assert.Throws<DiffusersException>(() => Image.Decode(File.ReadAllBytes(path), grayscale: true)).Message);
        Assert.Equal("mask: " + why, Assert.Throws<DiffusersException>(() => MaskImage.Decode(File.ReadAllBytes(path))).Message);
    }

    [Fact]
    public void AFormatDiffusersSharpCannotReadIsNamedWithTheFormatsThatAreRead()
    {
        // a JPEG 2000 codestream header: PIL opens JPEG 2000 files, DiffusersSharp has no decoder for them
        byte[] j2k = [0xFF, 0x4F, 0xFF, 0x51, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        var e = Assert.Throws<DiffusersException>(() => Image.Decode(j2k));
        Assert.Equal("the image is in the JPEG 2000 format, which PIL (and so diffusers) reads and DiffusersSharp does not (it reads PNG, JPEG, GIF, BMP, WebP, ICO, CUR and TIFF); convert it to PNG", e.Message);
        e = Assert.Throws<DiffusersException>(() => Image.Decode("not an image at all"u8.ToArray()));
        Assert.Equal("not a readable image: DiffusersSharp reads PNG, JPEG, GIF, BMP, WebP, ICO, CUR and TIFF files, and PIL no other format of these first bytes", e.Message);
    }

    [Fact]
    public void PostprocessMatchesNumpyToPilRounding()
    {
        // x in [-1, 1] → (x/2 + 0.5).clamp(0,1) → (v*255).round() with round-half-to-even, as numpy:
        // -1 → 0, 1 → 255, 0 → 127.5 → 128, -3 → 0 (clamped), 3 → 255, -0.002 → 127.245 → 127,
        // 1/255 (v = 0.50196…, v*255 = 128.0) → 128.
        float[] values = [-1f, 1f, 0f, -3f, 3f, -0.002f, 1f / 255f, 0.5f, -0.5f];
        using var x = torch.tensor(values, new long[] { 1, 1, 3, 3 });
        var images = ImageProcessor.Postprocess(x);
        Assert.Single(images);
        Assert.Equal(1, images[0].Channels); // one channel → grayscale, as numpy_to_pil's mode "L"
        Assert.Equal(new byte[] { 0, 255, 128, 0, 255, 127, 128, 191, 64 }, images[0].Pixels);
    }

    [Fact]
    public void HalfwayValuesRoundToEven()
    {
        // values v with v*255 == k + 0.5 exactly in float32 must go to the even neighbour (numpy's round).
        var halves = new List<(float v, byte expected)>();
        for (int k = 0; k < 255; k++)
        {
            float v = (k + 0.5f) / 255f;
            if (v * 255f == k + 0.5f) halves.Add((v, (byte)(k % 2 == 0 ? k : k + 1)));
        }
        Assert.True(halves.Count > 50, $"only {halves.Count} exact halves");
        using var t = torch.tensor(halves.Select(h => h.v).ToArray(), new long[] { 1, 1, halves.Count, 1 });
        var img = ImageProcessor.NumpyToImages(t).Single();
        Assert.Equal(halves.Select(h => h.expected).ToArray(), img.Pixels);
    }

    [Fact]
    public void GoldenPipelineImagesBecomeRgbBytesInHwcOrder()
    {
        using var np = Golden.Tensor("tiny-ddpm-expected.safetensors", "pipeline/images"); // [1,32,32,3]
        var img = ImageProcessor.NumpyToImages(np).Single();
        Assert.Equal((32, 32, 3), (img.Width, img.Height, img.Channels));
        for (int y = 0; y < 32; y += 7)
            for (int x = 0; x < 32; x += 5)
                for (int c = 0; c < 3; c++)
                {
                    float v = np[0, y, x, c].item<float>();
                    Assert.Equal((byte)Math.Round(v * 255f, MidpointRounding.ToEven), img[x, y, c]);
                }
    }

    [Fact]
    public void PngRoundTripIsLossless()
    {
        using var dir = new TempDir();
        var rnd = new Random(5);
        var rgb = new byte[13 * 7 * 3];
        rnd.NextBytes(rgb);
        var img = new Image(13, 7, 3, rgb);
        img.Save(dir.File("a.png"));
        var back = Image.Load(dir.File("a.png"));
        Assert.Equal((13, 7, 3), (back.Width, back.Height, back.Channels));
        Assert.Equal(rgb, back.Pixels);

        var gray = new byte[5 * 4];
        rnd.NextBytes(gray);
        new Image(5, 4, 1, gray).Save(dir.File("g.png"));
        Assert.Equal(gray, Image.Load(dir.File("g.png"), grayscale: true).Pixels);
        Assert.Equal(2, Directory.GetFiles(dir.Path).Length); // no temp files left
    }

    [Fact]
    public void EveryPngCompressLevelKeepsThePixelsAndHigherLevelsCompressSmoothImagesMore()
    {
        // a smooth 96x64 gradient with a little noise, as generated images are: compressible, not trivially
        var rnd = new Random(3);
        var rgb = new byte[96 * 64 * 3];
        for (int y = 0; y < 64; y++)
            for (int x = 0; x < 96; x++)
                for (int c = 0; c < 3; c++)
                    rgb[(y * 96 + x) * 3 + c] = (byte)Math.Clamp(x * 2 + y * (c + 1) + rnd.Next(-3, 4), 0, 255);
        var img = new Image(96, 64, 3, rgb);
        var sizes = new Dictionary<int, int>();
        foreach (int level in new[] { 0, 1, 4, 6, 9 })
        {
            byte[] png = img.ToPng(level);
            Assert.Equal(rgb, Image.Decode(png).Pixels);
            sizes[level] = png.Length;
        }
        Assert.True(sizes[0] > rgb.Length, $"level 0 stores: {sizes[0]} bytes for {rgb.Length} pixel bytes");
        Assert.True(sizes[1] < sizes[0] && sizes[9] <= sizes[4] && sizes[4] < sizes[1], string.Join(", ", sizes));
        Assert.Equal(img.ToPng(Image.DefaultPngCompressLevel), img.ToPng());
        var e = Assert.Throws<DiffusersException>(() => img.ToPng(10));
        Assert.Equal("PNG compress level must be 0-9 (zlib's levels), got 10", e.Message);
    }

    [Fact]
    public void GoldenPngPreprocessesExactlyAsDiffusers()
    {
        // img2img-init.png through VaeImageProcessor.preprocess (64x64: no resize) = 2 * (PNG / 255) - 1.
        var img = Image.Load(Golden.Path("img2img-init.png"));
        Assert.Equal((64, 64, 3), (img.Width, img.Height, img.Channels));
        using var x = ImageProcessor.Preprocess(img);
        using var expected = Golden.Tensor("tiny-sd-img2img-expected.safetensors", "pipeline/pndm_default/image_preprocessed");
        Assert.Equal(0.0, Tol.MaxAbsDiff(x, expected));
        using var init = Golden.Tensor("tiny-sd-img2img-expected.safetensors", "inputs/init_image");
        using var np = ImageProcessor.ImagesToNumpy([img]);
        Assert.Equal(0.0, Tol.MaxAbsDiff(ImageProcessor.NumpyToPt(np), init));
    }

    [Fact]
    public void ImageToTensorToImageRoundTrips()
    {
        var img = Image.Load(Golden.Path("img2img-init.png"));
        using var x = ImageProcessor.Preprocess(img);
        var back = ImageProcessor.Postprocess(x).Single();
        Assert.Equal(img.Pixels, back.Pixels);
    }

    [Fact]
    public void SavingToAMissingFolderFailsWithThePath()
    {
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "no", "such", "x.png");
        var e = Assert.Throws<DiffusersException>(() => new Image(2, 2, 3, new byte[12]).Save(path));
        Assert.StartsWith($"Cannot write '{path}': ", e.Message);
        var ext = Assert.Throws<DiffusersException>(() => new Image(2, 2, 3, new byte[12]).Save(dir.File("x.bmpx")));
        Assert.Contains("unknown extension '.bmpx'", ext.Message);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public void GridPlacesImagesRowMajor()
    {
        Image Solid(byte v) => new(2, 3, 3, Enumerable.Repeat(v, 18).ToArray());
        var grid = ImageGrid.Make([Solid(10), Solid(20), Solid(30)], rows: 2, cols: 2);
        Assert.Equal((4, 6), (grid.Width, grid.Height));
        Assert.Equal(10, grid[1, 2, 0]);
        Assert.Equal(20, grid[2, 0, 1]);
        Assert.Equal(30, grid[0, 3, 2]);
        Assert.Equal(0, grid[3, 5, 0]); // empty cell stays black
        var auto = ImageGrid.Make([Solid(1), Solid(2), Solid(3), Solid(4), Solid(5)]);
        Assert.Equal((6, 6), (auto.Width, auto.Height)); // 3 cols x 2 rows
        var e = Assert.Throws<DiffusersException>(() => ImageGrid.Make([Solid(1), new Image(3, 3, 3, new byte[27])]));
        Assert.Equal("Image grid: image 1 is Image 3x3 RGB, but image 0 is Image 2x3 RGB; all images must match", e.Message);
    }
}
