using System.Buffers.Binary;

namespace DiffusersSharp.Imaging;

/// <summary>
/// A GIF's first frame as PIL opens it (<c>GifImagePlugin</c> and <c>GifDecode.c</c>, the same for frame 0 from Pillow
/// 9.4 to 12.3) and <c>convert("RGB")</c> turns it, as tightly packed unpremultiplied RGBA: mode "P" through the frame's
/// colour table (its local one, else the global one; an index past the table is black, as since Pillow 10.1), or "L"
/// (the index as a gray level) when there is no table or the table is the gray ramp 0, 1, 2, …. A pixel of the
/// transparent index keeps that index's colour (PIL's <c>convert("RGB")</c> drops the transparency), with alpha 0.
/// The canvas is the logical screen (grown to hold the frame); around the frame it is index 0, or the transparent
/// index when there is one (not the background colour). Image data that ends before every pixel of the frame has a
/// value is an error, as in PIL ("image file is truncated"): its sub-blocks are read on past an empty one, as PIL reads
/// them, into whatever follows (another frame, the trailer), and an end code that comes early ends nothing where the
/// file has more than PIL has read (PIL reads 64 KiB at a time, and decodes on when it reads more). A code past the table
/// is an error too; data after the last pixel is not read.
/// </summary>
internal static class GifDecoder
{
    public static bool IsGif(ReadOnlySpan<byte> data) => data.Length >= 6 && (data[..6].SequenceEqual("GIF87a"u8) || data[..6].SequenceEqual("GIF89a"u8));

    private static DiffusersException Truncated() => new("the image data is truncated");

    public static byte[] DecodeFirstFrame(ReadOnlySpan<byte> gif, out int width, out int height)
    {
        if (gif.Length < 13) throw Truncated();
        width = BinaryPrimitives.ReadUInt16LittleEndian(gif[6..]);
        height = BinaryPrimitives.ReadUInt16LittleEndian(gif[8..]);
        int flags = gif[10], pos = 13;
        byte[]? global = null;
        if ((flags & 0x80) != 0) global = ReadTable(gif, ref pos, flags);
        int transparency = -1;
        while (true)
        {
            if (pos >= gif.Length || gif[pos] == (byte)';') throw new DiffusersException("the GIF has no image");
            byte tag = gif[pos++];
            if (tag == (byte)'!')
            {
                if (pos >= gif.Length) throw Truncated();
                byte label = gif[pos++];
                bool first = true;
                while (true) // the extension's sub-blocks; a graphic control extension's first one holds the transparency
                {
                    if (pos >= gif.Length) throw Truncated();
                    int n = gif[pos++];
                    if (n == 0) break;
                    if (pos + n > gif.Length) throw Truncated();
                    if (first && label == 0xF9 && n >= 4 && (gif[pos] & 1) != 0) transparency = gif[pos + 3];
                    first = false;
                    pos += n;
                }
            }
            else if (tag == (byte)',')
            {
                if (pos + 9 > gif.Length) throw Truncated();
                var d = gif.Slice(pos, 9);
                int x0 = BinaryPrimitives.ReadUInt16LittleEndian(d), y0 = BinaryPrimitives.ReadUInt16LittleEndian(d[2..]);
                int w = BinaryPrimitives.ReadUInt16LittleEndian(d[4..]), h = BinaryPrimitives.ReadUInt16LittleEndian(d[6..]);
                int frameFlags = d[8];
                pos += 9;
                byte[]? palette = global;
                if ((frameFlags & 0x80) != 0) palette = ReadTable(gif, ref pos, frameFlags);
                width = Math.Max(width, x0 + w);
                height = Math.Max(height, y0 + h);
                Image.CheckSize(width, height);
                if (pos >= gif.Length) throw Truncated();
                int minCodeSize = gif[pos++];
                var indices = new byte[(long)width * height];
                if (transparency >= 0) Array.Fill(indices, (byte)transparency);
                Lzw(gif, pos, minCodeSize, indices, width, x0, y0, w, h, interlaced: (frameFlags & 0x40) != 0);
                var rgba = new byte[indices.Length * 4];
                for (int i = 0; i < indices.Length; i++)
                {
                    int v = indices[i], o = 4 * i;
                    if (palette is null) rgba[o] = rgba[o + 1] = rgba[o + 2] = (byte)v;
                    else if (3 * v + 3 <= palette.Length)
                    {
                        rgba[o] = palette[3 * v];
                        rgba[o + 1] = palette[3 * v + 1];
                        rgba[o + 2] = palette[3 * v + 2];
                    }
                    rgba[o + 3] = v == transparency ? (byte)0 : (byte)255;
                }
                return rgba;
            }
            // any other byte is skipped, as PIL skips it
        }
    }

    // A colour table of 2^(flags' low 3 bits + 1) entries at pos
    private static byte[]? ReadTable(ReadOnlySpan<byte> gif, ref int pos, int flags)
    {
        int size = 3 << ((flags & 7) + 1);
        if (pos + size > gif.Length) throw Truncated();
        var table = PaletteOrNull(gif.Slice(pos, size));
        pos += size;
        return table;
    }

