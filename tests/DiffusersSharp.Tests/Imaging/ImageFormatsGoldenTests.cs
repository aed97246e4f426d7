using System.Text.Json;
using DiffusersSharp.Imaging;
using DiffusersSharp.Tests.Support;
using Image = DiffusersSharp.Imaging.Image;

namespace DiffusersSharp.Tests.Imaging;

/// <summary>
/// Every image format of datasets' imagefolder list that DiffusersSharp decodes gives PIL's pixels after
/// <c>convert("RGB")</c> (tests/golden/image-formats: PIL 9.4's, for files whose pixels no Pillow since has changed); the
/// formats PIL reads and DiffusersSharp does not are refused naming the format, and the files PIL refuses are refused.
/// </summary>
public partial class ImageFormatsGoldenTests
{
    private static readonly JsonElement Files = Golden.Json(Path.Combine("image-formats", "expected.json")).RootElement.GetProperty("files");

    private static IEnumerable<(string Name, JsonElement Entry)> Where(Func<JsonElement, bool> keep) =>
        Files.EnumerateObject().Where(p => keep(p.Value)).Select(p => (p.Name, p.Value));

    // Each file's verdict: null where it holds, else what differs
    private static string? Mismatch(string name, Func<string?> check)
    {
        try { return check() is { } why ? $"{name}: {why}" : null; }
        catch (Exception e) { return $"{name}: {e.GetType().Name}: {e.Message}"; }
    }

    [Fact]
    public void EveryFileOfTheFormatsDiffusersSharpDecodesReadsToPilsRgbPixels()
    {
        var files = Where(e => e.TryGetProperty("pixels", out _)).ToList();
        Assert.Equal(114, files.Count); // 50 of them TIFF
        var wrong = files.Select(f => Mismatch(f.Name, () =>
        {
            var image = Image.LoadImage(Golden.Path("image-formats", f.Name));
            var size = (f.Entry.GetProperty("width").GetInt32(), f.Entry.GetProperty("height").GetInt32());
            if ((image.Width, image.Height, image.Channels) != (size.Item1, size.Item2, 3)) return $"{image.Width}x{image.Height}x{image.Channels}, PIL {size}";
            var pil = Convert.FromBase64String(f.Entry.GetProperty("pixels").GetString()!);
            int differ = pil.Where((v, i) => image.Pixels[i] != v).Count();
            return differ == 0 ? null : $"{differ} of {pil.Length} values differ from PIL's";
        })).OfType<string>().ToList();
        Assert.Empty(wrong);
    }

    // PIL's format names (expected.json) as DiffusersSharp's message names them; TGA has no signature (only the data
    // folder's extension names it: ImageFolderFormatsTests)
    private static readonly Dictionary<string, string> Names = new()
    {
        ["JPEG2000"] = "JPEG 2000",
        ["PPM"] = "Netpbm (PPM/PGM/PBM)",
        ["SGI"] = "SGI",
        ["PCX"] = "PCX",
        ["DDS"] = "DDS",
        ["IM"] = "IM",
        ["BLP"] = "BLP",
        ["XBM"] = "XBM",
        ["MSP"] = "MSP",
    };

    [Fact]
    public void EveryFormatPilReadsAndDiffusersSharpDoesNotIsNamed()
    {
        var files = Where(e => e.TryGetProperty("format", out var f) && f.GetString() is not ("TGA" or "TIFF") && !e.TryGetProperty("pixels", out _)).ToList();
        Assert.Equal(12, files.Count);
        var wrong = files.Select(f => Mismatch(f.Name, () =>
        {
            string path = Golden.Path("image-formats", f.Name);
            string expected = $"{path}: the image is in the {Names[f.Entry.GetProperty("format").GetString()!]} format, which PIL (and so diffusers) reads " +
                "and DiffusersSharp does not (it reads PNG, JPEG, GIF, BMP, WebP, ICO, CUR and TIFF); convert it to PNG";
            var e = Assert.Throws<DiffusersException>(() => Image.LoadImage(path));
            if (ImageFormats.NotDecoded(File.ReadAllBytes(path)) != Names[f.Entry.GetProperty("format").GetString()!]) return "NotDecoded names another format";
            return e.Message == expected && e.FilePath == path ? null : $"'{e.Message}' ({e.FilePath})";
        })).OfType<string>().ToList();
        Assert.Empty(wrong);
    }

