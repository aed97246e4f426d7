namespace DiffusersSharp.Imaging;

/// <summary>
/// Inpainting of the masked area only (diffusers' <c>padding_mask_crop</c>, A1111's "only masked"): the region around the
/// mask (<see cref="GetCropRegion"/>), the aspect-keeping resizes (<see cref="Resize"/>) and the paste of the result back
/// onto the original image (<see cref="ApplyOverlay"/>).
/// </summary>
public static partial class ImageProcessor
{
    /// <summary>
    /// diffusers' <c>VaeImageProcessor.get_crop_region</c>: the smallest box holding every non-black pixel of
    /// <paramref name="mask"/> (after PIL's <c>convert("L")</c>), widened by <paramref name="pad"/> pixels on each side within
    /// the image, then grown about its centre to the aspect ratio of <paramref name="width"/> × <paramref name="height"/>
    /// (the size the pipeline runs at): the side that is short by <c>d = int(desired − actual)</c> pixels gets
    /// <c>d // 2</c> before and the rest after, shifted back inside the image where it overruns and cut to the image
    /// where it is still too long. An all-black mask has no region unless the padding makes one (diffusers then fails in
    /// PIL's crop): refused, as a negative <paramref name="pad"/> is.
    /// </summary>
    public static CropRegion GetCropRegion(Image mask, int width, int height, int pad = 0)
    {
        ArgumentNullException.ThrowIfNull(mask);
        if (width <= 0 || height <= 0) throw new DiffusersException($"GetCropRegion: the size must be positive, got {width}x{height}");
        if (pad < 0) throw new DiffusersException($"GetCropRegion: the padding must be 0 or more pixels, got {pad}");
        var gray = Grayscale(mask);
        int w = mask.Width, h = mask.Height;
        var columnMasked = new bool[w];
        var rowMasked = new bool[h];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                if (gray[y * w + x] != 0) columnMasked[x] = rowMasked[y] = true;

        // 1. the rectangle holding every masked pixel: the unmasked columns and rows on each side
        int cropLeft = 0, cropRight = 0, cropTop = 0, cropBottom = 0;
        while (cropLeft < w && !columnMasked[cropLeft]) cropLeft++;
        while (cropRight < w && !columnMasked[w - 1 - cropRight]) cropRight++;
        while (cropTop < h && !rowMasked[cropTop]) cropTop++;
        while (cropBottom < h && !rowMasked[h - 1 - cropBottom]) cropBottom++;

        // 2. the padding, within the image (long: a padding near int.MaxValue must not wrap)
        int x1 = (int)Math.Max((long)cropLeft - pad, 0), y1 = (int)Math.Max((long)cropTop - pad, 0);
        int x2 = (int)Math.Min((long)w - cropRight + pad, w), y2 = (int)Math.Min((long)h - cropBottom + pad, h);
        if (y2 == y1) throw NoRegion(pad, x1, y1, x2, y2);   // diffusers divides by the height next

        // 3. grown to the processing size's aspect ratio (Python's float division, int() truncation and floor division)
        double ratioCropRegion = (double)(x2 - x1) / (y2 - y1);
        double ratioProcessing = (double)width / height;
        if (ratioCropRegion > ratioProcessing)
        {
            double desiredHeight = (x2 - x1) / ratioProcessing;
            int diff = (int)(desiredHeight - (y2 - y1));
            (y1, y2) = Grow(y1, y2, diff, h);
        }
        else
        {
            double desiredWidth = (y2 - y1) * ratioProcessing;
            int diff = (int)(desiredWidth - (x2 - x1));
            (x1, x2) = Grow(x1, x2, diff, w);
        }
        if (x2 <= x1 || y2 <= y1) throw NoRegion(pad, x1, y1, x2, y2);
        return new CropRegion(x1, y1, x2, y2);
    }

    /// <summary>One side of step 3 of <see cref="GetCropRegion"/>: <paramref name="diff"/> more pixels, kept inside [0, <paramref name="size"/>].</summary>
    private static (int Start, int End) Grow(int start, int end, int diff, int size)
    {
        int half = diff >> 1;   // Python's diff // 2: the floor, below 0 too
        start -= half;
        end += diff - half;
        if (end >= size)
        {
            int over = end - size;
            end -= over;
            start -= over;
        }
        if (start < 0)
        {
            end -= start;
            start = 0;
        }
        if (end >= size) end = size;
        return (start, end);
    }

    private static DiffusersException NoRegion(int pad, int x1, int y1, int x2, int y2) => new(
        $"GetCropRegion: the mask has no masked (non-black) pixel, and a padding of {pad} gives no region to crop ({x1}, {y1}, {x2}, {y2})");

