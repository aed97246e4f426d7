using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using System.Text.RegularExpressions;

namespace DiffusersSharp.Imaging;

/// <summary>
/// The EXIF orientation (TIFF tag 0x0112) of an encoded image, read where Pillow (9.4 to 10.2) reads it for
/// <c>ImageOps.exif_transpose</c>, which diffusers' <c>load_image</c> applies, and the transposes that turn such an
/// image upright. Pillow's places, each read here:
/// <list type="bullet">
/// <item>JPEG: the first APP1 segment that starts with <c>Exif\0</c>.</item>
/// <item>PNG: the <c>eXIf</c> chunk (before or after the image data); without one, ImageMagick's
/// <c>Raw profile type exif</c> text chunk (tEXt, zTXt or iTXt: hex after three header lines); where neither holds the
/// tag, a <c>tiff:Orientation</c> in the <c>XML:com.adobe.xmp</c> text chunk.</item>
/// <item>WebP: the first <c>EXIF</c> chunk of an extended (VP8X) file whose EXIF flag is set, as libwebp's demuxer
/// finds it.</item>
/// </list>
/// The EXIF data is a TIFF structure (big or little endian, optionally behind JPEG's <c>Exif\0\0</c>); the tag is read
/// from its first directory as Pillow's <c>ImageFileDirectory_v2</c> reads it: the last entry of the tag, its first value,
/// of any numeric type (SHORT as written, LONG, signed, float, rational); BYTE, ASCII and UNDEFINED values, which Pillow
/// keeps as bytes or text, turn nothing. A JPEG's XMP, a GIF, BMP or ICO carry none for Pillow. Where Pillow would raise
/// on malformed EXIF, the image counts as upright; a PNG whose text chunks decode to more than Pillow's 64 MiB in all is
/// refused with a <see cref="DiffusersException"/>, as Pillow refuses it.
/// SkiaSharp's <c>SKCodec.EncodedOrigin</c> is not used: it reads JPEG and WebP only, SHORT values only, and no WebP
/// EXIF with the <c>Exif\0\0</c> prefix, all of which Pillow reads.
/// </summary>
internal static partial class ExifOrientation
{
    private static ReadOnlySpan<byte> PngSignature => [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>TIFF's Orientation tag.</summary>
    public const int Tag = 0x0112;

    /// <summary>
    /// The orientation Pillow's <c>getexif().get(0x0112)</c> gives for <paramref name="encoded"/>: 1-8, 0 where the tag
    /// holds something else (9, a string, a fraction), null where there is no tag. Only 2-8 turn the image
    /// (<see cref="Transpose"/>).
    /// </summary>
    public static int? Read(ReadOnlySpan<byte> encoded)
    {
        if (encoded.Length >= 3 && encoded[0] == 0xFF && encoded[1] == 0xD8) return FromJpeg(encoded);
        if (encoded.Length >= 8 && encoded[..8].SequenceEqual(PngSignature)) return FromPng(encoded);
        if (encoded.Length >= 12 && encoded[..4].SequenceEqual("RIFF"u8) && encoded.Slice(8, 4).SequenceEqual("WEBP"u8))
            return FromWebp(encoded);
        return null;
    }

    /// <summary>
    /// Turns tightly packed pixels of <paramref name="width"/> × <paramref name="height"/> upright for
    /// <paramref name="orientation"/>, as <c>exif_transpose</c> does (2 flip left-right, 3 rotate 180°, 4 flip top-bottom,
    /// 5 transpose, 6 rotate 90° clockwise, 7 transverse, 8 rotate 90° counter-clockwise; 5-8 swap width and height).
    /// Any other value returns <paramref name="pixels"/> as they are.
    /// </summary>
    public static T[] Transpose<T>(T[] pixels, ref int width, ref int height, int? orientation)
    {
        if (orientation is not (>= 2 and <= 8)) return pixels;
        int w = width, h = height;
        bool swap = orientation >= 5;
        int ow = swap ? h : w, oh = swap ? w : h;
        var result = new T[pixels.Length];
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++)
            {
                // the source pixel of output (x, y)
                var (sx, sy) = orientation switch
                {
                    2 => (w - 1 - x, y),
                    3 => (w - 1 - x, h - 1 - y),
                    4 => (x, h - 1 - y),
                    5 => (y, x),
                    6 => (y, h - 1 - x),
                    7 => (w - 1 - y, h - 1 - x),
                    _ => (w - 1 - y, x),
                };
                result[(long)y * ow + x] = pixels[(long)sy * w + sx];
            }
        width = ow;
        height = oh;
        return result;
    }

