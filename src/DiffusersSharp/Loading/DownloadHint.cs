using DiffusersSharp.Hub;

namespace DiffusersSharp.Loading;

/// <summary>
/// The "Download it first with …" sentence of a cache miss (<see cref="PretrainedLocator"/>, <see cref="PretrainedFileLocator"/>):
/// a <c>diffusers download</c> command, and the <c>huggingface-cli download</c> one, that fetch what was asked into the
/// cache that was read: they repeat the revision unless it is <c>main</c>, the variant (ours only: huggingface-cli has
/// none), and the cache folder unless it is the one the environment selects, which both commands use without
/// <c>--cache-dir</c>.
/// </summary>
internal static class DownloadHint
{
    /// <summary>
    /// <c>Download it first with `diffusers download ID …` (or `huggingface-cli download ID …`), or pass a local
    /// {<paramref name="localKind"/>}.</c>
    /// </summary>
    public static string For(string id, string revision, string cache, string? variant, string localKind)
    {
        string shared = (revision == "main" ? "" : " --revision " + Quote(revision))
                        + (SameFolder(cache, HubSettings.DefaultCacheDir()) ? "" : " --cache-dir " + Quote(UserPath.FullPath(cache)));
        string ours = $"diffusers download {id}{(variant is null ? "" : " --variant " + Quote(variant))}{shared}";
        return $"Download it first with `{ours}` (or `huggingface-cli download {id}{shared}`), or pass a local {localKind}.";
    }

    private static bool SameFolder(string a, string b) =>
        string.Equals(Path.TrimEndingDirectorySeparator(UserPath.FullPath(a)), Path.TrimEndingDirectorySeparator(UserPath.FullPath(b)),
                      OperatingSystem.IsWindows() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal);

    /// <summary>An argument as a POSIX shell reads it back: as it is when plain, else in single quotes.</summary>
    private static string Quote(string arg) =>
        arg.Length > 0 && arg.All(c => char.IsAsciiLetterOrDigit(c) || "_-./:@%+=,".Contains(c)) ? arg : "'" + arg.Replace("'", "'\\''") + "'";
}
