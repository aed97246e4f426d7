namespace DiffusersSharp.Loading;

/// <summary>Questions about paths on this machine that several layers ask (the trainer's folders, convert's output).</summary>
public static class LocalPaths
{
    /// <summary>
    /// Whether <paramref name="path"/> is <paramref name="folder"/> or lies under it: full paths compared, ignoring a
    /// trailing separator, case-insensitively where the file system usually is (Windows, macOS), links not followed.
    /// </summary>
    public static bool IsInside(string path, string folder)
    {
        string p = Path.TrimEndingDirectorySeparator(Path.GetFullPath(path));
        string f = Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder));
        var comparison = OperatingSystem.IsWindows() || OperatingSystem.IsMacOS() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;
        return string.Equals(p, f, comparison) || p.StartsWith(f + Path.DirectorySeparatorChar, comparison);
    }
}