    /// <summary>
    /// diffusers' <c>VaeImageProcessor.resize</c> of a PIL image: <see cref="ResizeMode.Default"/> stretches it with
    /// <paramref name="resample"/> (the processor's <c>resample</c>, Lanczos), <see cref="ResizeMode.Fill"/> and
    /// <see cref="ResizeMode.Crop"/> keep its aspect ratio (<see cref="ImageResize.ResizeAndFill"/>,
    /// <see cref="ImageResize.ResizeAndCrop"/>; RGB results).
    /// </summary>
    public static Image Resize(Image image, int height, int width, ResizeMode resizeMode = ResizeMode.Default,
        ResampleFilter resample = ResampleFilter.Lanczos) => resizeMode switch
        {
            ResizeMode.Default => ImageResize.Resize(image, width, height, resample),
            ResizeMode.Fill => ImageResize.ResizeAndFill(image, width, height),
            ResizeMode.Crop => ImageResize.ResizeAndCrop(image, width, height),
            _ => throw new ArgumentOutOfRangeException(nameof(resizeMode), resizeMode, null),
        };

    /// <summary>
    /// diffusers' <c>VaeImageProcessor.apply_overlay</c>: the inpainted <paramref name="image"/> put back into
    /// <paramref name="initImage"/>. With <paramref name="cropCoords"/> it is first resized over the region (resize mode
    /// "crop") and pasted there on a black canvas of the original's size; then the original is composited over it with
    /// the inverted <paramref name="mask"/> (its "L" values) as alpha (PIL's premultiplied paste, unpremultiply and
    /// <c>alpha_composite</c>, integer for integer): where the mask is black the original's pixels come back unchanged,
    /// where it is white the generated ones, and grey blends the two. The result has the original's size and is RGB.
    /// Follows diffusers' later fixes of 0.25.1's <c>apply_overlay</c>, which read the region's (x2, y2) as its width and
    /// height (#6417, 0.26.0) and resized the original and the mask to the generated size instead of pasting at the
    /// original's (#8793, 0.32.0); without a region the generated image must have the original's size.
    /// </summary>
    public static Image ApplyOverlay(Image mask, Image initImage, Image image, CropRegion? cropCoords = null)
    {
        ArgumentNullException.ThrowIfNull(mask);
        ArgumentNullException.ThrowIfNull(initImage);
        ArgumentNullException.ThrowIfNull(image);
        int width = initImage.Width, height = initImage.Height;
        if (mask.Width != width || mask.Height != height)
            throw new DiffusersException($"ApplyOverlay: the mask ({mask.Width}x{mask.Height}) must have the size of the original image ({width}x{height})");

        byte[] background;
        if (cropCoords is { } r)
        {
            if (r.X1 < 0 || r.Y1 < 0 || r.Width <= 0 || r.Height <= 0)
                throw new DiffusersException($"ApplyOverlay: the crop region ({r.X1}, {r.Y1}, {r.X2}, {r.Y2}) is empty or starts outside the image");
            background = new byte[width * height * 3];
            ImageResize.Paste(background, width, height, ImageResize.ResizeAndCrop(image, r.Width, r.Height), r.X1, r.Y1);
        }
        else
        {
            if (image.Width != width || image.Height != height)
                throw new DiffusersException($"ApplyOverlay: without a crop region the generated image ({image.Width}x{image.Height}) must have the size of the original ({width}x{height})");
            background = image.ToRgb().Pixels;
        }

        var gray = Grayscale(mask);
        var init = initImage.ToRgb().Pixels;
        var result = new byte[width * height * 3];
        for (int i = 0; i < width * height; i++)
        {
            uint inverted = 255u - gray[i];   // ImageOps.invert
            // init_image_masked: a transparent RGBa canvas, the original pasted through the inverted mask (premultiplied,
            // PIL's BLEND against 0), then converted to RGBA (unpremultiplied)
            uint alpha = Div255(255u * inverted);
            for (int c = 0; c < 3; c++)
            {
                uint premultiplied = Div255(init[3 * i + c] * inverted);
                uint source = alpha is 0 or 255 ? premultiplied : Math.Min(255u * premultiplied / alpha, 255u);
                result[3 * i + c] = alpha == 0 ? background[3 * i + c] : Composite(source, alpha, background[3 * i + c]);
            }
        }
        return new Image(width, height, 3, result);
    }

    /// <summary>PIL's <c>DIV255</c>: <c>v / 255</c> rounded, in integers.</summary>
    private static uint Div255(uint v)
    {
        uint t = v + 128;
        return ((t >> 8) + t) >> 8;
    }

    /// <summary>PIL's <c>ImagingAlphaComposite</c> of one channel over an opaque background (7 bits of precision).</summary>
    private static byte Composite(uint source, uint sourceAlpha, byte destination)
    {
        const int precision = 7;
        uint blend = 255u * (255u - sourceAlpha);
        uint outAlpha255 = sourceAlpha * 255u + blend;
        uint coef1 = sourceAlpha * 255u * 255u * (1u << precision) / outAlpha255;
        uint coef2 = 255u * (1u << precision) - coef1;
        uint t = source * coef1 + destination * coef2 + (0x80u << precision);
        return (byte)((((t >> 8) + t) >> 8) >> precision);
    }

    /// <summary>PIL's <c>convert("L")</c> of an image's pixels (a grayscale image as it is).</summary>
    private static byte[] Grayscale(Image image)
    {
        if (image.Channels == 1) return image.Pixels;
        var gray = new byte[image.Width * image.Height];
        for (int i = 0; i < gray.Length; i++)
            gray[i] = Image.Luma(image.Pixels[3 * i], image.Pixels[3 * i + 1], image.Pixels[3 * i + 2]);
        return gray;
    }
}
