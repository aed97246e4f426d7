using System.Buffers.Binary;

namespace DiffusersSharp.Imaging;

/// <summary>
/// ICO and CUR files as PIL opens them, as tightly packed unpremultiplied RGBA. An ICO gives its largest image (by width
/// × height), of the lowest colour depth among those (Pillow 10.2 and later sort that way; 9.x took the highest), the
/// first in the file among equals; a PNG inside is read as a PNG, a BMP inside as its
/// colour (XOR) bitmap, whose colours <c>convert("RGB")</c> keeps where the AND mask makes the pixel transparent. A
/// CUR gives the first entry that is wider and taller than every earlier one, read as a DIB (a PNG cursor is an error,
/// as in PIL). A black and white or grayscale cursor is refused: Pillow 12.3 reads it with its AND mask applied
/// (black where transparent), older Pillows without.
/// </summary>
internal static class IcoDecoder
{
    /// <summary>The file's kind: 1 ICO, 2 CUR, 0 neither (PIL's <c>_accept</c> of both).</summary>
    public static int Kind(ReadOnlySpan<byte> data) =>
        data.Length >= 4 && data[0] == 0 && data[1] == 0 && data[3] == 0 && data[2] is 1 or 2 ? data[2] : 0;

    private static DiffusersException Truncated() => new("the image data is truncated");

    private static ReadOnlySpan<byte> PngSignature => [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    public delegate byte[] PngDecoder(byte[] png, out int width, out int height);

    public static byte[] Decode(ReadOnlySpan<byte> file, PngDecoder decodePng, out int width, out int height)
    {
        if (file.Length < 6) throw Truncated();
        int kind = file[2], count = BinaryPrimitives.ReadUInt16LittleEndian(file[4..]);
        if (count == 0) throw new DiffusersException(kind == 1 ? "the icon file holds no image" : "the cursor file holds no cursor");
        if (file.Length < 6 + 16 * count) throw Truncated();
        int chosen = kind == 1 ? LargestIcon(file, count) : LargestCursor(file, count);
        var entry = file.Slice(6 + 16 * chosen, 16);
        uint offset = BinaryPrimitives.ReadUInt32LittleEndian(entry[12..]);
        if (offset >= file.Length) throw Truncated();
        int start = (int)offset;
        if (kind == 1 && file[start..].StartsWith(PngSignature))
            return decodePng(file[start..].ToArray(), out width, out height); // from the entry's offset on, whatever size it states, as PIL
        if (kind == 2 && BmpDecoder.IsGrayscalePalette(file, start))
            throw new DiffusersException(
                "a black and white or grayscale cursor, which Pillow 12.3 reads with its AND mask applied (black where it is transparent) and older Pillows without, so diffusers' image depends on the Pillow version; convert it to PNG");
        return BmpDecoder.DecodeDib(file, start, heightDivisor: 2, out width, out height);
    }

    // IcoFile: entries sorted by colour depth, then stably by width × height, largest first (Pillow >= 10.2); the first
    private static int LargestIcon(ReadOnlySpan<byte> file, int count)
    {
        int best = 0;
        long bestSquare = -1, bestDepth = 0;
        for (int i = 0; i < count; i++)
        {
            var e = file.Slice(6 + 16 * i, 16);
            int w = e[0] == 0 ? 256 : e[0], h = e[1] == 0 ? 256 : e[1];
            int colors = e[2], bpp = BinaryPrimitives.ReadUInt16LittleEndian(e[6..]);
            long depth = bpp != 0 ? bpp : colors != 0 ? (long)Math.Ceiling(Math.Log2(colors)) : 256;
            if (colors == 1 && bpp == 0) depth = 256; // ceil(log(1, 2)) is 0, and PIL's `or 256` takes it
            long square = (long)w * h;
            if (square > bestSquare || (square == bestSquare && depth < bestDepth))
            {
                best = i;
                bestSquare = square;
                bestDepth = depth;
            }
        }
        return best;
    }

    // CurImageFile: the first entry, replaced by each later one both wider and taller (the directory's bytes: 0 is 0 here)
    private static int LargestCursor(ReadOnlySpan<byte> file, int count)
    {
        int best = 0;
        for (int i = 1; i < count; i++)
        {
            var e = file.Slice(6 + 16 * i, 16);
            var m = file.Slice(6 + 16 * best, 16);
            if (e[0] > m[0] && e[1] > m[1]) best = i;
        }
        return best;
    }
}
