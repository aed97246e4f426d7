using System.Text.Json;
using DiffusersSharp.Imaging;
using DiffusersSharp.Tests.Support;
using Image = DiffusersSharp.Imaging.Image;

namespace DiffusersSharp.Tests.Imaging;

/// <summary>Pillow's resampling: expected values derived by hand from Pillow's Resample.c, and PIL's own (tests/golden/pil-imaging).</summary>
public class ImageResizeTests
{
    [Fact]
    public void BilinearHalvingOfARampMatchesPillowsWeights()
    {
        // 4 → 2, scale 2, support 1·2: out0 centre 1.0 taps x=0..2 with tri((x-0.5)/2) = .75,.75,.25 (/1.75);
        // out1 centre 3.0 taps x=1..3 = .25,.75,.75. Row [0,70,140,210] → [50, 160].
        var img = new Image(4, 1, 1, [0, 70, 140, 210]);
        var r = ImageResize.Resize(img, 2, 1, ResampleFilter.Bilinear);
        Assert.Equal(new byte[] { 50, 160 }, r.Pixels);
        // the same along the vertical axis
        var col = new Image(1, 4, 1, [0, 70, 140, 210]);
        Assert.Equal(new byte[] { 50, 160 }, ImageResize.Resize(col, 1, 2, ResampleFilter.Bilinear).Pixels);
    }

    [Fact]
    public void BilinearDoublingInterpolatesWithClampedEdges()
    {
        // 2 → 4, scale 0.5, support 1, centres .25/.75/1.25/1.75, window [(int)(c-1+.5), min((int)(c+1+.5), 2)):
        // out0 one tap (x=0) → 0; out1 taps x=0,1 weights tri(-.25)=.75, tri(.75)=.25 → 25; out2 → 75; out3 → 100.
        var img = new Image(2, 1, 1, [0, 100]);
        var r = ImageResize.Resize(img, 4, 1, ResampleFilter.Bilinear);
        Assert.Equal(new byte[] { 0, 25, 75, 100 }, r.Pixels);
    }

    [Fact]
    public void LanczosKeepsAConstantImageConstantAndSameSizeIsACopy()
    {
        var img = new Image(20, 12, 3, Enumerable.Repeat((byte)77, 20 * 12 * 3).ToArray());
        var r = ImageResize.Resize(img, 16, 8);
        Assert.All(r.Pixels, p => Assert.Equal(77, p));
        var same = ImageResize.Resize(img, 20, 12);
        Assert.NotSame(img.Pixels, same.Pixels);
        Assert.Equal(img.Pixels, same.Pixels);
    }

    [Fact]
    public void NearestPicksPixelCentres()
    {
        var img = new Image(4, 1, 1, [10, 20, 30, 40]);
        Assert.Equal(new byte[] { 20, 40 }, ImageResize.Resize(img, 2, 1, ResampleFilter.Nearest).Pixels);
        Assert.Equal(new byte[] { 10, 10, 20, 20, 30, 30, 40, 40 }, ImageResize.Resize(img, 8, 1, ResampleFilter.Nearest).Pixels);
    }

    [Fact]
    public void EveryFilterGivesPillowsPixelsForUpDownAndMixedScaling()
    {
        // tests/golden/pil-imaging: PIL's own Image.resize, RGB and L sources, 6 filters, 7 sizes (42 cases); the nearest rows
        // include pixel centres exactly on a source edge (12 → 18, 10 → 15, 8 → 6), where Pillow's running sum of the
        // step lands just below the edge and takes the pixel before
        using var json = JsonDocument.Parse(File.ReadAllText(Golden.Path("pil-imaging", "resize-expected.json")));
        var failures = new List<string>();
        int count = 0;
        foreach (var c in json.RootElement.GetProperty("cases").EnumerateArray())
        {
            string source = c.GetProperty("source").GetString()!, filter = c.GetProperty("filter").GetString()!;
            int w = c.GetProperty("width").GetInt32(), h = c.GetProperty("height").GetInt32();
            var image = Image.Load(Golden.Path("pil-imaging", source), grayscale: source.Contains("-l-"));
            var resized = ImageResize.Resize(image, w, h, Enum.Parse<ResampleFilter>(filter, ignoreCase: true));
            byte[] expected = Convert.FromBase64String(c.GetProperty("pixels").GetString()!);
            int differing = expected.Where((v, i) => v != resized.Pixels[i]).Count();
            if (differing > 0) failures.Add($"{source} → {w}x{h} {filter}: {differing} of {expected.Length} bytes differ");
            count++;
        }
        Assert.Equal(42, count);
        Assert.Empty(failures);
    }

    [Fact]
    public void PreprocessRoundsTheSizeDownToAMultipleOfEight()
    {
        var img = new Image(21, 19, 3, new byte[21 * 19 * 3]);
        using var x = ImageProcessor.Preprocess(img);
        Assert.Equal(new long[] { 1, 3, 16, 16 }, x.shape);
        Assert.Equal(-1f, x.max().item<float>());
    }
}
