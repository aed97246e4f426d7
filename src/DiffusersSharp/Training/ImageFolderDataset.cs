using System.Collections.Concurrent;
using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using SkiaSharp;

namespace DiffusersSharp.Training;

/// <summary>
/// train_unconditional's image data set: the image files of a folder's train split (<see cref="DataSplits"/>:
/// datasets' split rules; every image below the folder where no path names a split; <see cref="ImageFolderExtensions"/>:
/// datasets' image extensions, each file read by its content in the formats <see cref="Imaging.ImageFormats"/> names,
/// the other formats PIL reads refused), or the images its metadata rows name (<see cref="ImageFolderMetadata"/>), sorted by path, turned upright by its
/// EXIF orientation (<see cref="Image.LoadImage(string)"/>: <c>PIL.ImageOps.exif_transpose</c>, as datasets 2.19.0 and
/// later decode an <c>imagefolder</c> image, and so as diffusers' script reads it with a current datasets;
/// docs/Training.md), each resized so
/// its shorter side is <see cref="Resolution"/> (bilinear), centre- or randomly cropped to a square, optionally
/// flipped horizontally at random, and normalised to [-1, 1] (<c>ToTensor</c> then <c>Normalize([0.5], [0.5])</c>).
/// Randomness (order, crop, flip) is a pure function of (seed, epoch, index), so a resumed run sees the same data.
/// Bad files are found when the data set is opened, cheaply for PNG, JPEG and WebP: the header must decode, with sides of at most
/// <see cref="Image.MaxSide"/>, and the file must end with its format's end marker (PNG's IEND chunk, JPEG's EOI; a
/// WebP must hold its RIFF size), else it is decoded whole (as the other formats are); a bad file is skipped with a warning, or an error when <c>skipUnreadable</c> is false.
/// A file that passes and still fails to decode when a batch needs it (damaged inside, or changed since) is an
/// error naming it when <c>skipUnreadable</c> is false; otherwise its place is taken, with one warning, by the next
/// file in sorted order that decodes: a pure function of the files, so a resumed run sees the same data.
/// </summary>
public sealed class ImageFolderDataset
{
    /// <summary>
    /// Lists the images of <paramref name="folder"/>'s train split, leaving out those under <paramref name="excludeFolder"/> (a
    /// training run's output folder inside its data folder, whose files count for no split); each is read, resized, cropped and flipped as
    /// train_unconditional's transforms do when a batch asks for it.
    /// </summary>
    public ImageFolderDataset(string folder, int resolution, bool centerCrop = false, bool randomFlip = false,
        bool skipUnreadable = true, Action<string>? warn = null, string? excludeFolder = null)
    {
        if (resolution <= 0) throw new DiffusersException($"resolution must be positive, got {resolution}");
        if (File.Exists(folder))
            throw new DiffusersException($"{folder}: the training data folder is a file (--data takes a folder of images)") { FilePath = folder };
        if (!Directory.Exists(folder))
            throw new DiffusersException($"{folder}: the training data folder does not exist");
        var listed = ListFiles(folder, warn);
        var inFolder = listed.Where(f => excludeFolder is null || !LocalPaths.IsInside(f, excludeFolder)).ToList();
        int imagesInFolder = inFolder.Count(IsImage);
        Excluded = listed.Count(IsImage) - imagesInFolder;
        // datasets' split rules over every file (any extension) but the output folder's; then the train split's images,
        // or the images its metadata files' rows name
        var byRelative = inFolder.ToDictionary(f => Path.GetRelativePath(folder, f).Replace(Path.DirectorySeparatorChar, '/'), StringComparer.Ordinal);
        var splits = DataSplits.Select(folder, [.. byRelative.Keys]);
        if (splits.Train.FirstOrDefault(ImageFolderExtensions.IsArchive) is { } zip)
            throw new DiffusersException(
                $"{byRelative[zip]}: a zip archive in the train split: datasets' imagefolder loader extracts it and trains on the images inside; " +
                "DiffusersSharp does not read archives: extract it into the data folder (or move it out)")
            { FilePath = byRelative[zip] };
        var metadata = ImageFolderMetadata.TrainImages(folder, splits);
        var candidates = (metadata is { TrainMetadataFiles.Count: > 0 }
            ? metadata.Images
            : splits.Train.Where(IsImage).Select(r => byRelative[r])).Order(StringComparer.Ordinal).ToList();
        if (splits.SplitsFound) SplitNote = Describe(folder, splits, imagesInFolder);
        if (metadata is { TrainMetadataFiles.Count: > 0 })
            MetadataNote = DescribeMetadata(folder, metadata, splits.Train.Where(IsImage).Select(r => byRelative[r]));
        var files = new List<string>(candidates.Count);
        for (int i = 0; i < candidates.Count; i++)
        {
            string f = candidates[i];
            if (i > 0 && f == candidates[i - 1]) // listed twice by datasets' patterns or metadata rows: the verdict of the first
            {
                if (files.Count > 0 && files[^1] == f) files.Add(f);
                continue;
            }
            if (Problem(f) is not { } problem) { files.Add(f); continue; }
            string msg = $"{f}: {problem.Message}";
            if (problem.Refused) throw new DiffusersException(msg) { FilePath = f };
            if (!skipUnreadable) throw new DiffusersException(msg + " (drop --stop-on-bad-images to skip it with a warning)") { FilePath = f };
            warn?.Invoke("warning: skipping " + msg);
        }
        if (files.Count == 0)
            throw new DiffusersException(candidates.Count == 0
                ? $"{folder}: no images found (searched recursively for the extensions of datasets' imagefolder loader: .png, .jpg, .jpeg, .webp, .bmp, .gif, …" +
                  $"{(splits.SplitsFound ? $"; in the train split of {splits.Rule}" : "")})"
                : $"{folder}: none of the {candidates.Count} image files could be read");
        Folder = folder;
        Files = files;
        Resolution = resolution;
        CenterCrop = centerCrop;
        RandomFlip = randomFlip;
        SkipUnreadable = skipUnreadable;
        _warn = warn;
    }