    private static int? FromJpeg(ReadOnlySpan<byte> data)
    {
        int pos = 2;
        while (pos + 1 < data.Length)
        {
            if (data[pos] != 0xFF) return null;
            byte marker = data[pos + 1];
            pos += 2;
            if (marker == 0xFF) { pos--; continue; }   // fill byte
            if (marker is 0xD8 or 0x01 or (>= 0xD0 and <= 0xD7)) continue;   // no length
            if (marker is 0xDA or 0xD9 || pos + 2 > data.Length) return null;   // start of scan: no more APPn for Pillow
            int length = BinaryPrimitives.ReadUInt16BigEndian(data[pos..]);
            if (length < 2 || pos + length > data.Length) return null;
            var segment = data.Slice(pos + 2, length - 2);
            if (marker == 0xE1 && segment.StartsWith("Exif\0"u8)) return FromExif(segment);
            pos += length;
        }
        return null;
    }

    private static int? FromPng(ReadOnlySpan<byte> data)
    {
        byte[]? exif = null;
        string? rawProfile = null, xmp = null;
        long textMemory = 0;
        int pos = 8;
        while (pos + 8 <= data.Length)
        {
            long length = BinaryPrimitives.ReadUInt32BigEndian(data[pos..]);
            var type = data.Slice(pos + 4, 4);
            if (pos + 12 + length > data.Length) break;
            var body = data.Slice(pos + 8, (int)length);
            pos += 12 + (int)length;
            if (type.SequenceEqual("IEND"u8)) break;
            if (type.SequenceEqual("eXIf"u8)) exif = body.ToArray();   // Pillow's info dictionary: the last one counts
            else if (PngText(type, body) is var (key, text))
            {
                // Pillow's check_text_memory: it refuses a file whose text chunks decode to more than MAX_TEXT_MEMORY in all
                // (counted here for the two keywords read, so never where Pillow reads the file)
                textMemory += text.Length;
                if (textMemory > MaxTextMemory)
                    throw new DiffusersException(
                        $"the PNG's text chunks decode to more than {MaxTextMemory} bytes in all, which Pillow (and so diffusers) refuses to read");
                if (key == "Raw profile type exif") rawProfile = text;
                else if (key == "XML:com.adobe.xmp") xmp = text;
            }
        }
        var tag = exif is not null ? FromExif(exif) : RawProfileBytes(rawProfile) is { } raw ? FromExif(raw) : null;
        return tag ?? (xmp is null ? null : FromXmp(xmp));
    }

