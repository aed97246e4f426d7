using System.Buffers.Binary;

namespace DiffusersSharp.Imaging;

/// <summary>
/// The first page of a TIFF file as PIL reads it (<c>TiffImagePlugin</c> of Pillow 9.4: its own reader for uncompressed
/// data, libtiff for the rest, then <c>convert("RGB")</c>), as tightly packed unpremultiplied RGBA: little and big
/// endian, strips and tiles, chunky or planar, compression none, PackBits, LZW and Deflate (codes 8 and 32946), with or
/// without the horizontal predictor (2); 1/2/4/8-bit grayscale (min-is-white inverted) and palette, 8-bit gray + alpha,
/// RGB, RGB with extra samples (an associated alpha is unpremultiplied as PIL's "RGBa" unpacking does, then dropped as
/// <c>convert("RGB")</c> drops every alpha), 16-bit grayscale (clipped to 0-255, as PIL converts its mode "I;16") and
/// 16-bit RGB(A) (the high byte), CMYK with 0-2 extra samples (8-bit, and 16-bit little endian by the high byte, as PIL
/// 9.4 has them) turned to RGB by Pillow's <c>cmyk2rgb</c>, compressed YCbCr as libtiff's RGBA reader gives it to PIL
/// (<see cref="DecodeYCbCr"/>; uncompressed, PIL reads it garbled: refused). FillOrder 2 (bits reversed) where PIL's
/// table has it (1/2/4/8-bit gray and palette, 16-bit gray, RGB): each stored byte reversed before it is decompressed,
/// as libtiff does. Planar files as PIL reads them: compressed, libtiff's planes (a 4-sample RGB without ExtraSamples
/// unpremultiplied); uncompressed, PIL's own reader unpacks each plane with one letter of the raw mode, so a single
/// min-is-white plane is not inverted, and 1-bit palette and 2/4/16-bit planes, which it reads garbled, are refused.
/// What this reader does not take (JPEG-in-TIFF, Lab, floats, signed or 12/32-bit samples, BigTIFF) is refused naming
/// the tag and its value.
/// </summary>
internal static partial class TiffDecoder
{
    /// <summary>The signatures PIL's <c>TiffImagePlugin._accept</c> takes (classic TIFF and BigTIFF, both byte orders).</summary>
    public static bool IsTiff(ReadOnlySpan<byte> d) =>
        d.Length >= 4 && (d[..4].SequenceEqual("II*\0"u8) || d[..4].SequenceEqual("MM\0*"u8) || d[..4].SequenceEqual("II\0*"u8)
            || d[..4].SequenceEqual("MM*\0"u8) || d[..4].SequenceEqual("II+\0"u8) || d[..4].SequenceEqual("MM\0+"u8));

    private static DiffusersException Truncated() => new("the image data is truncated");

    // A kind PIL reads: an error the image folder does not skip (the script would train on the image)
    private static DiffusersException Refused(string why) =>
        new NotDecodedImageException($"a TIFF image of a kind PIL (and so diffusers) reads and DiffusersSharp does not: {why}; convert it to PNG");

    // A kind PIL refuses too
    private static DiffusersException PilRefuses(string why) => new($"not a TIFF image PIL reads: {why}");

    private static DiffusersException Damaged(string why) => new($"the TIFF image data is damaged: {why}");

    // A kind PIL reads as other pixels than the file holds
    private static DiffusersException Garbled(string what, string how) =>
        new($"a TIFF image of {what}, which PIL (and so diffusers) reads garbled ({how}) or fails on; convert it to PNG");

    private const int ImageWidth = 256, ImageLength = 257, BitsPerSample = 258, Compression = 259, Photometric = 262,
        FillOrder = 266, StripOffsets = 273, Orientation = 274, SamplesPerPixel = 277, RowsPerStrip = 278,
        StripByteCounts = 279, PlanarConfiguration = 284, Predictor = 317, ColorMap = 320, TileWidth = 322,
        TileLength = 323, TileOffsets = 324, TileByteCounts = 325, ExtraSamples = 338, SampleFormat = 339;

