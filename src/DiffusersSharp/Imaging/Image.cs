using System.Runtime.InteropServices;
using SkiaSharp;

namespace DiffusersSharp.Imaging;

/// <summary>
/// An 8-bit image held as interleaved rows (HWC), the C# counterpart of the <c>PIL.Image</c> objects that
/// diffusers pipelines return: 3 channels (RGB) or 1 (grayscale, PIL mode "L"). Pixel bytes are exactly
/// those diffusers' <c>numpy_to_pil</c> produces; PNG encoding and decoding go through SkiaSharp without
/// colour management, so a PNG round trip is lossless.
/// </summary>
public sealed class Image
{
    /// <summary>Creates an image over <paramref name="pixels"/> (row-major HWC, length H·W·C; not copied).</summary>
    public Image(int width, int height, int channels, byte[] pixels)
    {
        if (width <= 0 || height <= 0)
            throw new DiffusersException($"Image size must be positive, got {width}x{height}");
        if (channels is not (1 or 3))
            throw new DiffusersException($"Image channels must be 1 (grayscale) or 3 (RGB), got {channels}");
        ArgumentNullException.ThrowIfNull(pixels);
        if (pixels.LongLength != (long)width * height * channels)
            throw new DiffusersException(
                $"Image pixel buffer has {pixels.LongLength} bytes, expected {width}x{height}x{channels} = {(long)width * height * channels}");
        Width = width;
        Height = height;
        Channels = channels;
        Pixels = pixels;
    }

    /// <summary>The largest width or height <see cref="Decode(byte[], bool)"/> reads (16384 px: a 16384² RGBA decode is 1 GiB).</summary>
    public const int MaxSide = 16384;

    /// <summary>
    /// Refuses a size <see cref="Decode(byte[], bool)"/> does not read (a side of 0 or above <see cref="MaxSide"/>), with the
    /// message Decode gives; for a check from an image's header alone.
    /// </summary>
    public static void CheckSize(int width, int height)
    {
        if (width <= 0 || height <= 0 || width > MaxSide || height > MaxSide)
            throw new DiffusersException($"the image is {width}x{height} pixels; DiffusersSharp reads images of at most {MaxSide} pixels a side");
    }

    /// <summary>Width in pixels.</summary>
    public int Width { get; }
    /// <summary>Height in pixels.</summary>
    public int Height { get; }
    /// <summary>3 for RGB, 1 for grayscale.</summary>
    public int Channels { get; }
    /// <summary>Row-major HWC bytes.</summary>
    public byte[] Pixels { get; }

    /// <summary>The value of channel <paramref name="c"/> at column <paramref name="x"/>, row <paramref name="y"/>.</summary>
    public byte this[int x, int y, int c] => Pixels[((long)y * Width + x) * Channels + c];

    /// <summary>
    /// Saves the image; the format follows the extension (.png, else .jpg/.jpeg at quality 95, .webp).
    /// The file is written to a temporary name next to the target and renamed, so a failed save never
    /// leaves a partial file behind.
    /// </summary>
    public void Save(string path)
    {
        string ext = Path.GetExtension(path).ToLowerInvariant();
        SKEncodedImageFormat format = ext switch
        {
            ".png" => SKEncodedImageFormat.Png,
            ".jpg" or ".jpeg" => SKEncodedImageFormat.Jpeg,
            ".webp" => SKEncodedImageFormat.Webp,
            _ => throw new DiffusersException(
                $"Cannot save an image as '{path}': unknown extension '{ext}' (use .png, .jpg, .jpeg or .webp)"),
        };
        byte[] bytes = format == SKEncodedImageFormat.Png ? ToPng() : Encode(format, 95);
        AtomicFile.WriteAllBytes(path, bytes);
    }

    /// <summary>
    /// The zlib level <see cref="Save"/> and <see cref="ToPng"/> use (PIL's <c>compress_level</c>; PIL's default is 6):
    /// 4 encodes a 512² image 3.5× faster (38 ms instead of 134 ms on 2 cores, `bench -- png-encode`) into files
    /// 0-10% larger. The pixels are the same at every level.
    /// </summary>
    public const int DefaultPngCompressLevel = 4;