    /// <summary>
    /// A tEXt, zTXt or iTXt chunk's keyword and text, as Pillow decodes them, for the two keywords read here; null for
    /// other chunks and keywords, and for unreadable text or text that inflates beyond Pillow's limit.
    /// </summary>
    private static (string Key, string Text)? PngText(ReadOnlySpan<byte> type, ReadOnlySpan<byte> body)
    {
        int nul = body.IndexOf((byte)0);
        if (nul < 0) return null;
        string key = Encoding.Latin1.GetString(body[..nul]);
        if (key is not ("Raw profile type exif" or "XML:com.adobe.xmp")) return null;
        var rest = body[(nul + 1)..];
        try
        {
            if (type.SequenceEqual("tEXt"u8)) return (key, Encoding.Latin1.GetString(rest));
            if (type.SequenceEqual("zTXt"u8))
                return rest.Length >= 1 && rest[0] == 0 ? (key, Encoding.Latin1.GetString(Inflate(rest[1..]))) : null;
            if (!type.SequenceEqual("iTXt"u8) || rest.Length < 2) return null;
            bool compressed = rest[0] == 1;
            if (compressed && rest[1] != 0) return null;
            rest = rest[2..];
            for (int skip = 0; skip < 2; skip++)   // language tag, translated keyword
            {
                int end = rest.IndexOf((byte)0);
                if (end < 0) return null;
                rest = rest[(end + 1)..];
            }
            byte[] text = compressed ? Inflate(rest) : rest.ToArray();
            return (key, new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(text));
        }
        catch (Exception e) when (e is InvalidDataException or IOException or DecoderFallbackException)   // IOException: ZLibException (a preset dictionary, …)
        {
            return null;
        }
    }

    /// <summary>Pillow's <c>MAX_TEXT_CHUNK</c>: it refuses compressed text that inflates to more (1 MiB).</summary>
    private const int MaxTextChunk = 1024 * 1024;

    /// <summary>Pillow's <c>MAX_TEXT_MEMORY</c>: it refuses a PNG whose text chunks decode to more in all (64 MiB).</summary>
    private const int MaxTextMemory = 64 * MaxTextChunk;

    private static byte[] Inflate(ReadOnlySpan<byte> zlib)
    {
        using var input = new MemoryStream(zlib.ToArray());
        using var z = new ZLibStream(input, CompressionMode.Decompress);
        using var output = new MemoryStream();
        var buffer = new byte[Math.Min(MaxTextChunk + 1, Math.Max(4096, 4 * zlib.Length))];   // grows in output, not per chunk
        int read;
        while (output.Length <= MaxTextChunk && (read = z.Read(buffer, 0, (int)Math.Min(buffer.Length, MaxTextChunk + 1 - output.Length))) > 0)
            output.Write(buffer, 0, read);
        if (output.Length > MaxTextChunk) throw new InvalidDataException($"compressed text inflates beyond {MaxTextChunk} bytes");
        return output.ToArray();
    }

    /// <summary>ImageMagick's raw profile text: Pillow drops its first three lines and reads the rest as hex.</summary>
    private static byte[]? RawProfileBytes(string? text)
    {
        if (text is null) return null;
        string hex = string.Concat(text.Split('\n').Skip(3).SelectMany(line => line.Where(c => c is not (' ' or '\t' or '\r' or '\v' or '\f'))));
        try { return Convert.FromHexString(hex); }
        catch (FormatException) { return null; }
    }

    private static int? FromWebp(ReadOnlySpan<byte> data)
    {
        int pos = 12;
        bool first = true, exifFlag = false;
        while (pos + 8 <= data.Length)
        {
            var type = data.Slice(pos, 4);
            long size = BinaryPrimitives.ReadUInt32LittleEndian(data[(pos + 4)..]);
            if (pos + 8 + size > data.Length) return null;
            var payload = data.Slice(pos + 8, (int)size);
            if (first)
            {
                if (!type.SequenceEqual("VP8X"u8) || size < 1) return null;   // a simple file carries no metadata
                exifFlag = (payload[0] & 0x08) != 0;
                first = false;
            }
            else if (type.SequenceEqual("EXIF"u8))
                return exifFlag ? FromExif(payload) : null;
            pos += 8 + (int)size + (int)(size & 1);
        }
        return null;
    }