    [Fact]
    public void FilesPilRefusesAreRefused()
    {
        var refused = Where(e => e.TryGetProperty("pil_error", out _)).Select(f => f.Name).ToList();
        Assert.Equal(["bmp-palette2.bmp", "bmp-palette4-gray-ramp-garbled.bmp", "gif-data-ends-early.gif", "tiff-cmyk16-be.tif", "tiff-fillorder2-palette4-raw.tif",
            "tiff-planar-la.tif", "tiff-ycbcr-planar-subsampled.tif", "tiff-ycbcr.tif"], refused);
        string two = Golden.Path("image-formats", refused[0]), ramp = Golden.Path("image-formats", refused[1]), gif = Golden.Path("image-formats", refused[2]),
            cmyk16 = Golden.Path("image-formats", refused[3]), fill = Golden.Path("image-formats", refused[4]), la = Golden.Path("image-formats", refused[5]),
            ycc = Golden.Path("image-formats", refused[6]), pilYcc = Golden.Path("image-formats", refused[7]);
        // libtiff's RGBA reader, which PIL reads YCbCr through, has planar YCbCr without subsampling only (and 2, 2 is the default)
        Assert.Equal($"{ycc}: not a TIFF image PIL reads: YCbCrSubsampling 2, 2 (libtiff's default) with PlanarConfiguration 2 (libtiff's RGBA reader, which PIL reads YCbCr through, " +
            "has no routine for it)", Assert.Throws<DiffusersException>(() => Image.LoadImage(ycc)).Message);
        // PIL's own YCbCr file is uncompressed: PIL 9.4's own reader unpacks it as RGBX and runs out of data
        Assert.Equal($"{pilYcc}: " + UncompressedYCbCr, Assert.Throws<DiffusersException>(() => Image.LoadImage(pilYcc)).Message);
        // PIL: "image file is truncated" (the data sub-blocks end before the frame's last pixel)
        Assert.Equal($"{gif}: the image data is truncated", Assert.Throws<DiffusersException>(() => Image.LoadImage(gif)).Message);
        Assert.Equal($"{two}: not a BMP image PIL reads: 2 bits per pixel", Assert.Throws<DiffusersException>(() => Image.LoadImage(two)).Message);
        Assert.Equal($"{ramp}: a 4-bit BMP whose palette PIL takes for 8-bit grayscale: PIL (and so diffusers) fails on its pixels or reads them garbled; save it as PNG",
            Assert.Throws<DiffusersException>(() => Image.LoadImage(ramp)).Message);
        // PIL 9.4 has 16-bit CMYK in little endian only ("CMYK;16L")
        Assert.Equal($"{cmyk16}: not a TIFF image PIL reads: PhotometricInterpretation 5, 4 samples of 16 bits, ExtraSamples () (unknown pixel mode)",
            Assert.Throws<DiffusersException>(() => Image.LoadImage(cmyk16)).Message);
        // PIL's own reader has no raw mode "P;4R" (uncompressed 4-bit palette indices, FillOrder 2)
        Assert.Equal($"{fill}: not a TIFF image PIL reads: FillOrder 2 with PhotometricInterpretation 3, 1 samples of 4 bits, uncompressed (unknown raw mode)",
            Assert.Throws<DiffusersException>(() => Image.LoadImage(fill)).Message);
        // PIL's own reader unpacks plane i of an uncompressed planar TIFF with letter i of the raw mode: "LA"[1] is none
        Assert.Equal($"{la}: not a TIFF image PIL reads: 2 samples of PIL's mode LA with PlanarConfiguration 2, uncompressed (unknown raw mode)",
            Assert.Throws<DiffusersException>(() => Image.LoadImage(la)).Message);
    }

    private const string UncompressedYCbCr = "a TIFF image of uncompressed YCbCr samples, which PIL (and so diffusers) reads garbled " +
        "(its own reader takes them for RGB, 4 bytes a pixel, or a plane each) or fails on; convert it to PNG";

