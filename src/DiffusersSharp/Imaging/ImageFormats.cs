using System.Buffers.Binary;

namespace DiffusersSharp.Imaging;

/// <summary>
/// What an image file is, from its first bytes, as PIL's <c>Image.open</c> decides it (by content, whatever the file's
/// name): the formats <see cref="Image"/> decodes to PIL's pixels, and those PIL reads that DiffusersSharp does not.
/// </summary>
public static class ImageFormats
{
    /// <summary>The formats <see cref="Image.Decode(byte[], bool)"/> reads, as an error message names them.</summary>
    public const string Decoded = "PNG, JPEG, GIF, BMP, WebP, ICO, CUR and TIFF";

    /// <summary>The error for an image in <paramref name="format"/>, one PIL reads and DiffusersSharp does not.</summary>
    public static string NotDecodedMessage(string format) =>
        $"the image is in the {format} format, which PIL (and so diffusers) reads and DiffusersSharp does not (it reads {Decoded}); convert it to PNG";

    internal enum Kind { Unknown, Png, Jpeg, WebP, Gif, Bmp, Dib, Ico, Cur, Tiff }

    private static ReadOnlySpan<byte> PngSignature => [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    internal static Kind Sniff(ReadOnlySpan<byte> data)
    {
        if (data.StartsWith(PngSignature)) return Kind.Png;
        if (data.Length >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) return Kind.Jpeg;
        if (data.Length >= 12 && data[..4].SequenceEqual("RIFF"u8) && data.Slice(8, 4).SequenceEqual("WEBP"u8)) return Kind.WebP;
        if (GifDecoder.IsGif(data)) return Kind.Gif;
        if (data.StartsWith("BM"u8)) return Kind.Bmp;
        if (IcoDecoder.Kind(data) is 1) return Kind.Ico;
        if (IcoDecoder.Kind(data) is 2) return Kind.Cur;
        if (BmpDecoder.IsDibHeaderSize(data)) return Kind.Dib;
        if (TiffDecoder.IsTiff(data)) return Kind.Tiff;
        return Kind.Unknown;
    }

    /// <summary>
    /// The name of the image format PIL reads <paramref name="header"/> (a file's first bytes, 64 are enough) as, when
    /// DiffusersSharp does not decode it (JPEG 2000, Netpbm, PSD, …: the formats of datasets' imagefolder list with a
    /// signature PIL recognises); null for a format DiffusersSharp reads or no format PIL knows by its first bytes.
    /// </summary>
    public static string? NotDecoded(ReadOnlySpan<byte> header)
    {
        if (Sniff(header) != Kind.Unknown) return null;
        byte[] first = header[..Math.Min(64, header.Length)].ToArray();
        foreach (var (name, matches) in Signatures)
            if (matches(first)) return name;
        return null;
    }

    private static bool At(byte[] h, int offset, ReadOnlySpan<byte> magic) => h.Length >= offset + magic.Length && h.AsSpan(offset, magic.Length).SequenceEqual(magic);

    // PIL's _accept tests (Pillow 12.3) of the formats of datasets' IMAGE_EXTENSIONS that DiffusersSharp does not decode
    private static readonly (string Name, Func<byte[], bool> Matches)[] Signatures =
    [
        ("JPEG 2000", h => At(h, 0, [0xFF, 0x4F, 0xFF, 0x51]) || At(h, 0, [0, 0, 0, 0x0C, (byte)'j', (byte)'P', 0x20, 0x20, 0x0D, 0x0A, 0x87, 0x0A])),
        ("Netpbm (PPM/PGM/PBM)", h => h.Length >= 2 && h[0] == 'P' && "0123456fy".Contains((char)h[1])),
        ("PSD", h => At(h, 0, "8BPS"u8)),
        ("SGI", h => h.Length >= 2 && BinaryPrimitives.ReadUInt16BigEndian(h) == 474),
        ("PCX", h => h.Length >= 2 && h[0] == 10 && h[1] is 0 or 2 or 3 or 5),
        ("DDS", h => At(h, 0, "DDS "u8)),
        ("ICNS", h => At(h, 0, "icns"u8)),
        ("BLP", h => At(h, 0, "BLP1"u8) || At(h, 0, "BLP2"u8)),
        ("FITS", h => At(h, 0, "SIMPLE"u8)),
        ("IM", h => At(h, 0, "Image type"u8)),
        ("MSP", h => At(h, 0, "DanM"u8) || At(h, 0, "LinS"u8)),
        ("XBM", h => System.Text.Encoding.ASCII.GetString(h).TrimStart().StartsWith("#define", StringComparison.Ordinal)),
        ("XPM", h => At(h, 0, "/* XPM */"u8)),
        ("EPS", h => At(h, 0, "%!PS"u8) || At(h, 0, [0xC5, 0xD0, 0xD3, 0xC6])),
        ("Sun raster", h => At(h, 0, [0x59, 0xA6, 0x6A, 0x95])),
        ("DCX", h => At(h, 0, [0xB1, 0x68, 0xDE, 0x3A])),
        ("FLI/FLC", h => h.Length >= 16 && BinaryPrimitives.ReadUInt16LittleEndian(h.AsSpan(4)) is 0xAF11 or 0xAF12 && BinaryPrimitives.ReadUInt16LittleEndian(h.AsSpan(14)) is 0 or 3),
        ("FTEX", h => At(h, 0, "FTEX"u8)),
        ("WMF", h => At(h, 0, [0xD7, 0xCD, 0xC6, 0x9A, 0, 0])),
        ("EMF", h => At(h, 0, [1, 0, 0, 0]) && At(h, 40, " EMF"u8)),
        ("PIXAR", h => At(h, 0, [0x80, 0xE8, 0, 0])),
        ("MPEG", h => At(h, 0, [0, 0, 1, 0xB3])),
        ("BUFR", h => At(h, 0, "BUFR"u8) || At(h, 0, "ZCZC"u8)),
        ("GRIB", h => At(h, 0, "GRIB"u8) && h.Length > 7 && h[7] == 1),
    ];
}