    private readonly Action<string>? _warn;
    // Index of a file that failed to decode during the run → the index read in its place.
    private readonly ConcurrentDictionary<int, int> _replacements = new();

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
    /// <summary>
    /// A file that fails to decode during the run is replaced by the next one that decodes, with a warning (false:
    /// an error).
    /// </summary>
    public bool SkipUnreadable { get; }
    /// <summary>The image files left out because they are under the excluded folder.</summary>
    public int Excluded { get; }
    /// <summary>
    /// Where datasets' split rules chose the train split (<see cref="DataSplits"/>): one line naming the rule, the
    /// splits and the images left out; null where the paths name no split and every image is trained on.
    /// </summary>
    public string? SplitNote { get; }
    /// <summary>
    /// Where the train split has metadata files (<c>metadata.csv</c>, <c>metadata.jsonl</c>: <see cref="ImageFolderMetadata"/>),
    /// one line naming them, the rows and the split's images no row names; else null.
    /// </summary>
    public string? MetadataNote { get; }
    /// <summary>The number of images.</summary>
    public int Count => Files.Count;

    /// <summary>Floats per example: 3 × resolution².</summary>
    public int ExampleSize => 3 * Resolution * Resolution;

    private static bool IsImage(string path) => ImageFolderExtensions.IsImage(path);

    private static string Describe(string folder, DataSplits.Selection splits, int images)
    {
        var train = splits.Train.Where(IsImage).ToList();
        int distinct = train.Distinct(StringComparer.Ordinal).Count();
        string each = string.Join(", ", splits.Splits.Select(s => $"{s.Name} {s.Files.Where(IsImage).Distinct(StringComparer.Ordinal).Count()}"));
        string twice = train.Count > distinct ? $"; {train.Count - distinct} more examples: datasets lists a file once per train pattern it matches" : "";
        return $"{folder}: {splits.Rule} (datasets' imagefolder splits; image files: {each}): training on the train split, {images - distinct} of {images} images left out{twice}";
    }