    /// <summary>
    /// The first page's pixels; <paramref name="orientation"/> is its Orientation tag (0 where it has none), which PIL's
    /// <c>getexif</c> gives for a TIFF and <c>exif_transpose</c> applies.
    /// </summary>
    public static byte[] DecodeFirstPage(ReadOnlySpan<byte> file, out int width, out int height, out int orientation)
    {
        if (file.Length < 8) throw Truncated();
        bool big = file[0] == (byte)'M';
        int version = big ? BinaryPrimitives.ReadUInt16BigEndian(file[2..]) : BinaryPrimitives.ReadUInt16LittleEndian(file[2..]);
        if (version == 43) throw Refused("BigTIFF (version 43)");
        if (version != 42) throw Refused($"version {version} (its byte order mark and version disagree)");
        var tags = ReadIfd(file, big, U32(file, 4, big), out var floats);

        long w = tags.Get(ImageWidth, 0)[0], h = tags.Get(ImageLength, 0)[0];
        Image.CheckSize((int)Math.Clamp(w, 0, int.MaxValue), (int)Math.Clamp(h, 0, int.MaxValue));
        width = (int)w;
        height = (int)h;
        orientation = (int)Math.Clamp(tags.Get(Orientation, 0)[0], 0, 9);

        long compression = tags.Get(Compression, 1)[0];
        if (compression is 6 or 7) throw Refused($"JPEG-compressed (Compression {compression})");
        if (compression is not (1 or 5 or 8 or 32946 or 32773)) throw Refused($"Compression {compression}");
        long photometric = tags.Get(Photometric, 0)[0];
        if (photometric is not (0 or 1 or 2 or 3 or 5 or 6))
            throw Refused($"PhotometricInterpretation {photometric}{photometric switch { 4 => " (transparency mask)", 8 => " (CIE Lab)", _ => "" }}");
        long[] format = tags.Get(SampleFormat, 1);
        if (format.Any(f => f != 1)) throw Refused($"SampleFormat {string.Join(", ", format)}{(format.Contains(3) ? " (floating point)" : format.Contains(2) ? " (signed integers)" : "")}");

        // PIL's bits-per-sample tuple: cut to the samples per pixel, or one value repeated for each
        long[] bits = tags.Get(BitsPerSample, 1);
        long[] extra = tags.Get(ExtraSamples);
        long samples = tags.Get(SamplesPerPixel, 1)[0];
        if (samples > 6) throw PilRefuses($"SamplesPerPixel {samples} (invalid value for samples per pixel)");
        if (samples < 1) throw PilRefuses($"SamplesPerPixel {samples} (unknown data organization)"); // a signed tag may say -1
        if (samples < bits.Length) bits = bits[..(int)samples];
        else if (samples > bits.Length && bits.Length == 1) bits = Enumerable.Repeat(bits[0], (int)samples).ToArray();
        if (bits.Length != samples || samples < 1) throw PilRefuses($"SamplesPerPixel {samples} with BitsPerSample {string.Join(", ", bits)} (unknown data organization)");
        int bps = (int)bits[0];
        if (bits.Any(b => b != bps)) throw Refused($"BitsPerSample {string.Join(", ", bits)}");
        int spp = (int)samples;
        var layout = Layout(photometric, bps, spp, extra, big);
        long planarConfiguration = tags.Get(PlanarConfiguration, 1)[0];
        if (planarConfiguration is not (1 or 2)) throw Refused($"PlanarConfiguration {planarConfiguration}");
        long fillOrder = tags.Get(FillOrder, 1)[0];
        if (fillOrder != 1) CheckFillOrder(fillOrder, layout, photometric, bps, spp, big, rawChunky: compression == 1 && planarConfiguration != 2);
        if (layout.Kind == Kind.YCbCr && compression == 1)
            throw Garbled("uncompressed YCbCr samples", "its own reader takes them for RGB, 4 bytes a pixel, or a plane each");
        int planes = spp; // the planes read, PlanarConfiguration 2
        if (planarConfiguration == 2)
            layout = compression == 1 ? RawPlanes(layout, bps, spp) : LibtiffPlanes(layout, spp, extra, tags.ContainsKey(TileWidth), out planes);
        bool planar = spp > 1 && planarConfiguration == 2; // one plane of 8- or 16-bit samples each (Layout takes no other)

        long predictor = tags.Get(Predictor, 1)[0];
        bool compressedWithPredictor = compression is 5 or 8 or 32946 && predictor != 1; // libtiff's predictor goes with LZW and Deflate
        if (compressedWithPredictor && (predictor != 2 || bps is not (8 or 16)))
            throw Refused($"Predictor {predictor} with {bps}-bit samples");
        // FillOrder 2: libtiff reverses the bits of each byte of a strip or tile before it decompresses it, PIL's own
        // reader (uncompressed) each byte it unpacks, except a plane's (its raw mode's letter has no "R")
        var coding = new Coding(compression, compressedWithPredictor, fillOrder == 2 && !(compression == 1 && planarConfiguration == 2), bps, big);
        if (layout.Kind == Kind.YCbCr) return DecodeYCbCr(file, tags, floats, width, height, orientation, coding, planarConfiguration == 2);

        // The page's packed rows, from its strips or tiles: chunky, or (planar) one plane of each sample, interleaved here
        int bitsPerPixel = bps * spp;
        long rowBytesLong = ((long)width * bitsPerPixel + 7) / 8;
        if (rowBytesLong * height > Array.MaxLength) throw Refused($"{width}x{height} pixels of {bitsPerPixel} bits: over 2 GiB");
        int rowBytes = (int)rowBytesLong;
        byte[] plane;
        if (!planar)
            plane = ReadPlane(file, tags, width, height, bitsPerPixel, 0, coding, spp);
        else
        {
            plane = new byte[rowBytes * height];
            int sampleBytes = bps / 8, pixelBytes = sampleBytes * spp;
            for (int p = 0; p < planes; p++)
            {
                var one = ReadPlane(file, tags, width, height, bps, p, coding, 1);
                for (int y = 0; y < height; y++)
                    for (int x = 0; x < width; x++)
                        Buffer.BlockCopy(one, (y * width + x) * sampleBytes, plane, y * rowBytes + x * pixelBytes + p * sampleBytes, sampleBytes);
            }
        }

        byte[]? palette = null;
        if (photometric == 3)
        {
            long[] map = tags.Get(ColorMap);
            if (map.Length != 3 << bps) throw Damaged($"its ColorMap has {map.Length} values, not {3 << bps} for {bps}-bit indices");
            palette = map.Select(v => (byte)(v >> 8)).ToArray(); // PIL: b // 256, all reds, then greens, then blues
        }
        return ToRgba(plane, width, height, rowBytes, layout, bps, spp, big, palette);
    }

