using System.Text.Json;
using DiffusersSharp.Imaging;
using DiffusersSharp.Tests.Support;
using Image = DiffusersSharp.Imaging.Image;

namespace DiffusersSharp.Tests.Imaging;

/// <summary>
/// <see cref="Image.LoadImage(string)"/> against diffusers' <c>load_image</c>: tests/golden/exif-orientation holds JPEG, PNG
/// and WebP files with each of the 8 EXIF orientations and the other places Pillow reads the tag from, and for each the
/// pixels of <c>PIL.ImageOps.exif_transpose(Image.open(f)).convert("RGB")</c> (make.py there, PIL 9.4.0).
/// </summary>
public class LoadImageTests
{
    private static readonly JsonElement Expected = Golden.Json(Path.Combine("exif-orientation", "expected.json")).RootElement.GetProperty("files");

    private static string File(string name) => Golden.Path("exif-orientation", name);

    private static (int Width, int Height, byte[] Pixels) Pil(string name)
    {
        var e = Expected.GetProperty(name);
        return (e.GetProperty("width").GetInt32(), e.GetProperty("height").GetInt32(), Convert.FromBase64String(e.GetProperty("pixels").GetString()!));
    }

    [Fact]
    public void EveryFileReadsAsPilsExifTransposeThenRgb()
    {
        // the 8 orientations as JPEG (APP1), PNG (eXIf) and WebP (EXIF chunk); little-endian TIFF, a LONG value, an eXIf
        // after the image data, ImageMagick's raw profile (tEXt, zTXt), XMP (attribute and element form), EXIF before XMP,
        // the first of two JPEG EXIF segments, WebP's EXIF with JPEG's "Exif\0\0" prefix; and the ones Pillow does not
        // turn: orientation 9, a JPEG's XMP. SkiaSharp's own EncodedOrigin reads none of the PNGs, the LONG, the prefix.
        var failures = new List<string>();
        int count = 0;
        foreach (var file in Expected.EnumerateObject())
        {
            var (w, h, pixels) = Pil(file.Name);
            foreach (var (how, image) in new[] { ("path", Image.LoadImage(File(file.Name))), ("bytes", Image.LoadImage(System.IO.File.ReadAllBytes(File(file.Name)))) })
            {
                if ((image.Width, image.Height, image.Channels) != (w, h, 3))
                    failures.Add($"{file.Name} ({how}): {image.Width}x{image.Height}x{image.Channels}, PIL {w}x{h}x3");
                else if (!image.Pixels.SequenceEqual(pixels))
                    failures.Add($"{file.Name} ({how}): {pixels.Where((v, i) => v != image.Pixels[i]).Count()} of {pixels.Length} bytes differ");
            }
            count++;
        }
        Assert.Equal(39, count);
        Assert.Empty(failures);
    }

    [Theory]
    [InlineData("jpeg-6.jpg", 6)]
    [InlineData("png-8.png", 8)]
    [InlineData("webp-6-exif-prefix.webp", 6)]
    [InlineData("png-6-raw-profile-ztxt.png", 6)]
    [InlineData("png-8-xmp-element.png", 8)]
    [InlineData("png-3-exif-beats-xmp-6.png", 3)]
    [InlineData("jpeg-two-exif-5-then-3.jpg", 5)]
    [InlineData("jpeg-9-invalid.jpg", 0)]
    [InlineData("jpeg-6-xmp-only.jpg", null)]
    [InlineData("webp-6-no-exif-flag.webp", null)]
    public void TheOrientationIsReadWherePillowReadsIt(string name, int? orientation)
    {
        Assert.Equal(orientation, ExifOrientation.Read(System.IO.File.ReadAllBytes(File(name))));
        // make.py records what Pillow's getexif() gave (None → null; 9 is no orientation: 0 here)
        var pil = Expected.GetProperty(name).GetProperty("orientation");
        Assert.Equal(orientation, pil.ValueKind == JsonValueKind.Null ? null : pil.GetInt32() is var o and >= 1 and <= 8 ? o : 0);
    }

