namespace DiffusersSharp.Imaging;

/// <summary>
/// Image resizing that follows Pillow's <c>Image.resize</c> (libImaging/Resample.c) for 8-bit images:
/// separable convolution, horizontal pass first, kernels widened by the scale when downscaling, weights
/// computed in double, normalised, then turned into 22-bit fixed point and accumulated in integers with
/// rounding, exactly as Pillow does for 8-bit bands. NEAREST follows Pillow's scaling transform
/// (<c>ImagingScaleAffine</c>): the source position starts at half a step and advances by <c>in / out</c> in double,
/// truncated per pixel. Same size → an unchanged copy, as Pillow.
/// </summary>
public static partial class ImageResize
{
    private const int PrecisionBits = 32 - 8 - 2;

    /// <summary>Resizes <paramref name="image"/> to <paramref name="width"/> × <paramref name="height"/>.</summary>
    public static Image Resize(Image image, int width, int height, ResampleFilter filter = ResampleFilter.Lanczos)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (width <= 0 || height <= 0)
            throw new DiffusersException($"Cannot resize to {width}x{height}: both sides must be positive");
        if (width == image.Width && height == image.Height)
            return new Image(width, height, image.Channels, (byte[])image.Pixels.Clone());
        if (filter == ResampleFilter.Nearest) return Nearest(image, width, height);
        return Resample(image, width, height, filter, 0, 0, image.Width, image.Height);
    }

    /// <summary>
    /// Pillow's <c>image.resize((width, height), filter, box=(left, top, right, bottom))</c>: the source region
    /// <paramref name="box"/> (which may be empty in one direction: its edge row or column is extrapolated, as
    /// diffusers' "fill" resize asks) resized to <paramref name="width"/> × <paramref name="height"/>. A box of whole
    /// pixels and of the output's size is a crop; otherwise the two passes of <see cref="Resize(Image, int, int, ResampleFilter)"/>,
    /// each run where the size or the box asks for it (Pillow's <c>ImagingResampleInner</c>). Not for NEAREST.
    /// </summary>
    internal static Image Resize(Image image, int width, int height, ResampleFilter filter, (int Left, int Top, int Right, int Bottom) box)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (width <= 0 || height <= 0)
            throw new DiffusersException($"Cannot resize to {width}x{height}: both sides must be positive");
        if (filter == ResampleFilter.Nearest) throw new ArgumentOutOfRangeException(nameof(filter), filter, "a box resize takes a convolution filter");
        var (left, top, right, bottom) = box;
        if (left < 0 || top < 0 || right > image.Width || bottom > image.Height || right < left || bottom < top)
            throw new DiffusersException($"Cannot resize the box ({left}, {top}, {right}, {bottom}) of a {image.Width}x{image.Height} image");
        if (right - left == width && bottom - top == height) return Crop(image, left, top, right, bottom);
        return Resample(image, width, height, filter, left, top, right, bottom);
    }

    private static Image Resample(Image image, int width, int height, ResampleFilter filter, int left, int top, int right, int bottom)
    {
        (double support, Func<double, double> kernel) = Kernel(filter);
        byte[] pixels = image.Pixels;
        int w = image.Width, h = image.Height, c = image.Channels;
        if (width != w || left != 0 || right != width)
        {
            pixels = Horizontal(pixels, w, h, c, width, left, right, support, kernel);
            w = width;
        }
        if (height != h || top != 0 || bottom != height)
        {
            pixels = Vertical(pixels, w, h, c, height, top, bottom, support, kernel);
            h = height;
        }
        return new Image(w, h, c, pixels);
    }

    private static (double, Func<double, double>) Kernel(ResampleFilter filter) => filter switch
    {
        ResampleFilter.Box => (0.5, x => x > -0.5 && x <= 0.5 ? 1.0 : 0.0),
        ResampleFilter.Bilinear => (1.0, x => { x = Math.Abs(x); return x < 1.0 ? 1.0 - x : 0.0; }),
        ResampleFilter.Hamming => (1.0, Hamming),
        ResampleFilter.Bicubic => (2.0, Bicubic),
        ResampleFilter.Lanczos => (3.0, x => x >= -3.0 && x < 3.0 ? Sinc(x) * Sinc(x / 3.0) : 0.0),
        _ => throw new ArgumentOutOfRangeException(nameof(filter), filter, null),
    };

    private static double Hamming(double x)
    {
        x = Math.Abs(x);
        if (x == 0.0) return 1.0;
        if (x >= 1.0) return 0.0;
        x *= Math.PI;
        return Math.Sin(x) / x * ((double)0.54f + (double)0.46f * Math.Cos(x)); // Pillow uses float literals here
    }

    private static double Bicubic(double x)
    {
        const double a = -0.5;
        x = Math.Abs(x);
        if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
        if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
        return 0.0;
    }

    private static double Sinc(double x)
    {
        if (x == 0.0) return 1.0;
        x *= Math.PI;
        return Math.Sin(x) / x;
    }

    /// <summary>
    /// Pillow's precompute_coeffs + normalize_coeffs_8bpc: per output pixel a window and int weights, over the source
    /// span [<paramref name="in0"/>, <paramref name="in1"/>) (the whole side, or a box's).
    /// </summary>
    private static (int[] bounds, int[] weights, int ksize) Coefficients(int inSize, int in0, int in1, int outSize, double support,
        Func<double, double> kernel)
    {
        double scale = (double)(in1 - in0) / outSize;
        double filterScale = Math.Max(scale, 1.0);
        support *= filterScale;
        int ksize = (int)Math.Ceiling(support) * 2 + 1;
        var bounds = new int[outSize * 2];
        var weights = new int[outSize * ksize];
        var k = new double[ksize];
        double ss = 1.0 / filterScale;
        for (int xx = 0; xx < outSize; xx++)
        {
            double center = in0 + (xx + 0.5) * scale;
            double ww = 0.0;
            int xmin = (int)(center - support + 0.5);
            if (xmin < 0) xmin = 0;
            int xmax = (int)(center + support + 0.5);
            if (xmax > inSize) xmax = inSize;
            xmax -= xmin;
            Array.Clear(k);
            for (int x = 0; x < xmax; x++)
            {
                double wgt = kernel((x + xmin - center + 0.5) * ss);
                k[x] = wgt;
                ww += wgt;
            }
            for (int x = 0; x < xmax; x++)
            {
                if (ww != 0.0) k[x] /= ww;
                double v = k[x] * (1 << PrecisionBits);
                weights[xx * ksize + x] = v < 0 ? (int)(-0.5 + v) : (int)(0.5 + v);
            }
            bounds[xx * 2] = xmin;
            bounds[xx * 2 + 1] = xmax;
        }
        return (bounds, weights, ksize);
    }

    private static byte Clip8(long v)
    {
        if (v >= (1L << PrecisionBits << 8)) return 255;
        if (v <= 0) return 0;
        return (byte)(v >> PrecisionBits);
    }

    private static byte[] Horizontal(byte[] src, int w, int h, int c, int outW, int in0, int in1, double support, Func<double, double> kernel)
    {
        var (bounds, weights, ksize) = Coefficients(w, in0, in1, outW, support, kernel);
        var dst = new byte[outW * h * c];
        for (int y = 0; y < h; y++)
            for (int xx = 0; xx < outW; xx++)
            {
                int xmin = bounds[xx * 2], xmax = bounds[xx * 2 + 1];
                for (int ch = 0; ch < c; ch++)
                {
                    long ss = 1L << (PrecisionBits - 1);
                    for (int x = 0; x < xmax; x++)
                        ss += src[(y * w + x + xmin) * c + ch] * (long)weights[xx * ksize + x];
                    dst[(y * outW + xx) * c + ch] = Clip8(ss);
                }
            }
        return dst;
    }

    private static byte[] Vertical(byte[] src, int w, int h, int c, int outH, int in0, int in1, double support, Func<double, double> kernel)
    {
        var (bounds, weights, ksize) = Coefficients(h, in0, in1, outH, support, kernel);
        var dst = new byte[w * outH * c];
        for (int yy = 0; yy < outH; yy++)
        {
            int ymin = bounds[yy * 2], ymax = bounds[yy * 2 + 1];
            for (int x = 0; x < w; x++)
                for (int ch = 0; ch < c; ch++)
                {
                    long ss = 1L << (PrecisionBits - 1);
                    for (int y = 0; y < ymax; y++)
                        ss += src[((y + ymin) * w + x) * c + ch] * (long)weights[yy * ksize + y];
                    dst[(yy * w + x) * c + ch] = Clip8(ss);
                }
        }
        return dst;
    }

    private static Image Nearest(Image image, int width, int height)
    {
        int c = image.Channels;
        var dst = new byte[width * height * c];
        int[] xs = NearestSources(image.Width, width), ys = NearestSources(image.Height, height);
        for (int y = 0; y < height; y++)
        {
            if (ys[y] < 0) continue;   // Pillow fills a row it cannot map with 0 (never for a whole-image resize)
            for (int x = 0; x < width; x++)
                if (xs[x] >= 0)
                    Buffer.BlockCopy(image.Pixels, (ys[y] * image.Width + xs[x]) * c, dst, (y * width + x) * c, c);
        }
        return new Image(width, height, c, dst);
    }

    /// <summary>
    /// Pillow's nearest source per output pixel (Geometry.c, <c>ImagingScaleAffine</c>): <c>xo = step / 2</c>, then
    /// <c>xo += step</c> per pixel, the source <c>(int)xo</c>. The running sum is not <c>(x + 0.5) · step</c>: where
    /// that lands exactly on a pixel edge (2 → 7 at x = 3: 1.0), the sum is just below it (0.99999…) and Pillow takes
    /// the pixel before. −1 where the source falls outside the image.
    /// </summary>
    private static int[] NearestSources(int inSize, int outSize)
    {
        var sources = new int[outSize];
        double step = (double)inSize / outSize, pos = step * 0.5;
        for (int i = 0; i < outSize; i++, pos += step)
        {
            int s = pos < 0.0 ? -1 : (int)pos;
            sources[i] = s < inSize ? s : -1;
        }
        return sources;
    }
}