    [Fact]
    public void TiffKindsPilReadsAndDiffusersSharpDoesNotAreRefusedNamingTheTagAndItsValue()
    {
        var files = Where(e => e.TryGetProperty("format", out var f) && f.GetString() == "TIFF" && !e.TryGetProperty("pixels", out _)).Select(f => f.Name);
        Assert.Equal(["tiff-float.tif", "tiff-jpeg.tif", "tiff-planar-rgb16-garbled.tif", "tiff-ycbcr-deflate-ends-early.tif", "tiff-ycbcr-raw-garbled.tif"], files);
        foreach (var (name, why) in new[]
        {
            ("tiff-float.tif", "SampleFormat 3 (floating point)"),
            ("tiff-jpeg.tif", "JPEG-compressed (Compression 7)"),
        })
        {
            string path = Golden.Path("image-formats", name);
            var e = Assert.Throws<DiffusersException>(() => Image.LoadImage(path));
            Assert.Equal($"{path}: a TIFF image of a kind PIL (and so diffusers) reads and DiffusersSharp does not: {why}; convert it to PNG", e.Message);
            Assert.Equal(path, e.FilePath);
            Assert.IsType<NotDecodedImageException>(e.InnerException); // the image folder stops on it rather than skipping the file
        }
    }

    [Fact]
    public void YCbCrTiffsPilReadsGarbledOrAsFarAsTheyDecompressAreRefused()
    {
        // uncompressed: PIL's own reader takes the samples for RGBX; Deflate data that ends early: libtiff's RGBA reader
        // keeps what decompressed and goes on, where DiffusersSharp stops
        string raw = Golden.Path("image-formats", "tiff-ycbcr-raw-garbled.tif"), early = Golden.Path("image-formats", "tiff-ycbcr-deflate-ends-early.tif");
        Assert.Equal($"{raw}: " + UncompressedYCbCr, Assert.Throws<DiffusersException>(() => Image.LoadImage(raw)).Message);
        Assert.Equal($"{early}: a TIFF image of YCbCr data that does not decompress whole (strip 0: the image data is truncated), which PIL (and so diffusers) " +
            "reads garbled (libtiff's RGBA reader keeps what decompressed and goes on) or fails on; convert it to PNG",
            Assert.Throws<DiffusersException>(() => Image.LoadImage(early)).Message);
    }

    [Fact]
    public void UncompressedPlanarTiffOfSixteenBitSamplesWhichPilReadsGarbledIsRefused()
    {
        // PIL 9.4's own reader unpacks each plane with one letter of "RGB;16L": 8-bit bands over 16-bit samples
        string path = Golden.Path("image-formats", "tiff-planar-rgb16-garbled.tif");
        var e = Assert.Throws<DiffusersException>(() => Image.LoadImage(path));
        Assert.Equal($"{path}: a TIFF image of 16-bit samples with PlanarConfiguration 2, uncompressed, which PIL (and so diffusers) reads garbled " +
            "(it reads them as 8-bit samples) or fails on; convert it to PNG", e.Message);
    }

    [Fact]
    public void CmykTiffTurnsToRgbByPillowsIntegerFormula()
    {
        // PIL's cmyk2rgb: 255 - k - MULDIV255(c, 255 - k) for each channel (the values: PIL 9.4's convert("RGB") of these inks)
        foreach (var (c, m, y, k, rgb) in new (byte, byte, byte, byte, byte[])[]
        {
            (0, 0, 0, 0, [255, 255, 255]),
            (255, 255, 255, 255, [0, 0, 0]),
            (128, 64, 1, 0, [127, 191, 254]),
            (128, 64, 200, 100, [77, 116, 33]),
            (1, 2, 3, 254, [1, 1, 1]),
        })
        {
            byte[] file = [(byte)'I', (byte)'I', 42, 0, 8, 0, 0, 0, 6, 0,
                0, 1, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0,     // ImageWidth 1
                1, 1, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0,     // ImageLength 1
                2, 1, 3, 0, 1, 0, 0, 0, 8, 0, 0, 0,     // BitsPerSample 8
                6, 1, 3, 0, 1, 0, 0, 0, 5, 0, 0, 0,     // PhotometricInterpretation 5
                0x11, 1, 4, 0, 1, 0, 0, 0, 86, 0, 0, 0, // StripOffsets
                0x15, 1, 3, 0, 1, 0, 0, 0, 4, 0, 0, 0,  // SamplesPerPixel 4
                0, 0, 0, 0, c, m, y, k];
            Assert.Equal(rgb, Image.Decode(file).Pixels);
        }
    }

