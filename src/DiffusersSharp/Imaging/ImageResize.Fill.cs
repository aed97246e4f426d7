namespace DiffusersSharp.Imaging;

/// <summary>
/// diffusers' aspect-keeping resizes (<c>VaeImageProcessor._resize_and_fill</c> and <c>_resize_and_crop</c>, its
/// <c>resize_mode</c> "fill" and "crop") and the PIL crop and paste they are made of.
/// </summary>
public static partial class ImageResize
{
    /// <summary>
    /// diffusers' <c>_resize_and_fill</c>: the image resized with Lanczos to fit inside <paramref name="width"/> ×
    /// <paramref name="height"/> keeping its aspect ratio (the other side <c>floor(side · target / source)</c>), centred
    /// on a black RGB canvas; the bands left above and below (or left and right) are filled with its edge row (column)
    /// stretched over them: PIL's default (bicubic) resize of the empty box on that edge, which extrapolates the two
    /// outermost rows (1.125 · edge − 0.125 · next). As in PIL, the second band starts right after the image and may
    /// leave a last row (column) black when the two bands differ by one. Always RGB, as PIL's <c>Image.new("RGB")</c>.
    /// </summary>
    public static Image ResizeAndFill(Image image, int width, int height)
    {
        ArgumentNullException.ThrowIfNull(image);
        CheckTarget(width, height);
        double ratio = (double)width / height, srcRatio = (double)image.Width / image.Height;
        int srcW = ratio < srcRatio ? width : (int)((long)image.Width * height / image.Height);
        int srcH = ratio >= srcRatio ? height : (int)((long)image.Height * width / image.Width);
        var resized = Resize(image, CheckFit(srcW, image, width, height), CheckFit(srcH, image, width, height), ResampleFilter.Lanczos);
        var canvas = new byte[width * height * 3];
        Paste(canvas, width, height, resized, width / 2 - srcW / 2, height / 2 - srcH / 2);
        if (ratio < srcRatio)
        {
            int fill = height / 2 - srcH / 2;
            if (fill > 0)
            {
                Paste(canvas, width, height, Resize(resized, width, fill, ResampleFilter.Bicubic, (0, 0, width, 0)), 0, 0);
                Paste(canvas, width, height, Resize(resized, width, fill, ResampleFilter.Bicubic, (0, resized.Height, width, resized.Height)),
                    0, fill + srcH);
            }
        }
        else if (ratio > srcRatio)
        {
            int fill = width / 2 - srcW / 2;
            if (fill > 0)
            {
                Paste(canvas, width, height, Resize(resized, fill, height, ResampleFilter.Bicubic, (0, 0, 0, height)), 0, 0);
                Paste(canvas, width, height, Resize(resized, fill, height, ResampleFilter.Bicubic, (resized.Width, 0, resized.Width, height)),
                    fill + srcW, 0);
            }
        }
        return new Image(width, height, 3, canvas);
    }

    /// <summary>
    /// diffusers' <c>_resize_and_crop</c>: the image resized with Lanczos to cover <paramref name="width"/> ×
    /// <paramref name="height"/> keeping its aspect ratio, centred, the excess cut off. Always RGB.
    /// </summary>
    public static Image ResizeAndCrop(Image image, int width, int height)
    {
        ArgumentNullException.ThrowIfNull(image);
        CheckTarget(width, height);
        double ratio = (double)width / height, srcRatio = (double)image.Width / image.Height;
        int srcW = ratio > srcRatio ? width : (int)((long)image.Width * height / image.Height);
        int srcH = ratio <= srcRatio ? height : (int)((long)image.Height * width / image.Width);
        var resized = Resize(image, CheckFit(srcW, image, width, height), CheckFit(srcH, image, width, height), ResampleFilter.Lanczos);
        var canvas = new byte[width * height * 3];
        Paste(canvas, width, height, resized, width / 2 - srcW / 2, height / 2 - srcH / 2);
        return new Image(width, height, 3, canvas);
    }

    /// <summary>PIL's <c>image.crop((left, top, right, bottom))</c> of a box inside the image.</summary>
    public static Image Crop(Image image, int left, int top, int right, int bottom)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (left < 0 || top < 0 || right > image.Width || bottom > image.Height || right <= left || bottom <= top)
            throw new DiffusersException($"Cannot crop ({left}, {top}, {right}, {bottom}) from a {image.Width}x{image.Height} image: the box must lie inside it and be non-empty");
        int c = image.Channels, w = right - left, h = bottom - top;
        var pixels = new byte[w * h * c];
        for (int y = 0; y < h; y++)
            Buffer.BlockCopy(image.Pixels, ((top + y) * image.Width + left) * c, pixels, y * w * c, w * c);
        return new Image(w, h, c, pixels);
    }

    /// <summary>
    /// PIL's <c>canvas.paste(image, (x, y))</c> on an RGB canvas: clipped to the canvas, a grayscale image replicated to
    /// RGB (PIL converts it to the canvas's mode).
    /// </summary>
    internal static void Paste(byte[] canvas, int canvasW, int canvasH, Image image, int x, int y)
    {
        var rgb = image.ToRgb();
        int x0 = Math.Max(x, 0), x1 = Math.Min(x + rgb.Width, canvasW);
        if (x1 <= x0) return;
        for (int row = Math.Max(y, 0); row < Math.Min(y + rgb.Height, canvasH); row++)
            Buffer.BlockCopy(rgb.Pixels, ((row - y) * rgb.Width + x0 - x) * 3, canvas, (row * canvasW + x0) * 3, (x1 - x0) * 3);
    }

    private static void CheckTarget(int width, int height)
    {
        if (width <= 0 || height <= 0)
            throw new DiffusersException($"Cannot resize to {width}x{height}: both sides must be positive");
    }

    /// <summary>A side of the aspect-keeping resize, refused where it rounds down to 0 (PIL cannot make an empty image).</summary>
    private static int CheckFit(int side, Image image, int width, int height) => side > 0 ? side
        : throw new DiffusersException(
            $"Cannot fit a {image.Width}x{image.Height} image to {width}x{height} keeping its aspect ratio: one side would be 0 pixels");
}
