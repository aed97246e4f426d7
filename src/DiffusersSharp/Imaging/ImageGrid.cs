namespace DiffusersSharp.Imaging;

/// <summary>
/// A grid of images, like diffusers' <c>make_image_grid(images, rows, cols)</c>: image i goes to column
/// i % cols, row i / cols; every cell has the first image's size. Empty cells stay black.
/// </summary>
public static class ImageGrid
{
    /// <summary>
    /// Tiles <paramref name="images"/> (same size and channel count) into <paramref name="rows"/> × <paramref name="cols"/>.
    /// Without them: cols = ceil(sqrt(n)), rows = ceil(n / cols).
    /// </summary>
    public static Image Make(IReadOnlyList<Image> images, int? rows = null, int? cols = null)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Count == 0) throw new DiffusersException("Cannot make an image grid of no images");
        int n = images.Count;
        int c = cols ?? (rows is { } r0 ? (n + r0 - 1) / r0 : (int)Math.Ceiling(Math.Sqrt(n)));
        int r = rows ?? (n + c - 1) / c;
        if (r <= 0 || c <= 0) throw new DiffusersException($"Image grid needs positive rows and cols, got {r}x{c}");
        if (r * c < n) throw new DiffusersException($"An image grid of {r} rows x {c} cols cannot hold {n} images");
        int w = images[0].Width, h = images[0].Height, ch = images[0].Channels;
        for (int i = 1; i < n; i++)
            if (images[i].Width != w || images[i].Height != h || images[i].Channels != ch)
                throw new DiffusersException(
                    $"Image grid: image {i} is {images[i]}, but image 0 is {images[0]}; all images must match");
        int gw = c * w;
        var dst = new byte[(long)r * h * gw * ch];
        for (int i = 0; i < n; i++)
        {
            int ox = i % c * w, oy = i / c * h;
            for (int y = 0; y < h; y++)
                Buffer.BlockCopy(images[i].Pixels, y * w * ch, dst, ((oy + y) * gw + ox) * ch, w * ch);
        }
        return new Image(gw, r * h, ch, dst);
    }
}