    [Fact]
    public void TiffOrientationTagTurnsTheImageForLoadAndLoadImageOnce()
    {
        // PIL's TIFF reader turns the page by its Orientation tag as it loads it, and (Pillow 10.x-12.x) drops the tag, so
        // datasets' exif_transpose turns it no further; tiff-be-raw-strips.tif holds the same pixels with no tag
        string path = Golden.Path("image-formats", "tiff-orientation-6.tif");
        var pil = Convert.FromBase64String(Files.GetProperty("tiff-orientation-6.tif").GetProperty("pixels").GetString()!);
        var stored = Image.Load(Golden.Path("image-formats", "tiff-be-raw-strips.tif"));
        foreach (var upright in new[] { Image.LoadImage(path), Image.Load(path) })
        {
            Assert.Equal((3, 5), (upright.Width, upright.Height));
            Assert.Equal(pil, upright.Pixels);
            for (int y = 0; y < 5; y++)
                for (int x = 0; x < 3; x++)
                    Assert.Equal(stored[y, 2 - x, 1], upright[x, y, 1]); // turned 90 degrees clockwise
        }
    }

    [Fact]
    public void DamagedTiffFilesFailWithDiffusersExceptionOnly()
    {
        // every prefix of each decoded TIFF, and each with bytes overwritten at random: a DiffusersException or an image
        var rng = new Random(20261216);
        var names = Files.EnumerateObject().Select(p => p.Name).Where(n => n.StartsWith("tiff-", StringComparison.Ordinal)).ToList();
        Assert.Equal(60, names.Count);
        int failed = 0, decoded = 0;
        foreach (var name in names)
        {
            byte[] bytes = File.ReadAllBytes(Golden.Path("image-formats", name));
            var cases = Enumerable.Range(0, bytes.Length).Select(n => bytes[..n]).ToList();
            for (int k = 0; k < 200; k++)
            {
                byte[] corrupt = (byte[])bytes.Clone();
                for (int j = rng.Next(1, 4); j > 0; j--)
                    corrupt[rng.Next(4, corrupt.Length)] = (byte)(rng.Next(3) switch { 0 => 0xFF, 1 => 0, _ => rng.Next(256) });
                cases.Add(corrupt);
            }
            foreach (var data in cases)
            {
                try
                {
                    Image.Decode(data);
                    decoded++;
                }
                catch (DiffusersException) { failed++; }
            }
        }
        Assert.True(failed > 1000 && decoded > 1000, $"{failed} failed, {decoded} decoded");
    }

