namespace DiffusersSharp.Tests.Imaging;

// The files ImageFormatsGoldenTests builds byte by byte
public partial class ImageFormatsGoldenTests
{
    // make.py's gif_end_code_at: 300x300 pixels of 4 colours, a clear code after each pixel's 3-bit code, an end code
    // after pixel `endAfter` and at the end
    private static byte[] GifEndCodeAt(int endAfter)
    {
        const int w = 300, h = 300;
        var data = new List<byte>();
        int acc = 0, n = 0;
        void Code(int c)
        {
            acc |= c << n;
            n += 3;
            while (n >= 8) { data.Add((byte)acc); acc >>= 8; n -= 8; }
        }
        Code(4);
        for (int i = 0; i < w * h; i++)
        {
            Code((i % w * 7 + i / w * 3) % 4);
            if (i == endAfter) Code(5);
            Code(i < w * h - 1 ? 4 : 5);
        }
        if (n > 0) data.Add((byte)acc);
        var f = new List<byte>("GIF89a"u8.ToArray()) { w % 256, w / 256, h % 256, h / 256, 0x81, 0, 0, 0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255 };
        f.AddRange([(byte)',', 0, 0, 0, 0, w % 256, w / 256, h % 256, h / 256, 0, 2]);
        for (int i = 0; i < data.Count; i += 255)
        {
            int len = Math.Min(255, data.Count - i);
            f.Add((byte)len);
            f.AddRange(data.GetRange(i, len));
        }
        f.AddRange([0, (byte)';']);
        return [.. f];
    }

    // A little endian TIFF of one IFD of SHORT/LONG/SSHORT entries (tag, type, value) after `data` (at offset 8)
    private static byte[] TinyTiff((int Tag, int Type, int Value)[] entries, byte[] data)
    {
        int ifd = 8 + data.Length + data.Length % 2;
        var f = new List<byte> { (byte)'I', (byte)'I', 42, 0, (byte)ifd, (byte)(ifd >> 8), 0, 0 };
        f.AddRange(data);
        if (data.Length % 2 == 1) f.Add(0);
        f.AddRange([(byte)entries.Length, 0]);
        foreach (var (tag, type, value) in entries)
            f.AddRange([(byte)tag, (byte)(tag >> 8), (byte)type, 0, 1, 0, 0, 0, (byte)value, (byte)(value >> 8), (byte)(value >> 16), (byte)(value >> 24)]);
        f.AddRange([0, 0, 0, 0]);
        return [.. f];
    }

    // A one-frame GIF89a of the given palette (2 entries) and indices, LZW with a clear code before each index
    private static byte[] Gif(int w, int h, byte[] palette, byte[] indices)
    {
        const int min = 2, clear = 4, end = 5, size = 3;
        var codes = new List<int> { clear };
        foreach (var i in indices) { codes.Add(i); codes.Add(clear); }
        codes[^1] = end;
        var bytes = new List<byte>();
        int acc = 0, n = 0;
        foreach (var c in codes)
        {
            acc |= c << n;
            n += size;
            while (n >= 8) { bytes.Add((byte)acc); acc >>= 8; n -= 8; }
        }
        if (n > 0) bytes.Add((byte)acc);
        return [.. "GIF89a"u8, (byte)w, 0, (byte)h, 0, 0x80, 0, 0, .. palette, (byte)',', 0, 0, 0, 0, (byte)w, 0, (byte)h, 0, 0,
            min, (byte)bytes.Count, .. bytes, 0, (byte)';'];
    }

    // An 8-bit bottom-up BMP of one row with the given palette (BGR order written) and indices
    private static byte[] Bmp8(int w, int h, (byte R, byte G, byte B)[] palette, byte[] indices)
    {
        var pal = palette.SelectMany(c => new[] { c.B, c.G, c.R, (byte)0 }).ToArray();
        int stride = (w + 3) & ~3;
        var data = new byte[stride * h];
        indices.CopyTo(data, 0);
        int off = 14 + 40 + pal.Length;
        var f = new List<byte>();
        void U16(int v) { f.Add((byte)v); f.Add((byte)(v >> 8)); }
        void U32(int v) { U16(v & 0xFFFF); U16(v >> 16); }
        f.AddRange("BM"u8.ToArray()); U32(off + data.Length); U32(0); U32(off);
        U32(40); U32(w); U32(h); U16(1); U16(8); U32(0); U32(data.Length); U32(2835); U32(2835); U32(palette.Length); U32(0);
        f.AddRange(pal);
        f.AddRange(data);
        return [.. f];
    }

    // An ICO/CUR DIB entry: a 2x2 image of one colour (24-bit, or 1/8-bit with a palette), height doubled for the AND mask
    private static byte[] Dib(int bits, byte[] palette, byte index, (byte R, byte G, byte B) colour)
    {
        var f = new List<byte>();
        void U16(int v) { f.Add((byte)v); f.Add((byte)(v >> 8)); }
        void U32(int v) { U16(v & 0xFFFF); U16(v >> 16); }
        U32(40); U32(2); U32(4); U16(1); U16(bits); U32(0); U32(0); U32(0); U32(0); U32(palette.Length / 4); U32(0);
        f.AddRange(palette);
        for (int row = 0; row < 2; row++) // XOR rows, each padded to 4 bytes
            f.AddRange(bits switch
            {
                24 => [colour.B, colour.G, colour.R, colour.B, colour.G, colour.R, 0, 0],
                8 => [index, index, 0, 0],
                _ => [(byte)(index == 0 ? 0 : 0xC0), 0, 0, 0],
            });
        f.AddRange(new byte[8]); // AND mask rows: opaque
        return [.. f];
    }

    private static byte[] IconFile(int kind, params (int Bits, byte[] Dib)[] entries)
    {
        var f = new List<byte> { 0, 0, (byte)kind, 0, (byte)entries.Length, 0 };
        int offset = 6 + 16 * entries.Length;
        foreach (var (bits, dib) in entries)
        {
            f.AddRange([2, 2, 0, 0, 1, 0, (byte)bits, 0, (byte)dib.Length, (byte)(dib.Length >> 8), 0, 0, (byte)offset, (byte)(offset >> 8), 0, 0]);
            offset += dib.Length;
        }
        foreach (var (_, dib) in entries) f.AddRange(dib);
        return [.. f];
    }
}
