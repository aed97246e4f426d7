using System.Buffers.Binary;

namespace DiffusersSharp.Imaging;

// The pixel kinds of a TIFF page as PIL maps its tags to a mode and raw mode, and the pixels in RGBA
internal static partial class TiffDecoder
{
    private enum Kind { Gray, GrayAlpha, Rgb, RgbUnassociated, RgbAssociated, Palette, PaletteAlpha, Cmyk, YCbCr }

    private readonly record struct PixelLayout(Kind Kind, bool Invert);

    // PIL's OPEN_INFO table, for the kinds this reader takes; the rest is PIL's "unknown pixel mode" or refused here
    private static PixelLayout Layout(long photometric, int bps, int spp, long[] extra, bool big)
    {
        string what = $"PhotometricInterpretation {photometric}, {spp} samples of {bps} bits, ExtraSamples ({string.Join(", ", extra)})";
        if (photometric == 2 && spp == 4 && extra.Length == 0 && bps is 8 or 16) extra = [2]; // PIL: RGBA, "missing ExtraSamples"
        if (spp != (photometric switch { 2 or 6 => 3, 5 => 4, _ => 1 }) + extra.Length) throw PilRefuses($"{what} (unknown pixel mode)");
        switch (photometric)
        {
            case 0 or 1 when spp == 1 && bps is 1 or 2 or 4 or 8:
                return new(Kind.Gray, photometric == 0);
            case 0 or 1 when spp == 1 && bps == 16 && (photometric == 1 || !big): // PIL has no big-endian min-is-white 16-bit mode
                return new(Kind.Gray, false);
            case 1 when spp == 2 && bps == 8 && extra[0] == 2:
                return new(Kind.GrayAlpha, false);
            case 2 when bps == 8 && (spp == 3 || (extra.Skip(1).All(e => e == 0) && (extra[0] is 0 or 1 or 2 || (spp == 4 && extra[0] == 999)))):
            case 2 when bps == 16 && (spp == 3 || (spp == 4 && extra[0] is 0 or 1 or 2)):
                return new(spp == 3 || extra[0] == 0 ? Kind.Rgb : extra[0] == 1 ? Kind.RgbAssociated : Kind.RgbUnassociated, false);
            case 3 when spp == 1 && bps is 1 or 2 or 4 or 8:
                return new(Kind.Palette, false);
            case 3 when spp == 2 && bps == 8 && extra[0] == 2:
                return new(Kind.PaletteAlpha, false);
            case 5 when (bps == 8 && extra.All(e => e == 0)) || (bps == 16 && spp == 4 && !big): // "CMYK", "CMYKX", "CMYKXX", "CMYK;16L"
                return new(Kind.Cmyk, false);
            case 6 when bps == 8 && spp == 3: // "RGB" from "RGBX": libtiff's RGBA raster
                return new(Kind.YCbCr, false);
        }
        if (spp == 1 && bps is 12 or 32) throw Refused($"{what}: {bps}-bit samples");
        throw PilRefuses($"{what} (unknown pixel mode)");
    }

    // FillOrder other than 1: PIL's OPEN_INFO has FillOrder 2 for 1/2/4/8-bit gray and palette, little endian 16-bit
    // gray (min-is-black) and 8-bit RGB; its own reader (uncompressed, chunky) has no raw mode "L;IR" (8-bit min-is-white)
    // nor "P;1R", "P;2R", "P;4R"
    private static void CheckFillOrder(long fillOrder, PixelLayout layout, long photometric, int bps, int spp, bool big, bool rawChunky)
    {
        string what = $"FillOrder {fillOrder} with PhotometricInterpretation {photometric}, {spp} samples of {bps} bits";
        bool inTable = fillOrder == 2 && layout.Kind switch
        {
            Kind.Gray => bps <= 8 || (photometric == 1 && !big),
            Kind.Palette => true,
            Kind.Rgb => spp == 3 && bps == 8,
            _ => false,
        };
        if (!inTable) throw PilRefuses($"{what} (unknown pixel mode)");
        if (rawChunky && ((layout.Kind == Kind.Gray && layout.Invert && bps == 8) || (layout.Kind == Kind.Palette && bps < 8)))
            throw PilRefuses($"{what}, uncompressed (unknown raw mode)");
    }

    // PlanarConfiguration 2 uncompressed, as PIL's own reader takes it (whatever SamplesPerPixel says): plane number i
    // unpacked with letter i of the kind's raw mode, an 8-bit band ("RGBA": R, G, B, A; "L;I": L, so a min-is-white
    // plane is not inverted; "RGB;16L": R, G, B, 8 bits of 16-bit samples), or PIL fails where that letter is no band
    // of its mode ("RGBa", "LA", "PA", "RGBAX", "CMYKX", "I;16")
    private static PixelLayout RawPlanes(PixelLayout layout, int bps, int spp)
    {
        const string why = "PlanarConfiguration 2, uncompressed";
        if (spp == 1)
        {
            if (bps == 16) throw PilRefuses($"16-bit samples with {why} (unknown raw mode)");
            if (bps is 2 or 4 || (bps == 1 && layout.Kind == Kind.Palette)) // "P;1"[0]: P, 8 bits; "1;I"[0]: 1
                throw Garbled($"{bps}-bit samples with {why}", "it reads them as 8-bit samples");
            return layout with { Invert = false };
        }
        bool letters = layout.Kind switch
        {
            Kind.Rgb => true,
            Kind.RgbUnassociated or Kind.Cmyk => spp == 4,
            _ => false,
        };
        if (!letters) throw PilRefuses($"{spp} samples of PIL's mode {PilMode(layout.Kind, spp)} with {why} (unknown raw mode)");
        if (bps != 8) throw Garbled($"{bps}-bit samples with {why}", "it reads them as 8-bit samples");
        return layout;
    }

