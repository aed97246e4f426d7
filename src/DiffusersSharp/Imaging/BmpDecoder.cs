using System.Buffers.Binary;

namespace DiffusersSharp.Imaging;

/// <summary>
/// BMP and DIB pixels as PIL reads them (<c>BmpImagePlugin._bitmap</c> of Pillow 12.3, then <c>convert("RGB")</c>),
/// as tightly packed unpremultiplied RGBA: the headers PIL takes (OS/2 12-byte, 40, 52, 56, 64, 108, 124), 1/4/8-bit
/// palettes (an index past the palette is black, as in Pillow 10.1 and later), 16-bit 5-5-5 and 5-6-5 expanded as
/// PIL's <c>v * 255 / 31</c> (truncated; SkiaSharp rounds), 24-bit, 32-bit with the channel masks PIL knows (the
/// fourth byte is alpha only where a mask says so, and the colours under it are kept), RLE8 and RLE4 (PIL's decoder,
/// skipped pixels index 0), top-down and bottom-up rows. What PIL refuses (another header, depth, compression or mask
/// layout, a palette of more than 256 colours, pixel data that ends early) is a <see cref="DiffusersException"/>, and
/// so is a palette PIL takes for a grayscale one of another depth than the pixels' (a 4-bit BMP with a gray-ramp
/// palette, an 8-bit one with a black and white palette of two colours), which PIL reads garbled.
/// </summary>
internal static class BmpDecoder
{
    /// <summary>A whole BMP file (<c>BM</c>, then the 14-byte file header).</summary>
    public static byte[] DecodeFile(ReadOnlySpan<byte> file, out int width, out int height)
    {
        if (file.Length < 14) throw Truncated();
        uint offset = BinaryPrimitives.ReadUInt32LittleEndian(file[10..]);
        return Decode(file, 14, offset, heightDivisor: 1, out width, out height);
    }

    /// <summary>
    /// A DIB (a BMP without its file header) starting at <paramref name="start"/>: its pixels follow its header and
    /// palette. <paramref name="heightDivisor"/> 2 reads the colour half of an ICO/CUR entry, whose header counts the
    /// AND mask's rows too.
    /// </summary>
    public static byte[] DecodeDib(ReadOnlySpan<byte> file, int start, int heightDivisor, out int width, out int height) =>
        Decode(file, start, 0, heightDivisor, out width, out height);

    /// <summary>Whether PIL reads the first 4 bytes as a DIB header size (its <c>_dib_accept</c>).</summary>
    public static bool IsDibHeaderSize(ReadOnlySpan<byte> file) =>
        file.Length >= 4 && BinaryPrimitives.ReadUInt32LittleEndian(file) is 12 or 40 or 52 or 56 or 64 or 108 or 124;

    /// <summary>
    /// Whether the DIB at <paramref name="start"/> has a palette that PIL reads as mode "1" or "L" (black and white,
    /// or a gray ramp): the cursors that Pillow 12.3 reads with their AND mask applied, older Pillows without.
    /// </summary>
    public static bool IsGrayscalePalette(ReadOnlySpan<byte> file, int start) =>
        Parse(file, start, 0, 1).Grayscale;

    private static DiffusersException Truncated() => new("the image data is truncated");

    private static DiffusersException Refused(string why) => new($"not a BMP image PIL reads: {why}");

    private sealed record Header(int Width, int Height, bool TopDown, int Bits, int Compression, int PixelOffset,
        byte[] Palette, int EntrySize, int Colors, bool Grayscale, uint[]? Masks);

