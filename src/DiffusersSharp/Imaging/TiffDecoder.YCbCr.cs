namespace DiffusersSharp.Imaging;

// YCbCr pages (PhotometricInterpretation 6), as PIL 9.4 reads them: compressed, through libtiff's TIFFRGBAImage (PIL's
// TiffDecode.c _decodeAsRGBA, libtiff 4.5's tif_getimage.c and tif_color.c); uncompressed, PIL's own reader takes the
// samples for RGBX, garbled (refused in DecodeFirstPage)
internal static partial class TiffDecoder
{
    private const int YCbCrCoefficients = 529, YCbCrSubSampling = 530, ReferenceBlackWhite = 532;

    // The subsamplings tif_getimage.c has a put routine for: chunky (PickContigCase), planar (PickSeparateCase: 1x1 only)
    private static readonly (int H, int V)[] ChunkySubsamplings = [(4, 4), (4, 2), (4, 1), (2, 2), (2, 1), (1, 2), (1, 1)];

    private static byte[] DecodeYCbCr(ReadOnlySpan<byte> file, Dictionary<int, long[]> tags, Dictionary<int, float[]> floats, int width, int height,
        int orientation, Coding coding, bool planar)
    {
        // YCbCrSubsampling: two values, else libtiff's default 2, 2 (it ignores a tag of another count)
        long[] sub = tags.Get(YCbCrSubSampling);
        (int hs, int vs) = sub.Length == 2 ? ((int)Math.Clamp(sub[0], 0, 99), (int)Math.Clamp(sub[1], 0, 99)) : (2, 2);
        if (planar ? (hs, vs) != (1, 1) : !ChunkySubsamplings.Contains((hs, vs)))
            throw PilRefuses($"YCbCrSubsampling {hs}, {vs}{(sub.Length == 2 ? "" : " (libtiff's default)")} with PlanarConfiguration {(planar ? 2 : 1)} " +
                "(libtiff's RGBA reader, which PIL reads YCbCr through, has no routine for it)");
        // libtiff ignores either tag where its count is not 3 or 6: its defaults then
        var table = new YCbCrTable(floats.TryGetValue(YCbCrCoefficients, out var luma) && luma.Length == 3 ? luma : [0.299f, 0.587f, 0.114f],
            floats.TryGetValue(ReferenceBlackWhite, out var range) && range.Length == 6 ? range : [0f, 255f, 128f, 255f, 128f, 255f]);

        // libtiff's setorientation (the raster top-left): a flip within each band of rows PIL asks for, a strip or a row
        // of tiles; PIL's load then turns the whole image by the tag (DecodeFirstPage's caller)
        bool flipH = orientation is 2 or 3 or 6 or 7, flipV = orientation is 3 or 4 or 7 or 8;
        var rgba = new byte[(long)width * height * 4];
        int blockSize = hs * vs + 2;
        void Put(int x, int y, byte yy, byte cb, byte cr) => table.ToRgba(yy, cb, cr, rgba.AsSpan((int)(((long)y * width + x) * 4), 4));

        if (planar)
        {
            // gtStripSeparate / gtTileSeparate: one plane of each sample, read as any planar page's
            var planes = new byte[3][];
            for (int p = 0; p < 3; p++) planes[p] = ReadPlane(file, tags, width, height, 8, p, coding, 1);
            for (int i = 0; i < width * height; i++) Put(i % width, i / width, planes[0][i], planes[1][i], planes[2][i]);
            long band = tags.ContainsKey(TileWidth) ? tags.Get(TileLength, 0)[0] : Math.Clamp(tags.Get(RowsPerStrip, height)[0], 1, height);
            Flip(rgba, width, height, (int)Math.Clamp(band, 1, height), flipH, flipV);
            return rgba;
        }

        if (tags.ContainsKey(TileWidth))
        {
            long tw = tags.Get(TileWidth, 0)[0], th = tags.Get(TileLength, 0)[0];
            if (tw <= 0 || th <= 0 || tw > Image.MaxSide || th > Image.MaxSide) throw Damaged($"its tiles are {tw}x{th} pixels");
            int across = (int)((width + tw - 1) / tw), down = (int)((height + th - 1) / th);
            long[] offsets = tags.Get(TileOffsets), counts = tags.Get(TileByteCounts);
            if (offsets.Length < (long)across * down) throw Damaged($"{offsets.Length} tile offsets for {across * down} tiles");
            int tileBlocks = (int)((tw + hs - 1) / hs);
            var tile = new byte[(th + vs - 1) / vs * tileBlocks * blockSize]; // TIFFTileSize: whole blocks
            int rowSize = (int)tw * 3; // TIFFTileRowSize: no subsampling counted, the predictor's row
            for (int ty = 0; ty < down; ty++)
                for (int tx = 0; tx < across; tx++)
                {
                    long i = (long)ty * across + tx;
                    YCbCrChunk(file, offsets[i], counts.Length > i ? counts[i] : -1, coding, tile, $"tile {i}");
                    // PredictorDecodeTile: a tile that its rows do not divide is left as stored (libtiff's error, which
                    // the RGBA reader goes on from)
                    if (coding.Predictor && tile.Length % rowSize == 0) Undo(tile, rowSize, 8, 3, coding.Big);
                    // the put routine's step from one block row to the next: the tile's blocks, but in a tile the image's
                    // right edge cuts, those it covers and its skew, which putcontig8bitYCbCr44tile counts in blocks of
                    // 10 bytes (4*2+2), not 18
                    long shown = Math.Min(tw, width - tx * tw), skew = tw - shown;
                    int step = shown == tw ? tileBlocks * blockSize
                        : (int)((shown + hs - 1) / hs * blockSize + skew / hs * ((hs, vs) == (4, 4) ? 10 : blockSize));
                    for (int y = 0; y < th && ty * th + y < height; y++)
                        for (int x = 0; x < shown; x++)
                        {
                            int at = y / vs * step + x / hs * blockSize;
                            Put((int)(tx * tw + x), (int)(ty * th + y), tile[at + y % vs * hs + x % hs], tile[at + hs * vs], tile[at + hs * vs + 1]);
                        }
                }
            Flip(rgba, width, height, (int)Math.Min(th, height), flipH, flipV);
            return rgba;
        }

        // gtStripContig, one strip a call (PIL asks for RowsPerStrip rows at a time): libtiff decodes the strip's rows
        // rounded up to whole blocks at TIFFScanlineSize bytes a row, a block row's bytes divided by the vertical
        // subsampling (rounded down: 4x4 blocks of an odd number across lose 2 bytes, read as 0 from its fresh buffer)
        int rps = (int)Math.Clamp(tags.Get(RowsPerStrip, height)[0], 1, height);
        int strips = (height + rps - 1) / rps, blocksAcross = (width + hs - 1) / hs, blockRow = blocksAcross * blockSize;
        long[] stripOffsets = tags.Get(StripOffsets), stripCounts = tags.Get(StripByteCounts);
        if (stripOffsets.Length < strips) throw Damaged($"{stripOffsets.Length} strip offsets for {strips} strips");
        int scanline = blockRow / vs;
        for (int s = 0; s < strips; s++)
        {
            int rows = Math.Min(rps, height - s * rps), blockRows = (rows + vs - 1) / vs;
            var decoded = new byte[blockRows * vs * scanline];
            YCbCrChunk(file, stripOffsets[s], stripCounts.Length > s ? stripCounts[s] : -1, coding, decoded, $"strip {s}");
            // horAcc8 refuses rows that are not whole pixels of 3 samples: the strip is left as stored
            if (coding.Predictor && scanline % 3 == 0) Undo(decoded, scanline, 8, 3, coding.Big);
            var strip = new byte[Math.Max(blockRows * blockRow, decoded.Length)];
            decoded.CopyTo(strip, 0);
            for (int y = 0; y < rows; y++)
                for (int x = 0; x < width; x++)
                {
                    int at = (y / vs * blocksAcross + x / hs) * blockSize;
                    Put(x, s * rps + y, strip[at + y % vs * hs + x % hs], strip[at + hs * vs], strip[at + hs * vs + 1]);
                }
        }
        Flip(rgba, width, height, rps, flipH, flipV);
        return rgba;
    }

    // A strip or tile of YCbCr data. libtiff's RGBA reader fails where the data is not in the file, and goes on where it
    // does not decompress whole, with what did: a file DiffusersSharp refuses (its pixels are the decompressor's)
    private static void YCbCrChunk(ReadOnlySpan<byte> file, long offset, long count, Coding coding, byte[] output, string which)
    {
        if (offset < 0 || count < 0 || offset + count > file.Length) Chunk(file, offset, count, coding, output); // its error
        try { Chunk(file, offset, count, coding, output); }
        catch (DiffusersException e) when (e is not NotDecodedImageException)
        {
            throw Garbled($"YCbCr data that does not decompress whole ({which}: {e.Message})", "libtiff's RGBA reader keeps what decompressed and goes on");
        }
    }

    // libtiff's flips of the raster PIL asks for, band of `band` rows by band
    private static void Flip(byte[] rgba, int width, int height, int band, bool flipH, bool flipV)
    {
        var pixels = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, uint>(rgba.AsSpan());
        if (flipH)
            for (int y = 0; y < height; y++) pixels.Slice(y * width, width).Reverse();
        if (flipV)
            for (int y0 = 0; y0 < height; y0 += band)
                for (int a = y0, b = Math.Min(y0 + band, height) - 1; a < b; a++, b--)
                {
                    var top = pixels.Slice(a * width, width).ToArray();
                    pixels.Slice(b * width, width).CopyTo(pixels.Slice(a * width, width));
                    top.CopyTo(pixels.Slice(b * width, width));
                }
    }

    // tif_color.c's TIFFYCbCrToRGBInit and TIFFYCbCrtoRGB: integer tables built in float32 arithmetic, as libtiff
    // builds them, from YCbCrCoefficients (luma) and ReferenceBlackWhite
    private sealed class YCbCrTable
    {
        private readonly int[] _crR = new int[256], _cbB = new int[256], _crG = new int[256], _cbG = new int[256], _y = new int[256];

        public YCbCrTable(float[] luma, float[] refBlackWhite)
        {
            // initYCbCrConversion's checks (PIL: libtiff's RGBA reader fails)
            if (float.IsNaN(luma[0]) || float.IsNaN(luma[1]) || luma[1] == 0 || float.IsNaN(luma[2]))
                throw PilRefuses($"YCbCrCoefficients {string.Join(", ", luma)} (libtiff: 'Invalid values for YCbCrCoefficients tag')");
            if (refBlackWhite.Any(f => !(f > -0x7FFFFFFF + 128f && f < (float)0x7FFFFFFF)))
                throw PilRefuses($"ReferenceBlackWhite {string.Join(", ", refBlackWhite)} (libtiff: 'Invalid values for ReferenceBlackWhite tag')");
            float lumaRed = luma[0], lumaGreen = luma[1], lumaBlue = luma[2];
            float f1 = 2 - 2 * lumaRed;
            int d1 = Fix(Clamp(f1, 0f, 2f));
            float f2 = (float)(lumaRed * f1) / lumaGreen;
            int d2 = -Fix(Clamp(f2, 0f, 2f));
            float f3 = 2 - 2 * lumaBlue;
            int d3 = Fix(Clamp(f3, 0f, 2f));
            float f4 = (float)(lumaBlue * f3) / lumaGreen;
            int d4 = -Fix(Clamp(f4, 0f, 2f));
            for (int i = 0, x = -128; i < 256; i++, x++)
            {
                int cr = (int)ClampW(Code2V(x, refBlackWhite[4] - 128f, refBlackWhite[5] - 128f, 127));
                int cb = (int)ClampW(Code2V(x, refBlackWhite[2] - 128f, refBlackWhite[3] - 128f, 127));
                _crR[i] = (d1 * cr + OneHalf) >> 16;
                _cbB[i] = (d3 * cb + OneHalf) >> 16;
                _crG[i] = d2 * cr;
                _cbG[i] = d4 * cb + OneHalf;
                _y[i] = (int)ClampW(Code2V(x + 128, refBlackWhite[0], refBlackWhite[1], 255));
            }
        }

        private const int OneHalf = 1 << 15;

        // FIX(x): (int32_t)((x) * (1L << 16) + 0.5), the product in float, the sum in double
        private static int Fix(float x) => (int)((double)(float)(x * 65536f) + 0.5);

        // CLAMP, written as !(f >= min) for NaN
        private static float Clamp(float f, float min, float max) => !(f >= min) ? min : f > max ? max : f;

        private static float ClampW(float v) => v < -4096f ? -4096f : v > 4096f ? 4096f : v;

        // Code2V(c, RB, RW, CR): ((c - (int32_t)RB) * (float)CR) / (float)(RW - RB != 0 ? RW - RB : 1)
        private static float Code2V(int c, float rb, float rw, int cr)
        {
            float range = rw - rb;
            return (float)((c - (int)rb) * (float)cr) / (range != 0 ? range : 1f);
        }

        public void ToRgba(byte y, byte cb, byte cr, Span<byte> rgba)
        {
            int luma = _y[y];
            rgba[0] = Byte(luma + _crR[cr]);
            rgba[1] = Byte(luma + ((_cbG[cb] + _crG[cr]) >> 16));
            rgba[2] = Byte(luma + _cbB[cb]);
            rgba[3] = 255;
        }

        private static byte Byte(int v) => (byte)Math.Clamp(v, 0, 255);
    }
}