    [Fact]
    public void GifEndCodeBeforeTheLastPixelIsReadPastWherePilReadsMoreOfTheFile()
    {
        // PIL reads a file 64 KiB at a time: at an early end code its decoder returns for more, and decodes on where the
        // file has more (the end code at pixel 1000: the whole image), else fails as truncated (at pixel 89000)
        var constructed = Golden.Json(Path.Combine("image-formats", "expected.json")).RootElement.GetProperty("constructed");
        foreach (var (name, endAfter) in new[] { ("gif-end-code-after-pixel-1000", 1000), ("gif-end-code-after-pixel-89000", 89000) })
        {
            var pil = constructed.GetProperty(name);
            byte[] gif = GifEndCodeAt(endAfter);
            Assert.Equal(pil.GetProperty("sha256").GetString(), Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(gif)));
            if (pil.TryGetProperty("pil_error", out _))
                Assert.Equal("the image data is truncated", Assert.Throws<DiffusersException>(() => Image.Decode(gif)).Message);
            else
                Assert.Equal(pil.GetProperty("pixels_sha256").GetString(), Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Image.Decode(gif).Pixels)));
        }
    }

    [Fact]
    public void TiffsTheFuzzingOfTheNewKindsFoundCrashingAreRefusedAsDamaged()
    {
        // a SamplesPerPixel of -1 (SSHORT): it cut the bits-per-sample list by a negative count
        byte[] negative = TinyTiff([(256, 3, 1), (257, 3, 1), (259, 3, 1), (262, 3, 2), (273, 4, 8), (277, 8, 0xFFFF)], [1, 2, 3]);
        Assert.Equal("not a TIFF image PIL reads: SamplesPerPixel -1 (unknown data organization)", Assert.Throws<DiffusersException>(() => Image.Decode(negative)).Message);
        // Deflate data whose zlib header asks for a preset dictionary: zlib's own error (ZLibException), not InvalidDataException
        byte[] dictionary = TinyTiff([(256, 3, 1), (257, 3, 1), (258, 3, 8), (259, 3, 8), (262, 3, 2), (273, 4, 8), (277, 3, 3), (279, 4, 9)],
            [0x78, 0x20, 0, 0, 0, 1, 0x63, 0x60, 0]);
        var e = Assert.Throws<DiffusersException>(() => Image.Decode(dictionary));
        Assert.StartsWith("the TIFF image data is damaged: its Deflate data does not inflate (", e.Message);
    }

    [Fact]
    public void TransparentGifPixelsKeepTheirIndexColourAndTheirTransparencyForMasks()
    {
        // PIL's convert("RGB") gives the transparent index's palette colour (the golden pixels above); its alpha is 0,
        // so an inpainting mask drawn as a transparent GIF is read as OpenAI's transparent-area mask
        var rgba = Image.DecodeRgba(File.ReadAllBytes(Golden.Path("image-formats", "gif-transparent-index.gif")), out int w, out int h, exifTranspose: true);
        var rgb = Convert.FromBase64String(Files.GetProperty("gif-transparent-index.gif").GetProperty("pixels").GetString()!);
        int transparent = 0;
        for (int i = 0; i < w * h; i++)
        {
            Assert.Equal(rgb.AsSpan(3 * i, 3), rgba.AsSpan(4 * i, 3));
            if (rgba[4 * i + 3] == 0) transparent++;
        }
        Assert.Equal(5, transparent); // PIL: 5 pixels of the transparent index 2 in the 7x5 image
    }

    // The cases where Pillow 9.4 (the golden files' PIL) and the Pillow of diffusers 0.25.1's time and after differ, read
    // as Pillow's source (12.3) reads them: an index past the colour table (black since 10.1, a gray ramp before), an
    // ICO's largest size at two depths (the lowest since 10.2, the highest before), a black and white cursor (masked
    // since 12.3: refused)
    [Fact]
    public void WherePillowVersionsDifferTheFilesReadAsPillow102AndLaterOrAreRefused()
    {
        // a GIF with a 2-colour table whose pixels use indices 3 and 1 (LZW code size 2), a BMP with a 1-colour palette
        Assert.Equal(new byte[] { 0, 0, 0, 40, 50, 60 }, Image.Decode(Gif(2, 1, [10, 20, 30, 40, 50, 60], [3, 1])).Pixels);
        Assert.Equal(new byte[] { 0, 0, 0, 10, 20, 30 }, Image.Decode(Bmp8(2, 1, [(10, 20, 30)], [1, 0])).Pixels);

        byte[] green = [0, 200, 0, 0];
        var red24 = Dib(24, [], 0, (200, 0, 0));
        var green8 = Dib(8, green, 0, default);
        Assert.Equal(new byte[] { 0, 200, 0, 0, 200, 0, 0, 200, 0, 0, 200, 0 }, Image.Decode(IconFile(1, (24, red24), (8, green8))).Pixels);
        Assert.Equal(new byte[] { 0, 200, 0, 0, 200, 0, 0, 200, 0, 0, 200, 0 }, Image.Decode(IconFile(1, (8, green8), (24, red24))).Pixels);
        // one depth: the first of the largest, and a cursor reads its entry the same way
        Assert.Equal(new byte[] { 200, 0, 0, 200, 0, 0, 200, 0, 0, 200, 0, 0 }, Image.Decode(IconFile(2, (24, red24), (8, green8))).Pixels);

        var mono = Dib(1, [0, 0, 0, 0, 255, 255, 255, 0], 1, default);
        var e = Assert.Throws<DiffusersException>(() => Image.Decode(IconFile(2, (1, mono))));
        Assert.Equal("a black and white or grayscale cursor, which Pillow 12.3 reads with its AND mask applied (black where it is transparent) " +
            "and older Pillows without, so diffusers' image depends on the Pillow version; convert it to PNG", e.Message);
        // the same bitmap in an icon: black and white as PIL reads it (an icon's mask never changes its colours)
        Assert.Equal(new byte[] { 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255 }, Image.Decode(IconFile(1, (1, mono))).Pixels);
    }
}