    private static Header Parse(ReadOnlySpan<byte> file, int start, uint fileOffset, int heightDivisor)
    {
        if (file.Length < start + 4) throw Truncated();
        int headerSize = (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(file[start..]), int.MaxValue);
        if (headerSize is not (12 or 40 or 52 or 56 or 64 or 108 or 124)) throw Refused($"its header is {headerSize} bytes");
        if (file.Length < start + headerSize) throw Truncated();
        var h = file.Slice(start + 4, headerSize - 4);
        int pos = start + headerSize;
        int width, height, bits, compression = 0, colors = 0, padding;
        bool topDown = false;
        uint[]? masks = null;
        if (headerSize == 12)
        {
            width = BinaryPrimitives.ReadUInt16LittleEndian(h);
            height = BinaryPrimitives.ReadUInt16LittleEndian(h[2..]);
            bits = BinaryPrimitives.ReadUInt16LittleEndian(h[6..]);
            padding = 3;
        }
        else
        {
            topDown = h[7] == 0xFF; // PIL's test for a negative height
            long w = BinaryPrimitives.ReadUInt32LittleEndian(h);
            long rawHeight = BinaryPrimitives.ReadUInt32LittleEndian(h[4..]);
            long ht = topDown ? (1L << 32) - rawHeight : rawHeight;
            if (w > int.MaxValue || ht > int.MaxValue) throw Refused($"its size is {w}x{ht}");
            width = (int)w;
            height = (int)ht;
            bits = BinaryPrimitives.ReadUInt16LittleEndian(h[10..]);
            compression = (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(h[12..]), int.MaxValue);
            colors = (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(h[28..]), int.MaxValue);
            padding = 4;
            if (compression == 3) // BITFIELDS: in the header when it is long enough, else after it
            {
                masks = new uint[4];
                if (h.Length >= 48)
                    for (int i = 0; i < (h.Length >= 52 ? 4 : 3); i++) masks[i] = BinaryPrimitives.ReadUInt32LittleEndian(h[(36 + 4 * i)..]);
                else
                {
                    if (file.Length < pos + 12) throw Truncated();
                    for (int i = 0; i < 3; i++) masks[i] = BinaryPrimitives.ReadUInt32LittleEndian(file[(pos + 4 * i)..]);
                    pos += 12;
                }
            }
        }
        height /= heightDivisor;
        if (bits is not (1 or 4 or 8 or 16 or 24 or 32)) throw Refused($"{bits} bits per pixel");
        if (colors == 0) colors = bits >= 31 ? int.MaxValue : 1 << bits;
        if (compression is not (0 or 1 or 2 or 3)) throw Refused($"compression {compression}");
        if (compression is 1 or 2 && bits > 8) throw Refused($"RLE compression of {bits}-bit pixels");
        if (compression == 3 && !MaskLayoutIsKnown(bits, masks!)) throw Refused("its channel masks are not a layout PIL knows");
        long pixelOffset = fileOffset;
        if (fileOffset == 14 + headerSize && bits <= 8) pixelOffset += (long)padding * colors;
        byte[] palette = [];
        bool grayscale = false;
        if (bits <= 8)
        {
            if (colors is <= 0 or > 65536) throw Refused($"a palette of {colors} colours");
            int available = (int)Math.Clamp(file.Length - pos, 0, (long)padding * colors);
            palette = file.Slice(pos, available).ToArray();
            pos += available;
            grayscale = true;
            for (int i = 0; i < colors && grayscale; i++)
            {
                int value = colors == 2 ? i * 255 : i;
                int at = i * padding;
                // PIL compares each entry's 3 bytes with the gray value; a short palette compares short slices, never equal
                grayscale = at + 3 <= palette.Length && value <= 255 && palette[at] == value && palette[at + 1] == value && palette[at + 2] == value;
            }
            // mode "1" reads 1-bit rows (and no RLE), mode "L" 8-bit rows or RLE's pixels
            if (grayscale && !(colors == 2 ? bits == 1 && compression == 0 : bits == 8 || compression != 0))
                throw new DiffusersException(
                    $"a {bits}-bit{(compression != 0 ? " RLE" : "")} BMP whose palette PIL takes for {(colors == 2 ? "1-bit black and white" : "8-bit grayscale")}: " +
                    "PIL (and so diffusers) fails on its pixels or reads them garbled; save it as PNG");
            if (!grayscale && colors > 256) throw Refused($"a palette of {colors} colours");
        }
        if (pixelOffset == 0) pixelOffset = pos;
        if (pixelOffset > int.MaxValue) throw Truncated();
        return new Header(width, height, topDown, bits, compression, (int)pixelOffset, palette, padding, colors, grayscale, masks);
    }