    // PlanarConfiguration 2 compressed, as PIL reads it through libtiff: one plane for each band of PIL's mode (strips of
    // more samples than bands are an error, tiles' other planes are not read), and a 4-band RGBA whose libtiff
    // ExtraSamples is 0 or 1 (libtiff sets a missing one to 0) unpremultiplied as "RGBa"
    private static PixelLayout LibtiffPlanes(PixelLayout layout, int spp, long[] extra, bool tiled, out int planes)
    {
        planes = spp;
        if (spp == 1) return layout;
        int bands = layout.Kind switch { Kind.Rgb => spp == 3 ? 3 : 4, Kind.GrayAlpha or Kind.PaletteAlpha => 2, _ => 4 };
        if (spp > bands && !tiled)
            throw PilRefuses($"{spp} samples in planes (PlanarConfiguration 2) of compressed strips (PIL's libtiff reader takes the {bands} of its mode {PilMode(layout.Kind, spp)})");
        planes = Math.Min(spp, bands);
        return layout.Kind == Kind.RgbUnassociated && extra.Length == 0 ? layout with { Kind = Kind.RgbAssociated } : layout;
    }

    private static string PilMode(Kind kind, int spp) => kind switch
    {
        Kind.Gray => "L",
        Kind.GrayAlpha => "LA",
        Kind.Rgb => spp == 3 ? "RGB" : "RGBX",
        Kind.Palette => "P",
        Kind.PaletteAlpha => "PA",
        Kind.Cmyk => "CMYK",
        _ => "RGBA",
    };

    private static byte[] ToRgba(byte[] plane, int width, int height, int rowBytes, PixelLayout layout, int bps, int spp, bool big, byte[]? palette)
    {
        var rgba = new byte[(long)width * height * 4];
        int hi = big ? 0 : 1; // the high byte of a 16-bit sample
        int colours = palette is null ? 0 : palette.Length / 3;
        for (int y = 0; y < height; y++)
        {
            int row = y * rowBytes;
            for (int x = 0; x < width; x++)
            {
                long o = ((long)y * width + x) * 4;
                byte r, g, b, a = 255;
                switch (layout.Kind)
                {
                    case Kind.Gray or Kind.Palette when bps < 8:
                    {
                        int bit = x * bps, v = (plane[row + bit / 8] >> (8 - bps - bit % 8)) & ((1 << bps) - 1);
                        if (layout.Kind == Kind.Palette) { r = palette![v]; g = palette[colours + v]; b = palette[2 * colours + v]; }
                        else
                        {
                            byte level = (byte)(v * 255 / ((1 << bps) - 1));
                            r = g = b = layout.Invert ? (byte)(255 - level) : level;
                        }
                        break;
                    }
                    case Kind.Gray when bps == 16:
                    {
                        int at = row + 2 * x;
                        int v = big ? BinaryPrimitives.ReadUInt16BigEndian(plane.AsSpan(at)) : BinaryPrimitives.ReadUInt16LittleEndian(plane.AsSpan(at));
                        r = g = b = (byte)Math.Min(v, 255); // PIL's "I;16" to "RGB" clips
                        break;
                    }
                    case Kind.Gray or Kind.GrayAlpha:
                    {
                        byte v = plane[row + x * spp];
                        r = g = b = layout.Invert ? (byte)(255 - v) : v;
                        break;
                    }
                    case Kind.Palette or Kind.PaletteAlpha:
                    {
                        int v = plane[row + x * spp];
                        r = palette![v]; g = palette[colours + v]; b = palette[2 * colours + v];
                        break;
                    }
                    case Kind.Cmyk:
                    {
                        // PIL's cmyk2rgb: nk - c * nk / 255 (rounded as MULDIV255), nk = 255 - k; 16-bit samples by their high byte
                        int at = row + x * spp * (bps / 8), step = bps / 8, lo = bps == 16 ? hi : 0;
                        int nk = 255 - plane[at + 3 * step + lo];
                        r = (byte)(nk - MulDiv255(plane[at + lo], nk));
                        g = (byte)(nk - MulDiv255(plane[at + step + lo], nk));
                        b = (byte)(nk - MulDiv255(plane[at + 2 * step + lo], nk));
                        break;
                    }
                    default:
                    {
                        int at = row + x * spp * (bps / 8), step = bps / 8, lo = bps == 16 ? hi : 0;
                        r = plane[at + lo]; g = plane[at + step + lo]; b = plane[at + 2 * step + lo];
                        if (layout.Kind != Kind.Rgb) a = plane[at + 3 * step + lo];
                        if (layout.Kind == Kind.RgbAssociated)
                        {
                            // PIL's unpackRGBa: black where alpha is 0, else min(255, c * 255 / a) truncated
                            if (a == 0) r = g = b = 0;
                            else if (a != 255)
                            {
                                r = (byte)Math.Min(255, r * 255 / a);
                                g = (byte)Math.Min(255, g * 255 / a);
                                b = (byte)Math.Min(255, b * 255 / a);
                            }
                        }
                        break;
                    }
                }
                rgba[o] = r;
                rgba[o + 1] = g;
                rgba[o + 2] = b;
                rgba[o + 3] = layout.Kind is Kind.Rgb or Kind.Gray or Kind.Palette or Kind.Cmyk ? (byte)255 : a;
            }
        }
        return rgba;
    }

    // Pillow's MULDIV255: a * b / 255 rounded, as ((t >> 8) + t) >> 8 with t = a * b + 128
    private static int MulDiv255(int a, int b)
    {
        int t = a * b + 128;
        return ((t >> 8) + t) >> 8;
    }
}