    /// <summary>Encodes the image as PNG bytes, at zlib level <paramref name="compressLevel"/> (0 = stored, 9 = smallest).</summary>
    public byte[] ToPng(int compressLevel = DefaultPngCompressLevel)
    {
        if (compressLevel is < 0 or > 9)
            throw new DiffusersException($"PNG compress level must be 0-9 (zlib's levels), got {compressLevel}");
        using var bitmap = ToSKBitmap();
        using var pixmap = bitmap.PeekPixels();
        using var data = pixmap.Encode(new SKPngEncoderOptions(SKPngEncoderFilterFlags.AllFilters, compressLevel))
            ?? throw new DiffusersException($"SkiaSharp could not encode a {Width}x{Height} image as PNG");
        return data.ToArray();
    }

    private byte[] Encode(SKEncodedImageFormat format, int quality)
    {
        using var bitmap = ToSKBitmap();
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(format, quality)
            ?? throw new DiffusersException($"SkiaSharp could not encode a {Width}x{Height} image as {format}");
        return data.ToArray();
    }

    /// <summary>A new SkiaSharp bitmap (RGB as opaque RGBA 8888, grayscale as Gray8); the caller disposes it.</summary>
    public SKBitmap ToSKBitmap()
    {
        var info = Channels == 1
            ? new SKImageInfo(Width, Height, SKColorType.Gray8, SKAlphaType.Opaque)
            : new SKImageInfo(Width, Height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        var bitmap = new SKBitmap(info);
        var dst = new byte[info.BytesSize];
        int rowBytes = info.RowBytes;
        for (int y = 0; y < Height; y++)
        {
            int src = y * Width * Channels, d = y * rowBytes;
            if (Channels == 1)
            {
                Buffer.BlockCopy(Pixels, src, dst, d, Width);
                continue;
            }
            for (int x = 0; x < Width; x++, src += 3, d += 4)
            {
                dst[d] = Pixels[src];
                dst[d + 1] = Pixels[src + 1];
                dst[d + 2] = Pixels[src + 2];
                dst[d + 3] = 255;
            }
        }
        Marshal.Copy(dst, 0, bitmap.GetPixels(), dst.Length);
        return bitmap;
    }

    /// <summary>
    /// Loads an image file as RGB, like <c>PIL.Image.open(path).convert("RGB")</c>: alpha is dropped (not
    /// composited), grayscale and palette images are expanded to three channels, 16-bit RGB(A) and gray + alpha PNGs
    /// keep the high byte, CMYK JPEGs are converted as PIL converts them. No colour-profile, gamma (ICC, gAMA, cHRM) or
    /// EXIF orientation is applied (PIL's <c>Image.open</c> applies none, but to a TIFF, whose reader turns it by its
    /// Orientation tag as it loads it): the pixels as stored, as diffusers' golden
    /// runs read them. A 16-bit grayscale PNG is refused (<see cref="CheckReadsAsPil"/>). For a user's input image, as
    /// diffusers' examples read it, use <see cref="LoadImage(string)"/>, which turns it by its EXIF orientation.
    /// </summary>
    public static Image Load(string path) => Load(path, grayscale: false);

    /// <summary>Loads an image file as RGB, or as one grayscale channel (PIL's "L": 0.299 R + 0.587 G + 0.114 B).</summary>
    public static Image Load(string path, bool grayscale) => Read(path, grayscale, exifTranspose: false);

    /// <summary>
    /// Loads an image file as diffusers' <c>diffusers.utils.load_image(path)</c> does: <see cref="Load(string)"/>'s pixels
    /// turned upright by the file's EXIF orientation (<c>PIL.ImageOps.exif_transpose</c>, then <c>convert("RGB")</c>), so a
    /// phone photo stored sideways with an orientation tag is read as it is shown. The orientation is read where Pillow
    /// reads it: a JPEG's EXIF, a PNG's eXIf chunk (or its ImageMagick raw-profile or XMP text), a WebP's EXIF chunk.
    /// The CLI's and the server's input images are read this way.
    /// </summary>
    public static Image LoadImage(string path) => LoadImage(path, grayscale: false);

    /// <summary>
    /// <see cref="LoadImage(string)"/>, as RGB or as one grayscale channel (<c>load_image(path).convert("L")</c>, as
    /// diffusers' mask processor converts a mask).
    /// </summary>
    public static Image LoadImage(string path, bool grayscale) => Read(path, grayscale, exifTranspose: true);

    /// <summary>Decodes encoded image bytes as <see cref="LoadImage(string)"/> reads a file: turned upright by their EXIF orientation.</summary>
    public static Image LoadImage(byte[] encoded, bool grayscale = false) => Decode(encoded, grayscale, exifTranspose: true);

    private static Image Read(string path, bool grayscale, bool exifTranspose)
    {
        if (!File.Exists(path)) throw new DiffusersException($"Image file not found: {path}") { FilePath = path };
        byte[] bytes = File.ReadAllBytes(path);
        try
        {
            return Decode(bytes, grayscale, exifTranspose);
        }
        catch (DiffusersException e)
        {
            throw new DiffusersException($"{path}: {e.Message}", e) { FilePath = path };
        }
    }

    /// <summary>
    /// Decodes encoded image bytes (PNG, JPEG, WebP, GIF, BMP, ICO, TIFF) as RGB or grayscale, as <see cref="Load(string)"/>:
    /// the pixels as stored, no EXIF orientation applied (<see cref="LoadImage(byte[], bool)"/> applies it).
    /// </summary>
    public static Image Decode(byte[] encoded, bool grayscale = false) => Decode(encoded, grayscale, exifTranspose: false);

    private static Image Decode(byte[] encoded, bool grayscale, bool exifTranspose)
    {
        var rgba = DecodeRgba(encoded, out int w, out int h, exifTranspose);
        if (grayscale)
        {
            var gray = new byte[w * h];
            for (int i = 0; i < gray.Length; i++) gray[i] = Luma(rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2]);
            return new Image(w, h, 1, gray);
        }
        var rgb = new byte[w * h * 3];
        for (int i = 0; i < w * h; i++)
        {
            rgb[3 * i] = rgba[4 * i];
            rgb[3 * i + 1] = rgba[4 * i + 1];
            rgb[3 * i + 2] = rgba[4 * i + 2];
        }
        return new Image(w, h, 3, rgb);
    }