    private static bool MaskLayoutIsKnown(int bits, uint[] m) => bits switch
    {
        32 => (m[0], m[1], m[2], m[3]) is (0xFF0000, 0xFF00, 0xFF, 0) or (0xFF000000, 0xFF0000, 0xFF00, 0)
            or (0xFF000000, 0xFF00, 0xFF, 0) or (0xFF000000, 0xFF0000, 0xFF00, 0xFF) or (0xFF, 0xFF00, 0xFF0000, 0xFF000000)
            or (0xFF0000, 0xFF00, 0xFF, 0xFF000000) or (0xFF000000, 0xFF00, 0xFF, 0xFF0000) or (0, 0, 0, 0),
        24 => (m[0], m[1], m[2]) is (0xFF0000, 0xFF00, 0xFF),
        16 => (m[0], m[1], m[2]) is (0xF800, 0x7E0, 0x1F) or (0x7C00, 0x3E0, 0x1F),
        _ => false,
    };

    private static byte[] Decode(ReadOnlySpan<byte> file, int start, uint fileOffset, int heightDivisor, out int width, out int height)
    {
        var hd = Parse(file, start, fileOffset, heightDivisor);
        width = hd.Width;
        height = hd.Height;
        Image.CheckSize(width, height);
        var rgba = new byte[(long)width * height * 4];
        if (hd.Compression is 1 or 2)
        {
            var indices = Rle(file, hd.PixelOffset, width, height, rle4: hd.Compression == 2);
            for (int row = 0; row < height; row++)
            {
                int y = hd.TopDown ? row : height - 1 - row;
                for (int x = 0; x < width; x++) Lookup(hd, indices[row * width + x], rgba, (y * width + x) * 4);
            }
            return rgba;
        }
        long stride = (((long)width * hd.Bits + 31) >> 3) & ~3L;
        if (hd.PixelOffset + stride * height > file.Length) throw Truncated();
        var data = file[hd.PixelOffset..];
        // 32-bit: the byte of each channel, from the mask layout (BGRX without masks); -1: no alpha
        var (r, g, b, a) = hd.Bits == 32 ? ByteOrder(hd.Masks) : (2, 1, 0, -1);
        bool is565 = hd.Bits == 16 && hd.Masks is { } m16 && m16[1] == 0x7E0;
        for (int row = 0; row < height; row++)
        {
            var line = data.Slice((int)(row * stride), (int)stride);
            int y = hd.TopDown ? row : height - 1 - row;
            int o = y * width * 4;
            for (int x = 0; x < width; x++, o += 4)
            {
                switch (hd.Bits)
                {
                    case <= 8:
                        int perByte = 8 / hd.Bits, shift = 8 - hd.Bits * (x % perByte + 1);
                        Lookup(hd, (line[x / perByte] >> shift) & ((1 << hd.Bits) - 1), rgba, o);
                        break;
                    case 16:
                        int p = line[2 * x] | (line[2 * x + 1] << 8);
                        rgba[o + 2] = (byte)((p & 31) * 255 / 31);
                        rgba[o + 1] = (byte)(is565 ? ((p >> 5) & 63) * 255 / 63 : ((p >> 5) & 31) * 255 / 31);
                        rgba[o] = (byte)(((p >> (is565 ? 11 : 10)) & 31) * 255 / 31);
                        rgba[o + 3] = 255;
                        break;
                    case 24:
                        rgba[o] = line[3 * x + 2];
                        rgba[o + 1] = line[3 * x + 1];
                        rgba[o + 2] = line[3 * x];
                        rgba[o + 3] = 255;
                        break;
                    default:
                        var px = line.Slice(4 * x, 4);
                        rgba[o] = px[r];
                        rgba[o + 1] = px[g];
                        rgba[o + 2] = px[b];
                        rgba[o + 3] = a < 0 ? (byte)255 : px[a];
                        break;
                }
            }
        }
        return rgba;
    }