    // A tag's values, or `fallback` where the page does not have it (or has it empty)
    private static long[] Get(this Dictionary<int, long[]> tags, int tag, params long[] fallback) =>
        tags.TryGetValue(tag, out var v) && v.Length > 0 ? v : fallback;

    // One plane (of all the samples, or, planar, of sample number `index`), as packed rows of `bitsPerPixel` bits a
    // pixel: its strips, or its tiles, which number the same for each plane and come plane after plane
    private static byte[] ReadPlane(ReadOnlySpan<byte> file, Dictionary<int, long[]> tags, int width, int height, int bitsPerPixel, int index,
        Coding coding, int spp)
    {
        int rowBytes = (int)(((long)width * bitsPerPixel + 7) / 8);
        var plane = new byte[rowBytes * height];
        if (tags.ContainsKey(TileWidth))
        {
            long tw = tags.Get(TileWidth, 0)[0], th = tags.Get(TileLength, 0)[0];
            if (tw <= 0 || th <= 0 || tw > Image.MaxSide || th > Image.MaxSide) throw Damaged($"its tiles are {tw}x{th} pixels");
            if (tw * bitsPerPixel % 8 != 0) throw Refused($"TileWidth {tw} of {bitsPerPixel}-bit pixels (tiles that end inside a byte)");
            int across = (int)((width + tw - 1) / tw), down = (int)((height + th - 1) / th);
            long[] offsets = tags.Get(TileOffsets), counts = tags.Get(TileByteCounts);
            long first = (long)index * across * down;
            if (offsets.Length < first + (long)across * down) throw Damaged($"{offsets.Length} tile offsets for {across * down} tiles{(index > 0 ? " a plane" : "")}");
            long tileBytes = tw * bitsPerPixel / 8 * th;
            if (tileBytes > Array.MaxLength) throw Damaged($"its tiles are {tw}x{th} pixels");
            int tileRowBytes = (int)(tw * bitsPerPixel / 8);
            var tile = new byte[tileBytes];
            for (int ty = 0; ty < down; ty++)
                for (int tx = 0; tx < across; tx++)
                {
                    long i = first + ty * across + tx;
                    Chunk(file, offsets[i], counts.Length > i ? counts[i] : -1, coding, tile);
                    if (coding.Predictor) Undo(tile, tileRowBytes, coding.Bps, spp, coding.Big);
                    int x0 = (int)(tx * tw), y0 = (int)(ty * th);
                    int byteX = (int)((long)x0 * bitsPerPixel / 8);
                    int bytes = Math.Min(tileRowBytes, rowBytes - byteX);
                    for (int y = 0; y < th && y0 + y < height; y++)
                        Buffer.BlockCopy(tile, y * tileRowBytes, plane, (y0 + y) * rowBytes + byteX, bytes);
                }
        }
        else
        {
            long rps = Math.Clamp(tags.Get(RowsPerStrip, height)[0], 1, height);
            int strips = (int)((height + rps - 1) / rps);
            long[] offsets = tags.Get(StripOffsets), counts = tags.Get(StripByteCounts);
            long first = (long)index * strips;
            if (offsets.Length < first + strips) throw Damaged($"{offsets.Length} strip offsets for {strips} strips{(index > 0 ? " a plane" : "")}");
            for (int s = 0; s < strips; s++)
            {
                int rows = (int)Math.Min(rps, height - s * rps);
                var strip = new byte[rows * rowBytes];
                long i = first + s;
                Chunk(file, offsets[i], counts.Length > i ? counts[i] : -1, coding, strip);
                if (coding.Predictor) Undo(strip, rowBytes, coding.Bps, spp, coding.Big);
                Buffer.BlockCopy(strip, 0, plane, (int)(s * rps * rowBytes), strip.Length);
            }
        }
        return plane;
    }