    /// <summary>PIL's RGB → L: <c>(R*19595 + G*38470 + B*7471 + 0x8000) &gt;&gt; 16</c>.</summary>
    internal static byte Luma(byte r, byte g, byte b) => (byte)((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16);

    /// <summary>
    /// The pixels of encoded image bytes as tightly packed, unpremultiplied RGBA (what <see cref="Decode(byte[], bool)"/> and the
    /// masks of <see cref="MaskImage"/> read), with Decode's checks: a decoder, the size (<see cref="CheckSize"/>), no truncation.
    /// With <paramref name="exifTranspose"/>, turned upright by the EXIF orientation (<see cref="ExifOrientation"/>), as
    /// <c>PIL.ImageOps.exif_transpose</c> turns them.
    /// </summary>
    internal static byte[] DecodeRgba(byte[] encoded, out int w, out int h, bool exifTranspose)
    {
        CheckReadsAsPil(encoded);
        byte[] rgba;
        int tiffOrientation = 0; // a TIFF's own Orientation tag, which PIL's getexif gives for it
        var kind = ImageFormats.Sniff(encoded);
        switch (kind)
        {
            case ImageFormats.Kind.Png or ImageFormats.Kind.Jpeg or ImageFormats.Kind.WebP:
                rgba = DecodeWithSkia(encoded, out w, out h);
                break;
            case ImageFormats.Kind.Gif:
                rgba = GifDecoder.DecodeFirstFrame(encoded, out w, out h);
                break;
            case ImageFormats.Kind.Bmp:
                rgba = BmpDecoder.DecodeFile(encoded, out w, out h);
                break;
            case ImageFormats.Kind.Dib:
                rgba = BmpDecoder.DecodeDib(encoded, 0, heightDivisor: 1, out w, out h);
                break;
            case ImageFormats.Kind.Ico or ImageFormats.Kind.Cur:
                rgba = IcoDecoder.Decode(encoded, DecodeIcoPng, out w, out h);
                break;
            case ImageFormats.Kind.Tiff:
                rgba = TiffDecoder.DecodeFirstPage(encoded, out w, out h, out tiffOrientation);
                break;
            default:
                throw new DiffusersException(ImageFormats.NotDecoded(encoded) is { } format
                    ? ImageFormats.NotDecodedMessage(format)
                    : $"not a readable image: DiffusersSharp reads {ImageFormats.Decoded} files, and PIL no other format of these first bytes");
        }
        // RowBytes of Rgba8888 is 4 * w: tightly packed, one uint per pixel. PIL reads an orientation from JPEG, PNG and WebP files
        // (a TIFF is turned by its own Orientation tag whether or not exifTranspose asks: PIL's TIFF reader turns it as it
        // loads it and drops the tag, so exif_transpose finds none)
        if ((kind is ImageFormats.Kind.Png or ImageFormats.Kind.Jpeg or ImageFormats.Kind.WebP
                ? exifTranspose ? ExifOrientation.Read(encoded) : null : tiffOrientation) is >= 2 and <= 8 and var orientation)
            rgba = MemoryMarshal.AsBytes(ExifOrientation.Transpose(MemoryMarshal.Cast<byte, uint>(rgba).ToArray(), ref w, ref h, orientation)).ToArray();
        return rgba;
    }

    // A PNG inside an ICO file, read as a PNG file is
    private static byte[] DecodeIcoPng(byte[] png, out int w, out int h)
    {
        CheckReadsAsPil(png);
        return DecodeWithSkia(png, out w, out h);
    }

    // PNG, JPEG and WebP: SkiaSharp's decoders give PIL's pixels (tests/golden/image-formats)
    private static byte[] DecodeWithSkia(byte[] encoded, out int w, out int h)
    {
        using var stream = new SKMemoryStream(encoded);
        using var codec = SKCodec.Create(stream)
            ?? throw new DiffusersException("the image data is damaged (its header does not decode)");
        w = codec.Info.Width;
        h = codec.Info.Height;
        CheckSize(w, h);
        var info = new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var rgba = new byte[info.BytesSize];
        var handle = GCHandle.Alloc(rgba, GCHandleType.Pinned);
        try
        {
            var result = codec.GetPixels(info, handle.AddrOfPinnedObject());
            if (result is not (SKCodecResult.Success or SKCodecResult.IncompleteInput))
                throw new DiffusersException($"the image could not be decoded ({result})");
            if (result == SKCodecResult.IncompleteInput)
                throw new DiffusersException("the image data is truncated");
        }
        finally
        {
            handle.Free();
        }
        return rgba;
    }

    private static ReadOnlySpan<byte> PngSignature => [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>
    /// Refuses the one kind of file that PIL and SkiaSharp read to different pixels, judged from its first 26 bytes
    /// (<paramref name="header"/>, or the whole file): a 16-bit grayscale PNG (IHDR bit depth 16, colour type 0). PIL
    /// opens it in mode "I" and <c>convert("RGB")</c> / <c>convert("L")</c> clip each value to 0-255 instead of scaling
    /// it, so the image diffusers sees is white wherever a value exceeds 255; SkiaSharp would keep the high byte. Every
    /// other kind (8-bit, palette, 16-bit RGB, RGBA and gray + alpha, CMYK JPEG, interlaced, with gamma or ICC chunks)
    /// decodes to PIL's pixels.
    /// </summary>
    internal static void CheckReadsAsPil(ReadOnlySpan<byte> header)
    {
        if (header.Length >= 26 && header[..8].SequenceEqual(PngSignature) && header.Slice(12, 4).SequenceEqual("IHDR"u8)
            && header[24] == 16 && header[25] == 0)
            throw new DiffusersException(
                "the image is a 16-bit grayscale PNG, which PIL (and so diffusers) reads clipped to 0-255 instead of scaled: every value above 255 turns white; save it with 8 bits per sample");
    }

    /// <summary>A three-channel copy (grayscale replicated), like PIL's <c>convert("RGB")</c>.</summary>
    public Image ToRgb()
    {
        if (Channels == 3) return this;
        var rgb = new byte[Width * Height * 3];
        for (int i = 0; i < Width * Height; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = Pixels[i];
        return new Image(Width, Height, 3, rgb);
    }

    /// <inheritdoc/>
    public override string ToString() => $"Image {Width}x{Height} {(Channels == 3 ? "RGB" : "L")}";
}