    [Fact]
    public void TruncatedOrCorruptMetadataReadsAsNoOrientationWithoutThrowing()
    {
        // every prefix of each file, and each file with each of its first 400 bytes replaced in turn (0xFF or random): offsets,
        // counts and lengths that point past the end are skipped, as Pillow skips them (or raises, where this reads upright)
        var rng = new Random(7);
        foreach (var file in Expected.EnumerateObject())
        {
            byte[] bytes = System.IO.File.ReadAllBytes(File(file.Name));
            for (int n = 0; n <= bytes.Length; n++) Assert.InRange(ExifOrientation.Read(bytes.AsSpan(0, n)) ?? 0, 0, 8);
            for (int i = 0; i < Math.Min(400, bytes.Length); i++)
            {
                byte[] corrupt = (byte[])bytes.Clone();
                corrupt[i] = (byte)(rng.Next(2) == 0 ? 0xFF : rng.Next(256));
                Assert.InRange(ExifOrientation.Read(corrupt) ?? 0, 0, 8);
            }
        }
    }

    [Fact]
    public void GrayscaleIsPilsLOfTheUprightImage()
    {
        // load_image(f).convert("L"), as diffusers' mask processor converts a mask: the luma of the upright RGB pixels
        var (w, h, rgb) = Pil("jpeg-7.jpg");
        var gray = Image.LoadImage(File("jpeg-7.jpg"), grayscale: true);
        Assert.Equal((w, h, 1), (gray.Width, gray.Height, gray.Channels));
        Assert.Equal(Enumerable.Range(0, w * h).Select(i => Image.Luma(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2])).ToArray(), gray.Pixels);
    }

    [Fact]
    public void LoadAndDecodeKeepThePixelsAsStoredAsPilsImageOpenDoes()
    {
        // Image.open(f).convert("RGB") applies no orientation (the golden runs read their images so): jpeg-6.jpg decodes to
        // jpeg-1.jpg's pixels (the same JPEG data), 7x5; LoadImage turns it, 5x7
        var (w, h, stored) = Pil("jpeg-1.jpg");
        var image = Image.Load(File("jpeg-6.jpg"));
        Assert.Equal((w, h), (image.Width, image.Height));
        Assert.Equal(stored, image.Pixels);
        Assert.Equal(stored, Image.Decode(System.IO.File.ReadAllBytes(File("jpeg-6.jpg"))).Pixels);
        var upright = Image.LoadImage(File("jpeg-6.jpg"));
        Assert.Equal((h, w), (upright.Width, upright.Height));
        Assert.Equal(Pil("jpeg-6.jpg").Pixels, upright.Pixels);
    }

    [Fact]
    public void AMasksTransparencyIsReadUpright()
    {
        // OpenAI's convention (alpha < 128 = repaint) on a PNG with orientation 6: the server reads the mask as it reads
        // the image it goes with, upright
        var e = Expected.GetProperty("mask-rgba-6.png");
        byte[] alpha = Convert.FromBase64String(e.GetProperty("alpha").GetString()!);
        byte[] repaint = alpha.Select(a => a < 128 ? (byte)255 : (byte)0).ToArray();
        byte[] bytes = System.IO.File.ReadAllBytes(File("mask-rgba-6.png"));
        foreach (var mask in new[] { MaskImage.Decode(bytes), MaskImage.FromTransparency(bytes)! })
        {
            Assert.Equal((5, 7, 1), (mask.Width, mask.Height, mask.Channels));
            Assert.Equal(repaint, mask.Pixels);
        }
        Assert.Contains(repaint, v => v == 255);
    }
    /// <summary>
    /// png-1.png (an eXIf chunk with orientation 1) with <paramref name="chunks"/> inserted after IHDR (CRCs zero: only the
    /// metadata reader sees them).
    /// </summary>
    private static byte[] PngWith(IEnumerable<(string Type, byte[] Body)> chunks)
    {
        byte[] png = System.IO.File.ReadAllBytes(File("png-1.png"));
        var output = new MemoryStream();
        output.Write(png, 0, 33);   // signature + IHDR
        foreach (var (type, body) in chunks)
        {
            var chunk = new byte[12 + body.Length];
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(chunk, (uint)body.Length);
            System.Text.Encoding.ASCII.GetBytes(type).CopyTo(chunk, 4);
            body.CopyTo(chunk, 8);
            output.Write(chunk);
        }
        output.Write(png, 33, png.Length - 33);
        return output.ToArray();
    }

    private static byte[] RawProfileZtxt(byte[] zlib) => [.. "Raw profile type exif\0\0"u8, .. zlib];

    private static byte[] Zlib(byte[] data)
    {
        var output = new MemoryStream();
        using (var z = new System.IO.Compression.ZLibStream(output, System.IO.Compression.CompressionLevel.SmallestSize, leaveOpen: true)) z.Write(data);
        return output.ToArray();
    }

    [Fact]
    public void AZtxtWithAPresetDictionaryReadsAsNoOrientation()
    {
        // a zlib stream with FDICT set (0x78 0x20, then a dictionary id): .NET's inflater raises ZLibException, an IOException;
        // Pillow raises and skips the chunk likewise (zlib.error) — it must not escape as a crash of the upload's request
        byte[] png = PngWith([("zTXt", RawProfileZtxt([0x78, 0x20, 0, 0, 0, 1, 0x03, 0x00]))]);
        Assert.Equal(1, ExifOrientation.Read(png));
    }

    [Fact]
    public void AnOutOfLineValuePastTheEndStopsTheDirectoryAsPillowsLoadStops()
    {
        // big-endian TIFF, 2 entries: Make (ASCII, 100 bytes at offset 0xFFFF, past the end), then Orientation SHORT 6.
        // Pillow's ImageFileDirectory_v2.load raises "Truncated File Read" at Make and keeps only the entries before it:
        // getexif() has no orientation
        byte[] tiff = [(byte)'M', (byte)'M', 0, 42, 0, 0, 0, 8, 0, 2,
            0x01, 0x0F, 0, 2, 0, 0, 0, 100, 0, 0, 0xFF, 0xFF,
            0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0,
            0, 0, 0, 0];
        Assert.Null(ExifOrientation.FromExif(tiff));
        // the same with Make's data in range: orientation 6
        byte[] inRange = [.. tiff[..18], 0, 0, 0, 8, .. tiff[22..], .. new byte[100]];
        Assert.Equal(6, ExifOrientation.FromExif(inRange));
        // and an Orientation entry before the short one is kept
        byte[] before = [.. tiff[..10], .. tiff[22..34], .. tiff[10..22], .. tiff[34..]];
        Assert.Equal(6, ExifOrientation.FromExif(before));
    }

    [Fact]
    public void TextChunksBeyondPillowsTextMemoryAreRefusedAndSmallOnesAllocateLittle()
    {
        // Pillow's MAX_TEXT_MEMORY (64 MiB): 65 zTXt chunks of 1 MiB each (1 KiB compressed) are refused, not inflated on
        // and on (a 64 MiB upload of them would otherwise inflate 60 GiB)
        byte[] mib = Zlib(new byte[1024 * 1024]);
        var e = Assert.Throws<DiffusersException>(() => ExifOrientation.Read(PngWith(Enumerable.Repeat(("zTXt", RawProfileZtxt(mib)), 65))));
        Assert.Contains("text chunks decode to more than 67108864 bytes", e.Message);
        Assert.Equal(1, ExifOrientation.Read(PngWith(Enumerable.Repeat(("zTXt", RawProfileZtxt(mib)), 64))));
        // 2000 tiny zTXt chunks: no 1 MiB buffer each (2 GiB allocated before)
        byte[] png = PngWith(Enumerable.Repeat(("zTXt", RawProfileZtxt(Zlib([]))), 2000));
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        Assert.Equal(1, ExifOrientation.Read(png));
        Assert.InRange(GC.GetAllocatedBytesForCurrentThread() - allocated, 0, 200L << 20);
    }
}