    private static uint U32(ReadOnlySpan<byte> f, int at, bool big) =>
        big ? BinaryPrimitives.ReadUInt32BigEndian(f[at..]) : BinaryPrimitives.ReadUInt32LittleEndian(f[at..]);

    private static ushort U16(ReadOnlySpan<byte> f, int at, bool big) =>
        big ? BinaryPrimitives.ReadUInt16BigEndian(f[at..]) : BinaryPrimitives.ReadUInt16LittleEndian(f[at..]);

    // The first IFD's numeric tags: the integer ones (BYTE, SHORT, LONG and their signed kinds) as integers, and every
    // numeric one in `floats` as libtiff's TIFFReadDirEntryFloatArray reads it (RATIONAL n / d in float, 0 where d is 0;
    // DOUBLE clamped to float's range); a tag of another type, or a fractional one whose values are not in the file, is
    // left out
    private static Dictionary<int, long[]> ReadIfd(ReadOnlySpan<byte> file, bool big, uint offset, out Dictionary<int, float[]> floats)
    {
        if (offset > file.Length - 2L) throw Truncated();
        int at = (int)offset, count = U16(file, at, big);
        if (at + 2L + 12L * count > file.Length) throw Truncated();
        var tags = new Dictionary<int, long[]>();
        floats = [];
        for (int i = 0; i < count; i++)
        {
            int e = at + 2 + 12 * i;
            int tag = U16(file, e, big), type = U16(file, e + 2, big);
            uint n = U32(file, e + 4, big);
            int size = type switch { 1 or 6 => 1, 3 or 8 => 2, 4 or 9 or 11 or 13 => 4, 5 or 10 or 12 => 8, _ => 0 };
            bool integer = type is 1 or 3 or 4 or 6 or 8 or 9 or 13;
            if (size == 0 || (floats.ContainsKey(tag) && (!integer || tags.ContainsKey(tag)))) continue;
            long bytes = (long)n * size;
            int data = e + 8;
            if (bytes > 4)
            {
                uint o = U32(file, e + 8, big);
                if (o + bytes > file.Length)
                {
                    if (integer) throw Truncated();
                    continue;
                }
                data = (int)o;
            }
            var values = new long[integer ? n : 0];
            var fractions = new float[n];
            for (int k = 0; k < n; k++)
            {
                int p = data + k * size;
                if (integer)
                {
                    values[k] = type switch
                    {
                        1 => file[p],
                        6 => (sbyte)file[p],
                        3 => U16(file, p, big),
                        8 => (short)U16(file, p, big),
                        9 => (int)U32(file, p, big),
                        _ => U32(file, p, big),
                    };
                    fractions[k] = values[k];
                }
                else
                {
                    uint a = U32(file, p, big), b = size == 8 ? U32(file, p + 4, big) : 0;
                    fractions[k] = type switch
                    {
                        11 => BitConverter.Int32BitsToSingle((int)a),
                        12 => (float)Math.Clamp(BitConverter.Int64BitsToDouble((long)(big ? (ulong)a << 32 | b : (ulong)b << 32 | a)), -float.MaxValue, float.MaxValue),
                        5 => b == 0 ? 0f : (float)a / (float)b,
                        _ => b == 0 ? 0f : (float)(int)a / (float)b,
                    };
                }
            }
            if (integer && !tags.ContainsKey(tag)) tags[tag] = values;
            floats.TryAdd(tag, fractions);
        }
        return tags;
    }
}

/// <summary>
/// An image PIL (and so diffusers) reads and DiffusersSharp does not decode: an error the image folder stops on
/// rather than skipping the file, since the script would train on it.
/// </summary>
internal sealed class NotDecodedImageException(string message) : DiffusersException(message);
