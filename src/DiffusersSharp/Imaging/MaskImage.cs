namespace DiffusersSharp.Imaging;

/// <summary>
/// Reads an inpainting mask in either convention: OpenAI's (a PNG whose fully or partly transparent pixels, alpha &lt; 128, are
/// the area to repaint) when the mask has any transparency, else diffusers' (grayscale, white = repaint). An edit without a
/// mask takes it from the image's own transparency, as OpenAI's API does (<see cref="FromTransparency"/>). The server's
/// edits and the <c>IImageGenerator</c> read masks through it. Files are turned upright by their EXIF orientation, as
/// <see cref="Image.LoadImage(byte[], bool)"/> reads the image they go with (diffusers' <c>load_image</c>), so a mask
/// drawn on the image as shown fits it. An unreadable or oversized file is a <see cref="DiffusersException"/> naming
/// <c>field</c>.
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
            gray[i] = transparent ? (byte)(rgba[s + 3] < 128 ? 255 : 0) : Image.Luma(rgba[s], rgba[s + 1], rgba[s + 2]);
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

    /// <summary>
    /// The pixels as tightly packed RGBA (unpremultiplied, <see cref="Image"/>'s decoder, upright by the EXIF orientation),
    /// and whether any is not fully opaque.
    /// </summary>
    private static (byte[] Rgba, int Width, int Height, bool Transparent) Read(byte[] encoded, string field)
    {
        ArgumentNullException.ThrowIfNull(encoded);
        byte[] rgba;
        int w, h;
        try { rgba = Image.DecodeRgba(encoded, out w, out h, exifTranspose: true); }
        catch (DiffusersException e) { throw new DiffusersException($"{field}: {e.Message}", e); }
        bool transparent = false;
        for (int i = 3; i < rgba.Length && !transparent; i += 4) transparent = rgba[i] < 255;
        return (rgba, w, h, transparent);
    }
}
