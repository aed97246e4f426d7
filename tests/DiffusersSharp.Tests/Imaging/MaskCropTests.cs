using System.Text.Json;
using DiffusersSharp.Imaging;
using DiffusersSharp.Tests.Support;
using Image = DiffusersSharp.Imaging.Image;

namespace DiffusersSharp.Tests.Imaging;

/// <summary>
/// diffusers' <c>padding_mask_crop</c> helpers against diffusers' own code run on PIL 9.4.0 (tests/golden/mask-crop:
/// <c>get_crop_region</c>, <c>resize</c> with the "fill" and "crop" modes of 0.25.1, <c>apply_overlay</c> of 0.32.0):
/// the crop regions exactly, the images byte for byte.
/// </summary>
public class MaskCropTests
{
    private static JsonElement Expected(string section)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(Golden.Path("mask-crop", "expected.json")));
        return json.RootElement.GetProperty(section).Clone();
    }

    private static Image Load(string name, bool grayscale = false) => Image.Load(Golden.Path("mask-crop", name), grayscale);

    private static int[] Ints(JsonElement e) => e.EnumerateArray().Select(v => v.GetInt32()).ToArray();

    /// <summary>An L mask of <paramref name="w"/> × <paramref name="h"/>, 255 inside each box (x1, y1, x2, y2; ends excluded).</summary>
    private static Image BoxMask(int w, int h, IEnumerable<int[]> boxes)
    {
        var px = new byte[w * h];
        foreach (var b in boxes)
            for (int y = b[1]; y < b[3]; y++)
                for (int x = b[0]; x < b[2]; x++)
                    px[y * w + x] = 255;
        return new Image(w, h, 1, px);
    }

    [Fact]
    public void CropRegionsAreDiffusers()
    {
        // 15 cases: boxes in the middle and at the corners (clamped, shifted back inside), wide and tall boxes grown to
        // square, landscape and portrait processing sizes, regions that cannot reach the ratio (cut to the image), two
        // boxes, a one-pixel box at odd sizes, an all-black mask whose padding still makes a region, an RGB mask where
        // (0, 0, 1) is black in L and (0, 0, 9) is not
        var failures = new List<string>();
        int count = 0;
        foreach (var c in Expected("regions").EnumerateArray())
        {
            var mask = c.TryGetProperty("file", out var file)
                ? Load(file.GetString()!)
                : BoxMask(c.GetProperty("width").GetInt32(), c.GetProperty("height").GetInt32(), c.GetProperty("boxes").EnumerateArray().Select(Ints));
            int width = c.GetProperty("processing_width").GetInt32(), height = c.GetProperty("processing_height").GetInt32(), pad = c.GetProperty("pad").GetInt32();
            var r = ImageProcessor.GetCropRegion(mask, width, height, pad);
            int[] expected = Ints(c.GetProperty("region"));
            if (!expected.SequenceEqual([r.X1, r.Y1, r.X2, r.Y2]))
                failures.Add($"{mask} for {width}x{height} pad {pad}: ({r.X1}, {r.Y1}, {r.X2}, {r.Y2}), diffusers ({string.Join(", ", expected)})");
            count++;
        }
        Assert.Equal(15, count);
        Assert.Empty(failures);
    }

    [Fact]
    public void AnAllBlackMaskWithoutARegionAndANegativePaddingAreRefused()
    {
        // diffusers (get_crop_region(black, 8, 8, pad=0)) gets (16, 14, 0, -2) here, its floor division of -4 included, and fails in PIL's crop ("Coordinate 'right' is less than 'left'")
        var black = new Image(16, 12, 1, new byte[16 * 12]);
        var e = Assert.Throws<DiffusersException>(() => ImageProcessor.GetCropRegion(black, 8, 8, 0));
        Assert.Equal("GetCropRegion: the mask has no masked (non-black) pixel, and a padding of 0 gives no region to crop (16, 14, 0, -2)", e.Message);
        e = Assert.Throws<DiffusersException>(() => ImageProcessor.GetCropRegion(black, 16, 12, -1));
        Assert.Equal("GetCropRegion: the padding must be 0 or more pixels, got -1", e.Message);
    }

    [Fact]
    public void FillAndCropResizesArePilsPixels()
    {
        // an RGB and an L source, each to wider, taller, equal and near-equal ratios; "fill" extends the edge rows or
        // columns with PIL's bicubic resize of an empty box, and leaves a last row or column black where PIL does (12x9 → 11x11,
        // 7x10 → 7x17 and → 5x3)
        var failures = new List<string>();
        int count = 0;
        foreach (var c in Expected("resizes").EnumerateArray())
        {
            string source = c.GetProperty("source").GetString()!, mode = c.GetProperty("mode").GetString()!;
            int w = c.GetProperty("width").GetInt32(), h = c.GetProperty("height").GetInt32();
            var image = Load(source, grayscale: source.Contains("-l-"));
            var resized = ImageProcessor.Resize(image, h, w, mode == "fill" ? ResizeMode.Fill : ResizeMode.Crop);
            Assert.Equal("RGB", c.GetProperty("out_mode").GetString());
            byte[] expected = Convert.FromBase64String(c.GetProperty("pixels").GetString()!);
            if ((resized.Width, resized.Height, resized.Channels) != (w, h, 3)) failures.Add($"{source} {mode} {w}x{h}: got {resized}");
            else if (expected.Where((v, i) => v != resized.Pixels[i]).Count() is int n and > 0)
                failures.Add($"{source} {mode} {w}x{h}: {n} of {expected.Length} bytes differ");
            count++;
        }
        Assert.Equal(24, count);
        Assert.Empty(failures);
    }

    [Fact]
    public void ApplyOverlayIsPilsCompositeAtTheOriginalSize()
    {
        // a 40x30 original, a mask with 255 inside a box and grey edges (128, 1, 254, 37), a 32x24 generated image put back
        // at three crop regions (the third the whole image), and a 40x30 one without a region
        var init = Load("overlay-init-40x30.png");
        var mask = Load("overlay-mask-40x30.png", grayscale: true);
        var generated = Load("overlay-generated-32x24.png");
        int count = 0;
        foreach (var c in Expected("overlays").EnumerateArray())
        {
            CropRegion? region = c.GetProperty("region").ValueKind == JsonValueKind.Null ? null
                : Ints(c.GetProperty("region")) is var r ? new CropRegion(r[0], r[1], r[2], r[3]) : null;
            if (region is { } cr) Assert.Equal(cr, ImageProcessor.GetCropRegion(mask, 32, 24, c.GetProperty("pad").GetInt32()));
            var image = region is null ? Load(c.GetProperty("generated").GetString()!) : generated;
            var result = ImageProcessor.ApplyOverlay(mask, init, image, region);
            Assert.Equal(Ints(c.GetProperty("size")), new[] { result.Width, result.Height });
            byte[] expected = Convert.FromBase64String(c.GetProperty("pixels").GetString()!);
            Assert.True(expected.SequenceEqual(result.Pixels),
                $"{region}: {expected.Where((v, i) => v != result.Pixels[i]).Count()} of {expected.Length} bytes differ from PIL's");
            count++;
        }
        Assert.Equal(4, count);
    }

    [Fact]
    public void ApplyOverlayKeepsTheOriginalWhereTheMaskIsBlackAndRefusesAMaskOfAnotherSize()
    {
        var init = Load("overlay-init-40x30.png");
        var mask = Load("overlay-mask-40x30.png", grayscale: true);
        var result = ImageProcessor.ApplyOverlay(mask, init, Load("overlay-generated-32x24.png"), new CropRegion(8, 6, 30, 22));
        for (int i = 0; i < 40 * 30; i++)
            if (mask.Pixels[i] == 0)
                for (int c = 0; c < 3; c++) Assert.Equal(init.Pixels[3 * i + c], result.Pixels[3 * i + c]);
        var small = ImageResize.Resize(mask, 20, 15);
        var e = Assert.Throws<DiffusersException>(() => ImageProcessor.ApplyOverlay(small, init, init, new CropRegion(0, 0, 10, 10)));
        Assert.Equal("ApplyOverlay: the mask (20x15) must have the size of the original image (40x30)", e.Message);
    }

    [Fact]
    public void PreprocessCropsThenFills()
    {
        // ImageProcessor.Preprocess with the region and "fill": the golden image cut to (2, 11, 58, 39) and fitted to 64x32
        var c = Expected("pipeline").EnumerateArray().Single(p => p.GetProperty("pad").GetInt32() == 0);
        int[] r = Ints(c.GetProperty("region"));
        var init = Image.Load(Golden.Path("img2img-init.png"));
        using var x = ImageProcessor.Preprocess([init], 32, 64, 8, resizeMode: ResizeMode.Fill, cropsCoords: new CropRegion(r[0], r[1], r[2], r[3]));
        Assert.Equal(new long[] { 1, 3, 32, 64 }, x.shape);
        using var expected = ImageProcessor.Preprocess([new Image(64, 32, 3, Convert.FromBase64String(c.GetProperty("image").GetString()!))], vaeScaleFactor: 8);
        Assert.Equal(0.0, (x - expected).abs().max().item<float>());
    }
}
