using System.Buffers.Binary;
using System.IO.Compression;

namespace DiffusersSharp.Imaging;

// Decompression (none, PackBits, LZW, Deflate), the horizontal predictor
internal static partial class TiffDecoder
{
    // Horizontal differencing undone, per row, sample by sample (16-bit samples in the file's byte order)
    private static void Undo(byte[] data, int rowBytes, int bps, int spp, bool big)
    {
        for (int row = 0; row + rowBytes <= data.Length; row += rowBytes)
        {
            if (bps == 8)
                for (int i = spp; i < rowBytes; i++) data[row + i] += data[row + i - spp];
            else
                for (int i = 2 * spp; i + 1 < rowBytes; i += 2)
                {
                    var cur = data.AsSpan(row + i, 2);
                    var prev = data.AsSpan(row + i - 2 * spp, 2);
                    ushort v = big
                        ? (ushort)(BinaryPrimitives.ReadUInt16BigEndian(cur) + BinaryPrimitives.ReadUInt16BigEndian(prev))
                        : (ushort)(BinaryPrimitives.ReadUInt16LittleEndian(cur) + BinaryPrimitives.ReadUInt16LittleEndian(prev));
                    if (big) BinaryPrimitives.WriteUInt16BigEndian(cur, v); else BinaryPrimitives.WriteUInt16LittleEndian(cur, v);
                }
        }
    }

    // How the strips or tiles are stored: Compression, the horizontal predictor, FillOrder 2's bit order, sample size and byte order
    private readonly record struct Coding(long Compression, bool Predictor, bool ReverseBits, int Bps, bool Big);

    // One strip or tile, decompressed into all of output (libtiff reads a whole strip or tile; less data is an error)
    private static void Chunk(ReadOnlySpan<byte> file, long offset, long count, Coding coding, byte[] output)
    {
        if (offset < 0 || offset > file.Length) throw Truncated();
        var rest = file[(int)offset..];
        if (coding.Compression == 1)
        {
            if (rest.Length < output.Length) throw Truncated();
            rest[..output.Length].CopyTo(output);
            if (coding.ReverseBits) ReverseBits(output);
            return;
        }
        if (count < 0) throw Damaged("a compressed strip or tile has no byte count");
        if (count > rest.Length) throw Truncated();
        var data = rest[..(int)count].ToArray();
        if (coding.ReverseBits) ReverseBits(data);
        int filled = coding.Compression switch
        {
            32773 => PackBits(data, output),
            5 => Lzw(data, output),
            _ => Inflate(data, output),
        };
        if (filled < output.Length) throw Truncated();
    }

    // Each byte's bits in the other order (FillOrder 2: the first pixel in the lowest bit)
    private static void ReverseBits(byte[] data)
    {
        for (int i = 0; i < data.Length; i++)
        {
            uint b = data[i];
            data[i] = (byte)(((b * 0x0802u & 0x22110u) | (b * 0x8020u & 0x88440u)) * 0x10101u >> 16);
        }
    }

    private static int PackBits(ReadOnlySpan<byte> src, byte[] dst)
    {
        int i = 0, o = 0;
        while (i < src.Length && o < dst.Length)
        {
            int n = (sbyte)src[i++];
            if (n >= 0)
            {
                int len = Math.Min(n + 1, Math.Min(src.Length - i, dst.Length - o));
                src.Slice(i, len).CopyTo(dst.AsSpan(o));
                if (len < n + 1 && o + len < dst.Length) return o + len;
                i += n + 1;
                o += len;
            }
            else if (n != -128)
            {
                if (i >= src.Length) break;
                int len = Math.Min(1 - n, dst.Length - o);
                dst.AsSpan(o, len).Fill(src[i++]);
                o += len;
            }
        }
        return o;
    }

    private static int Inflate(byte[] src, byte[] dst)
    {
        try
        {
            using var z = new ZLibStream(new MemoryStream(src), CompressionMode.Decompress);
            int o = 0;
            while (o < dst.Length)
            {
                int n = z.Read(dst, o, dst.Length - o);
                if (n == 0) break;
                o += n;
            }
            return o;
        }
        catch (Exception e) when (e is InvalidDataException or IOException) // zlib's own errors come as ZLibException, an IOException
        {
            throw Damaged($"its Deflate data does not inflate ({e.Message})");
        }
    }

    // TIFF LZW: codes MSB first, 9 to 12 bits, widened one code early; 256 clears, 257 ends
    private static int Lzw(ReadOnlySpan<byte> src, byte[] dst)
    {
        if (src.Length >= 2 && src[0] == 0 && (src[1] & 1) != 0) throw Refused("old-style (LSB-first) LZW compression");
        var prefix = new short[4096];
        var suffix = new byte[4096];
        var length = new short[4096];
        var first = new byte[4096];
        for (int c = 0; c < 256; c++) { suffix[c] = first[c] = (byte)c; length[c] = 1; prefix[c] = -1; }
        int next = 258, size = 9, prev = -1, o = 0;
        long bitPos = 0, totalBits = (long)src.Length * 8;
        while (o < dst.Length && bitPos + size <= totalBits)
        {
            int code = 0;
            for (int k = 0; k < size; k++, bitPos++) code = (code << 1) | ((src[(int)(bitPos >> 3)] >> (7 - (int)(bitPos & 7))) & 1);
            if (code == 257) break;
            if (code == 256)
            {
                next = 258;
                size = 9;
                prev = -1;
                continue;
            }
            int emit;
            if (prev < 0)
            {
                if (code > 255) throw Damaged($"LZW code {code} after a clear code");
                emit = code;
            }
            else
            {
                if (code > next || (code == next && next >= 4096)) throw Damaged($"LZW code {code} past the table's {next} entries");
                if (next < 4096)
                {
                    prefix[next] = (short)prev;
                    suffix[next] = code == next ? first[prev] : first[code];
                    first[next] = first[prev];
                    length[next] = (short)(length[prev] + 1);
                    next++;
                }
                emit = code;
            }
            int len = length[emit], end = o + len;
            for (int c = emit, p = end - 1; c >= 0; c = prefix[c], p--)
                if (p < dst.Length) dst[p] = suffix[c];
            o = Math.Min(end, dst.Length);
            prev = emit;
            if (next + 1 >= (1 << size) && size < 12) size++;
        }
        return o;
    }
}
