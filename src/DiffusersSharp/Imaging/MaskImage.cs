using System.Runtime.InteropServices;
using SkiaSharp;

namespace DiffusersSharp.Imaging;

/// <summary>
/// Reads an inpainting mask in either convention: OpenAI's (a PNG whose fully or partly transparent pixels, alpha &lt; 128, are
/// the area to repaint) when the mask has any transparency, else diffusers' (grayscale, white = repaint). An edit without a
/// mask takes it from the image's own transparency, as OpenAI's API does (<see cref="FromTransparency"/>). The server's
/// edits and the <c>IImageGenerator</c> read masks through it. An unreadable or oversized file is a <see cref="DiffusersException"/>
/// naming <c>field</c>.
/// </summary>
public static class MaskImage
{
    /// <summary>The mask as one grayscale channel, white where the image is repainted.</summary>
    public static Image Decode(byte[] encoded, string field = "mask")
    {
        var (rgba, w, h, transparent) = Read(encoded, field);
        var gray = new byte[w * h];
        for (int i = 0; i < gray.Length; i++)
        {
            int s = i * 4;
            gray[i] = transparent
                ? (byte)(rgba[s + 3] < 128 ? 255 : 0)
                : (byte)((rgba[s] * 19595 + rgba[s + 1] * 38470 + rgba[s + 2] * 7471 + 0x8000) >> 16);
        }
        return new Image(w, h, 1, gray);
    }

    /// <summary>
    /// The mask of an edit sent without one: the image's transparent area (alpha &lt; 128, as in <see cref="Decode"/>), or
    /// null when the image is opaque (the edit is then image to image).
    /// </summary>
    public static Image? FromTransparency(byte[] encodedImage, string field = "image")
    {
        var (rgba, w, h, transparent) = Read(encodedImage, field);
        if (!transparent) return null;
        var gray = new byte[w * h];
        for (int i = 0; i < gray.Length; i++) gray[i] = (byte)(rgba[i * 4 + 3] < 128 ? 255 : 0);
        return new Image(w, h, 1, gray);
    }

    /// <summary>The pixels as tightly packed RGBA (unpremultiplied), and whether any is not fully opaque.</summary>
    private static (byte[] Rgba, int Width, int Height, bool Transparent) Read(byte[] encoded, string field)
    {
        ArgumentNullException.ThrowIfNull(encoded);
        using var bitmap = SKBitmap.Decode(encoded)
            ?? throw new DiffusersException($"{field}: not a readable PNG/JPEG/WebP image");
        if (bitmap.Width > Image.MaxSide || bitmap.Height > Image.MaxSide)
            throw new DiffusersException($"{field}: the image is {bitmap.Width}x{bitmap.Height}; at most {Image.MaxSide} a side");
        using var rgba = bitmap.Copy(SKColorType.Rgba8888);
        int w = rgba.Width, h = rgba.Height, row = rgba.RowBytes;
        var bytes = new byte[row * h];
        Marshal.Copy(rgba.GetPixels(), bytes, 0, bytes.Length);
        var packed = new byte[w * h * 4];
        for (int y = 0; y < h; y++) Buffer.BlockCopy(bytes, y * row, packed, y * w * 4, w * 4);
        bool transparent = false;
        for (int i = 3; i < packed.Length && !transparent; i += 4) transparent = packed[i] < 255;
        return (packed, w, h, transparent);
    }
}