    // null where the table is the gray ramp (PIL's _is_palette_needed: then the frame is mode "L")
    private static byte[]? PaletteOrNull(ReadOnlySpan<byte> table)
    {
        for (int i = 0; i < table.Length; i += 3)
            if (!(table[i] == i / 3 && table[i + 1] == i / 3 && table[i + 2] == i / 3)) return table.ToArray();
        return null;
    }

    private const int TableSize = 4096;

    // ImageFile.MAXBLOCK: what PIL's load reads of the file at a time
    private const int ReadSize = 65536;

    // PIL's next read, or its "image file is truncated" where the file has no more
    private static long MoreData(long read, int length) => read < length ? read + ReadSize : throw Truncated();

    // GifDecode.c: codes grow to 12 bits and stay there once the table is full; a clear code before the first code is
    // skipped; the first code after a clear must be a literal; a code may be the next free one (the KwKwK case)
    private static void Lzw(ReadOnlySpan<byte> gif, int pos, int minCodeSize, byte[] indices, int width, int x0, int y0, int w, int h, bool interlaced)
    {
        if (minCodeSize > 12) throw new DiffusersException("the image data is damaged (LZW code size above 12)");
        if (w == 0 || h == 0) return;
        int clear = 1 << minCodeSize, end = clear + 1;
        var prefix = new int[TableSize];
        var suffix = new byte[TableSize];
        var stack = new byte[TableSize + 1];
        int next = clear + 2, codeSize = minCodeSize + 1, codeMask = (1 << codeSize) - 1;
        int state = 2; // 2: right after a clear, 3: decoding
        int lastCode = 0;
        byte lastData = 0;
        int bitBuffer = 0, bitCount = 0, blockLeft = 0;
        int x = 0, y = 0, step = interlaced ? 8 : 1, pass = interlaced ? 1 : 0;
        // PIL's ImageFile.load hands GifDecode.c the file in reads of 64 KiB from the frame's data on; the decoder starts a
        // data sub-block only when all of it has been read (a size byte of 0 is an empty block: it reads on), and returns
        // for more at the end code; where the file has no more, PIL fails: "image file is truncated"
        long read = pos + ReadSize;
        while (true)
        {
            while (bitCount < codeSize)
            {
                if (blockLeft == 0)
                {
                    while (pos >= Math.Min(read, gif.Length) || pos + 1 + gif[pos] > Math.Min(read, gif.Length))
                        read = MoreData(read, gif.Length);
                    blockLeft = gif[pos++];
                    continue;
                }
                bitBuffer |= gif[pos++] << bitCount;
                bitCount += 8;
                blockLeft--;
            }
            int c = bitBuffer & codeMask;
            bitBuffer >>= codeSize;
            bitCount -= codeSize;
            if (c == clear)
            {
                next = clear + 2;
                codeSize = minCodeSize + 1;
                codeMask = (1 << codeSize) - 1;
                state = 2;
                continue;
            }
            if (c == end) // before the frame's last pixel: PIL reads more of the file and decodes on after it
            {
                read = MoreData(read, gif.Length);
                continue;
            }
            int count;
            if (state == 2)
            {
                if (c > clear) throw new DiffusersException("the image data is damaged (an LZW code that is not in the table)");
                lastData = (byte)c;
                lastCode = c;
                stack[0] = (byte)c;
                count = 1;
                state = 3;
            }
            else
            {
                int thisCode = c;
                if (c > next) throw new DiffusersException("the image data is damaged (an LZW code that is not in the table)");
                int top = TableSize + 1;
                if (c == next)
                {
                    stack[--top] = lastData;
                    c = lastCode;
                }
                while (c >= clear)
                {
                    if (top <= 0 || c >= TableSize) throw new DiffusersException("the image data is damaged (an LZW code that is not in the table)");
                    stack[--top] = suffix[c];
                    c = prefix[c];
                }
                stack[--top] = (byte)c;
                lastData = (byte)c;
                if (next < TableSize)
                {
                    suffix[next] = (byte)c;
                    prefix[next] = lastCode;
                    if (next == codeMask && codeSize < 12)
                    {
                        codeSize++;
                        codeMask = (1 << codeSize) - 1;
                    }
                    next++;
                }
                lastCode = thisCode;
                count = TableSize + 1 - top;
                Array.Copy(stack, top, stack, 0, count);
            }
            for (int i = 0; i < count; i++)
            {
                indices[(long)(y0 + y) * width + x0 + x] = stack[i];
                if (++x < w) continue;
                x = 0;
                y += step;
                while (y >= h) // the next interlace pass, or the frame is done
                {
                    switch (pass)
                    {
                        case 1: y = 4; pass = 2; break;
                        case 2: step = 4; y = 2; pass = 3; break;
                        case 3: step = 2; y = 1; pass = 0; break;
                        default: return;
                    }
                }
            }
        }
    }
}
