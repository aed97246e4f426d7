using DiffusersSharp.Imaging;
using SkiaSharp;

namespace DiffusersSharp.Training;

/// <summary>
/// train_unconditional's image data set: every PNG/JPEG under a folder (recursive, sorted by path), each resized so
/// its shorter side is <see cref="Resolution"/> (bilinear), centre- or randomly cropped to a square, optionally
/// flipped horizontally at random, and normalised to [-1, 1] (<c>ToTensor</c> then <c>Normalize([0.5], [0.5])</c>).
/// Randomness (order, crop, flip) is a pure function of (seed, epoch, index), so a resumed run sees the same data.
/// Files whose header cannot be decoded are found when the data set is opened: skipped with a warning, or an
/// error when <c>skipUnreadable</c> is false.
/// </summary>
public sealed class ImageFolderDataset
{
    private static readonly string[] Extensions = [".png", ".jpg", ".jpeg"];

    /// <summary>
    /// Lists the images of <paramref name="folder"/>; each is read, resized, cropped and flipped as
    /// train_unconditional's transforms do when a batch asks for it.
    /// </summary>
    public ImageFolderDataset(string folder, int resolution, bool centerCrop = false, bool randomFlip = false,
        bool skipUnreadable = true, Action<string>? warn = null)
    {
        if (resolution <= 0) throw new DiffusersException($"resolution must be positive, got {resolution}");
        if (!Directory.Exists(folder))
            throw new DiffusersException($"{folder}: the training data folder does not exist");
        var candidates = Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .Where(f => Extensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
            .OrderBy(f => f, StringComparer.Ordinal).ToList();
        var files = new List<string>(candidates.Count);
        foreach (var f in candidates)
        {
            if (Readable(f)) { files.Add(f); continue; }
            string msg = $"{f}: not a readable PNG/JPEG image";
            if (!skipUnreadable) throw new DiffusersException(msg + " (drop --stop-on-bad-images to skip it with a warning)");
            warn?.Invoke("warning: skipping " + msg);
        }
        if (files.Count == 0)
            throw new DiffusersException(candidates.Count == 0
                ? $"{folder}: no PNG or JPEG images found (searched recursively)"
                : $"{folder}: none of the {candidates.Count} PNG/JPEG files could be read");
        Folder = folder;
        Files = files;
        Resolution = resolution;
        CenterCrop = centerCrop;
        RandomFlip = randomFlip;
    }

    /// <summary>The folder the images come from.</summary>
    public string Folder { get; }
    /// <summary>The image files, sorted by name.</summary>
    public IReadOnlyList<string> Files { get; }
    /// <summary>The square size the images are resized and cropped to.</summary>
    public int Resolution { get; }
    /// <summary>Crop the centre (false: a random crop).</summary>
    public bool CenterCrop { get; }
    /// <summary>Flip horizontally at random.</summary>
    public bool RandomFlip { get; }
    /// <summary>The number of images.</summary>
    public int Count => Files.Count;

    /// <summary>Floats per example: 3 × resolution².</summary>
    public int ExampleSize => 3 * Resolution * Resolution;

    private static bool Readable(string path)
    {
        using var codec = SKCodec.Create(path);
        return codec is not null && codec.Info.Width > 0 && codec.Info.Height > 0;
    }

    /// <summary>The order of the examples in <paramref name="epoch"/> (a seeded Fisher–Yates shuffle).</summary>
    public int[] EpochOrder(long seed, int epoch)
    {
        var order = Enumerable.Range(0, Count).ToArray();
        new Random(MixSeed(seed, epoch, -1)).Shuffle(order);
        return order;
    }

    /// <summary>Writes example <paramref name="index"/> (CHW, [-1, 1]) into <paramref name="dst"/>.</summary>
    public void Load(int index, long seed, int epoch, Span<float> dst)
    {
        if (dst.Length < ExampleSize) throw new ArgumentException("destination too small", nameof(dst));
        string path = Files[index];
        Image img;
        try { img = Image.Load(path).ToRgb(); }
        catch (Exception e) when (e is not DiffusersException)
        {
            throw new DiffusersException($"{path}: cannot decode the image: {e.Message}");
        }
        var rng = new Random(MixSeed(seed, epoch, index));
        int r = Resolution;
        // Resize: the shorter side to r, the other keeping the aspect ratio (torchvision Resize(int)).
        int w = img.Width, h = img.Height;
        (int nw, int nh) = w <= h ? (r, Math.Max(r, (int)((long)r * h / w))) : (Math.Max(r, (int)((long)r * w / h)), r);
        if (nw != w || nh != h) img = ImageResize.Resize(img, nw, nh, ResampleFilter.Bilinear);
        int top, left;
        if (CenterCrop)
        {
            top = (int)Math.Round((nh - r) / 2.0, MidpointRounding.ToEven);
            left = (int)Math.Round((nw - r) / 2.0, MidpointRounding.ToEven);
        }
        else
        {
            top = rng.Next(nh - r + 1);
            left = rng.Next(nw - r + 1);
        }
        bool flip = RandomFlip && rng.NextDouble() < 0.5;
        var px = img.Pixels;
        int plane = r * r;
        for (int y = 0; y < r; y++)
            for (int x = 0; x < r; x++)
            {
                int sx = left + (flip ? r - 1 - x : x);
                int src = ((top + y) * nw + sx) * 3;
                int o = y * r + x;
                dst[o] = px[src] / 127.5f - 1f;
                dst[plane + o] = px[src + 1] / 127.5f - 1f;
                dst[2 * plane + o] = px[src + 2] / 127.5f - 1f;
            }
    }

    internal static int MixSeed(long seed, int epoch, int index)
    {
        ulong z = unchecked((ulong)seed * 0x9E3779B97F4A7C15UL + (ulong)(uint)epoch * 0xBF58476D1CE4E5B9UL + (ulong)(uint)index * 0x94D049BB133111EBUL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return (int)(z & 0x7FFFFFFF);
    }
}