    private static string DescribeMetadata(string folder, ImageFolderMetadata.Result metadata, IEnumerable<string> splitImages)
    {
        var named = metadata.Images.ToHashSet(StringComparer.Ordinal);
        int without = splitImages.Distinct(StringComparer.Ordinal).Count(f => !named.Contains(f));
        string files = string.Join(", ", metadata.TrainMetadataFiles);
        return $"{folder}: {files} (datasets' imagefolder metadata): training on the images of its {metadata.Images.Count} rows" +
            (without > 0 ? $"; {without} image{(without == 1 ? "" : "s")} of the split without a row left out" : "");
    }

    // Hidden folders (.ipynb_checkpoints, .git) and special ones (__MACOSX, __pycache__) below the data folder, which the
    // `datasets` imagefolder loader of train_unconditional leaves out (datasets 2.16, data_files.py), as it does hidden files.
    private static bool IsSkippedFolder(string name) => name.StartsWith('.') || name.StartsWith("__", StringComparison.Ordinal);

    // Every file under `folder` but hidden files and folders (IsSkippedFolder), following linked folders; a folder reached a second way (a link to a folder of the
    // data set, or a link loop, which a recursive enumeration walks until the system's limit of nested links, listing
    // the same images each time) is walked once: the first way in ordinal order, the others skipped with a warning.
    private static List<string> ListFiles(string folder, Action<string>? warn)
    {
        var files = new List<string>();
        var walked = new Dictionary<string, string>(StringComparer.Ordinal); // real path → the path it was walked as
        var pending = new Stack<(string Path, string Real)>();
        pending.Push((folder, RealPath(folder, 0)));
        while (pending.TryPop(out var dir))
        {
            if (walked.TryGetValue(dir.Real, out string? first))
            {
                warn?.Invoke($"warning: skipping {dir.Path}: it is the folder {first} (through a link), whose images are already in the data set");
                continue;
            }
            walked[dir.Real] = dir.Path;
            files.AddRange(Directory.EnumerateFiles(dir.Path).Where(f => !Path.GetFileName(f).StartsWith('.')));
            foreach (var sub in Directory.EnumerateDirectories(dir.Path).Where(d => !IsSkippedFolder(Path.GetFileName(d)))
                         .OrderDescending(StringComparer.Ordinal))
                pending.Push((sub, new DirectoryInfo(sub).LinkTarget is null ? Path.Combine(dir.Real, Path.GetFileName(sub)) : RealPath(sub, 0)));
        }
        return files;
    }

    // `path` with its links resolved, as realpath(3) (a link that cannot be resolved, looping or broken, is kept as it
    // is); `depth` counts the nested resolutions, which stop at the system's limit of 40.
    private static string RealPath(string path, int depth)
    {
        string full = Path.GetFullPath(path);
        string current = Path.GetPathRoot(full)!;
        foreach (var part in full[current.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries))
        {
            string next = Path.Combine(current, part);
            FileSystemInfo? target = null;
            if (depth < 40)
            {
                try { target = new DirectoryInfo(next).ResolveLinkTarget(returnFinalTarget: true); }
                catch (IOException) { }
            }
            current = target is null ? next : RealPath(target.FullName, depth + 1);
        }
        return current;
    }

    // Why the file cannot be trained on (Refused: an image of a format PIL reads and DiffusersSharp does not, which is an
    // error whatever --stop-on-bad-images says, since the script would train on it), or null. PNG and JPEG: reads the
    // header and the file's last bytes, and decodes the whole file only when its end marker is missing (truncated, or
    // trailing bytes after the marker); WebP: the header and the RIFF size; the other formats are decoded whole.
    private readonly record struct FileProblem(string Message, bool Refused);