    /// <summary>
    /// The orientation in EXIF data (a TIFF structure, optionally behind <c>Exif\0\0</c>), as Pillow's <c>Exif.load</c>
    /// reads it: as <see cref="Read"/>, null where the first directory has no readable entry of the tag.
    /// </summary>
    internal static int? FromExif(ReadOnlySpan<byte> exif)
    {
        if (exif.StartsWith("Exif\0\0"u8)) exif = exif[6..];
        if (exif.Length < 8) return null;
        bool little;
        if (exif[..4].SequenceEqual("II*\0"u8)) little = true;
        else if (exif[..4].SequenceEqual("MM\0*"u8)) little = false;
        else return null;   // Pillow raises "not a TIFF file" (BigTIFF EXIF is not read either)
        long ifd = U32(exif[4..], little);
        if (ifd + 2 > exif.Length) return null;
        int? orientation = null;
        int count = U16(exif[(int)ifd..], little);
        for (int i = 0; i < count; i++)
        {
            long entry = ifd + 2 + 12L * i;
            if (entry + 12 > exif.Length) break;   // Pillow keeps the entries read before a truncation
            int e = (int)entry;
            int tag = U16(exif[e..], little);
            int type = U16(exif[(e + 2)..], little);
            long n = U32(exif[(e + 4)..], little);
            int unit = type switch { 1 or 2 or 6 or 7 => 1, 3 or 8 => 2, 4 or 9 or 11 or 13 => 4, 5 or 10 or 12 or 16 => 8, _ => 0 };
            if (unit == 0 || n == 0) continue;   // Pillow skips unknown types and empty entries
            long size = n * unit;
            long at = size > 4 ? U32(exif[(e + 8)..], little) : e + 8;
            // Pillow reads every entry's out-of-line data, of any tag: where it runs past the end, _safe_read raises and the
            // directory's load stops there, keeping the entries read before
            if (size > 4 && at + size > exif.Length) break;
            if (tag != Tag) continue;
            orientation = Value(exif.Slice((int)at, unit), type, little);
        }
        return orientation;
    }

    /// <summary>
    /// The first value of an entry of TIFF type <paramref name="type"/> (Pillow keeps the first of several) where it is an
    /// orientation, 1-8; else 0: BYTE, ASCII and UNDEFINED values (bytes or a string for Pillow), other numbers.
    /// </summary>
    private static int Value(ReadOnlySpan<byte> v, int type, bool little)
    {
        double value = type switch
        {
            3 => U16(v, little),
            8 => (short)U16(v, little),
            4 or 13 => U32(v, little),
            9 => (int)U32(v, little),
            6 => (sbyte)v[0],
            16 => little ? BinaryPrimitives.ReadUInt64LittleEndian(v) : BinaryPrimitives.ReadUInt64BigEndian(v),
            11 => BitConverter.Int32BitsToSingle((int)U32(v, little)),
            12 => BitConverter.Int64BitsToDouble(little ? BinaryPrimitives.ReadInt64LittleEndian(v) : BinaryPrimitives.ReadInt64BigEndian(v)),
            5 => U32(v[4..], little) == 0 ? double.NaN : (double)U32(v, little) / U32(v[4..], little),
            10 => (int)U32(v[4..], little) == 0 ? double.NaN : (double)(int)U32(v, little) / (int)U32(v[4..], little),
            _ => double.NaN,   // 1 BYTE, 2 ASCII, 7 UNDEFINED
        };
        return value is >= 1 and <= 8 && value == Math.Floor(value) ? (int)value : 0;
    }

    private static ushort U16(ReadOnlySpan<byte> at, bool little) =>
        little ? BinaryPrimitives.ReadUInt16LittleEndian(at) : BinaryPrimitives.ReadUInt16BigEndian(at);

    private static uint U32(ReadOnlySpan<byte> at, bool little) =>
        little ? BinaryPrimitives.ReadUInt32LittleEndian(at) : BinaryPrimitives.ReadUInt32BigEndian(at);

    [GeneratedRegex("tiff:Orientation(=\"|>)([0-9])")]
    private static partial Regex XmpOrientation();

    private static int? FromXmp(string xmp) =>
        XmpOrientation().Match(xmp) is { Success: true } m ? (m.Groups[2].Value[0] - '0') is var d and >= 1 and <= 8 ? d : 0 : null;
}