    // The byte (little-endian) holding each channel of a 32-bit pixel: PIL's raw modes BGRX, XBGR, BGXR, ABGR, RGBA, BGRA, BGAR
    private static (int R, int G, int B, int A) ByteOrder(uint[]? masks)
    {
        if (masks is null) return (2, 1, 0, -1);
        if (masks is [0, 0, 0, 0]) return (2, 1, 0, 3);
        static int ByteOf(uint mask) => mask == 0 ? -1 : System.Numerics.BitOperations.TrailingZeroCount(mask) / 8;
        return (ByteOf(masks[0]), ByteOf(masks[1]), ByteOf(masks[2]), ByteOf(masks[3]));
    }

    private static void Lookup(Header hd, int index, byte[] rgba, int o)
    {
        int at = index * hd.EntrySize;
        bool inPalette = index < 256 && at + 3 <= hd.Palette.Length;
        if (hd.Grayscale)
        {
            // mode "1" or "L": the pixel value itself (the palette says the same)
            byte v = (byte)(hd.Colors == 2 ? index * 255 : index);
            rgba[o] = rgba[o + 1] = rgba[o + 2] = v;
        }
        else
        {
            rgba[o] = inPalette ? hd.Palette[at + 2] : (byte)0;
            rgba[o + 1] = inPalette ? hd.Palette[at + 1] : (byte)0;
            rgba[o + 2] = inPalette ? hd.Palette[at] : (byte)0;
        }
        rgba[o + 3] = 255;
    }

    // PIL's BmpRleDecoder (Pillow 12.3): the indices in file row order; skipped pixels (end of line, delta) are index 0,
    // a run past the row's end is cut, an absolute run is not (it goes on into the next row), and an RLE4 absolute run
    // of n pixels reads n / 2 bytes (one pixel short when n is odd, as PIL does). Ending before every pixel has a value
    // is an error, as PIL's "not enough image data".
    private static byte[] Rle(ReadOnlySpan<byte> file, int offset, int width, int height, bool rle4)
    {
        long total = (long)width * height;
        var data = new List<byte>((int)Math.Min(total, 1 << 24));
        int pos = offset, x = 0;
        while (data.Count < total)
        {
            if (pos + 2 > file.Length) break;
            int count = file[pos], value = file[pos + 1];
            pos += 2;
            if (count > 0)
            {
                if (x + count > width) count = Math.Max(0, width - x);
                for (int i = 0; i < count; i++) data.Add((byte)(rle4 ? (i % 2 == 0 ? value >> 4 : value & 15) : value));
                x += count;
            }
            else if (value == 0)
            {
                while (data.Count % width != 0) data.Add(0);
                x = 0;
            }
            else if (value == 1) break;
            else if (value == 2)
            {
                if (pos + 2 > file.Length) break;
                int right = file[pos], up = file[pos + 1];
                pos += 2;
                for (long i = 0; i < right + (long)up * width && data.Count < total + width; i++) data.Add(0);
                x = data.Count % width;
            }
            else
            {
                int byteCount = rle4 ? value / 2 : value;
                int read = Math.Min(byteCount, file.Length - pos);
                for (int i = 0; i < read; i++)
                {
                    byte v = file[pos + i];
                    if (rle4)
                    {
                        data.Add((byte)(v >> 4));
                        data.Add((byte)(v & 15));
                    }
                    else data.Add(v);
                }
                pos += read;
                if (read < byteCount) break;
                x += value;
                if (pos % 2 != 0) pos++; // PIL aligns its file position to an even offset
            }
        }
        if (data.Count < total) throw Truncated();
        return [.. data];
    }
}