    private static FileProblem? Problem(string path)
    {
        byte[] header;
        using (var f = File.OpenRead(path))
        {
            header = new byte[Math.Min(64, f.Length)];
            f.ReadExactly(header);
        }
        string? byExtension = ImageFolderExtensions.NotDecodedFormat(path);
        FileProblem Unreadable(string message) => byExtension is null
            ? new(message, false)
            : new($"a {Path.GetExtension(path)} file, which datasets' imagefolder loader hands to PIL as a {byExtension} image; DiffusersSharp does not read that format " +
                  $"(it reads {ImageFormats.Decoded}): convert it to PNG (this file: {message})", true);
        var kind = ImageFormats.Sniff(header);
        if (kind == ImageFormats.Kind.Unknown)
            return ImageFormats.NotDecoded(header) is { } format
                ? new(ImageFormats.NotDecodedMessage(format), true)
                : Unreadable($"not a readable image: DiffusersSharp reads {ImageFormats.Decoded} files, and PIL no other format of these first bytes");
        if (kind is ImageFormats.Kind.Png or ImageFormats.Kind.Jpeg or ImageFormats.Kind.WebP)
        {
            using var codec = SKCodec.Create(path);
            if (codec is null || codec.Info.Width <= 0 || codec.Info.Height <= 0) return Unreadable("the image data is damaged (its header does not decode)");
            try
            {
                // the limit is the same for both sides, so the stored size gives the verdict of the upright one (orientations
                // 5-8 swap the sides): the orientation, which may sit after a PNG's image data, is not read here
                Image.CheckSize(codec.Info.Width, codec.Info.Height);
                Image.CheckReadsAsPil(header);
            }
            catch (DiffusersException e) { return Unreadable(e.Message); }
            if (IsComplete(path, kind, header)) return null;
        }
        try
        {
            Image.LoadImage(File.ReadAllBytes(path));
            return null;
        }
        catch (NotDecodedImageException e) { return new(e.Message, true); }
        catch (DiffusersException e) { return Unreadable(e.Message); }
    }

    private static readonly byte[] PngEnd = [(byte)'I', (byte)'E', (byte)'N', (byte)'D', 0xAE, 0x42, 0x60, 0x82];
    private static readonly byte[] JpegEnd = [0xFF, 0xD9];

    // A PNG or JPEG that ends with its end marker, a WebP whose file holds all its RIFF size says
    private static bool IsComplete(string path, ImageFormats.Kind kind, byte[] header)
    {
        long length = new FileInfo(path).Length;
        if (kind == ImageFormats.Kind.WebP) return length >= 8 + (long)BitConverter.ToUInt32(header, 4);
        byte[] marker = kind == ImageFormats.Kind.Png ? PngEnd : JpegEnd;
        if (length < marker.Length) return false;
        using var f = File.OpenRead(path);
        f.Seek(-marker.Length, SeekOrigin.End);
        var tail = new byte[marker.Length];
        f.ReadExactly(tail);
        return tail.AsSpan().SequenceEqual(marker);
    }

    private const string FoundDuringTheRun = " (found during the run: the start-up check reads each file's header and end only)";
    private const string StopAdvice = "; repair or replace the file and continue with --resume, or drop --stop-on-bad-images to skip it";

    // The image of example `index`: its file, or the one read in its place since it failed to decode (see the class).
    private Image Read(int index)
    {
        int start = _replacements.TryGetValue(index, out int r) ? r : index;
        string? problem = null;
        for (int tries = 0, i = start; tries < Count; tries++, i = (i + 1) % Count)
        {
            string path = Files[i];
            try
            {
                var img = Image.LoadImage(path).ToRgb();
                if (i != start)
                {
                    _replacements[index] = i;
                    _warn?.Invoke($"warning: {problem}{FoundDuringTheRun}; {path} takes its place in this run and a resumed one");
                }
                return img;
            }
            catch (DiffusersException e) { problem ??= e.Message; }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { problem ??= $"{path}: cannot read the image: {e.Message}"; }
            if (!SkipUnreadable) throw new DiffusersException(problem + FoundDuringTheRun + StopAdvice) { FilePath = path };
        }
        throw new DiffusersException($"{Folder}: none of the {Count} images could be decoded during the run") { FilePath = Folder };
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
        var img = Read(index);
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
