using System.Runtime.InteropServices;
using DiffusersSharp.Imaging;
using SkiaSharp;

namespace DiffusersSharp.Server;

/// <summary>
/// Reads an edit's mask in either convention: OpenAI's (a PNG whose fully or partly transparent pixels, alpha &lt; 128, are
/// the area to repaint) when the mask has any transparency, else diffusers' (grayscale, white = repaint).
/// </summary>
public static class MaskImage
{
    /// <summary>The mask as one grayscale channel, white where the image is repainted.</summary>
    public static Image Decode(byte[] encoded)
    {
        using var bitmap = SKBitmap.Decode(encoded)
            ?? throw new ApiException(400, "mask: not a readable PNG/JPEG/WebP image", "mask");
        if (bitmap.Width > Image.MaxSide || bitmap.Height > Image.MaxSide)
            throw new ApiException(400, $"mask: the image is {bitmap.Width}x{bitmap.Height}; at most {Image.MaxSide} a side", "mask");
        using var rgba = bitmap.Copy(SKColorType.Rgba8888);
        var bytes = new byte[rgba.ByteCount];
        Marshal.Copy(rgba.GetPixels(), bytes, 0, bytes.Length);
        int w = rgba.Width, h = rgba.Height, row = rgba.RowBytes;
        bool transparent = false;
        for (int y = 0; y < h && !transparent; y++)
            for (int x = 0; x < w; x++)
                if (bytes[y * row + x * 4 + 3] < 255) { transparent = true; break; }
        var gray = new byte[w * h];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int s = y * row + x * 4;
                gray[y * w + x] = transparent
                    ? (byte)(bytes[s + 3] < 128 ? 255 : 0)
                    : (byte)((bytes[s] * 19595 + bytes[s + 1] * 38470 + bytes[s + 2] * 7471 + 0x8000) >> 16);
            }
        return new Image(w, h, 1, gray);
    }
}
