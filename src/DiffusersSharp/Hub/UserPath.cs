namespace DiffusersSharp.Hub;

/// <summary>
/// Python's <c>os.path.expanduser</c> for the paths huggingface_hub expands (<c>HF_HOME</c> / <c>XDG_CACHE_HOME</c> in
/// 0.20.3, the <c>cache_dir</c> of <c>scan_cache_dir</c>; <c>HF_HUB_CACHE</c> and the download functions' <c>cache_dir</c>
/// from 0.30): a leading <c>~</c> alone or followed by a separator becomes the user's home folder (<c>HOME</c>, on Windows
/// <c>USERPROFILE</c>, else the OS's profile folder; a <c>HOME</c> set but empty is the root, as in Python: <c>~/x</c> is
/// <c>/x</c>). <c>~user</c> is left as it is. The one copy every layer uses.
/// </summary>
public static class UserPath
{
    /// <summary>
    /// The user's home folder as <c>expanduser</c> finds it: <c>HOME</c> (Windows: <c>USERPROFILE</c>) from
    /// <paramref name="getEnv"/> (default: the process environment) whenever it is set, even empty (posixpath reads
    /// <c>os.environ['HOME']</c> whenever the key is there: an empty home makes <c>~/x</c> <c>/x</c> and <c>~</c> the root,
    /// <see cref="ExpandUser"/>), else the OS's profile folder (posixpath: the password database's entry).
    /// </summary>
    public static string Home(Func<string, string?>? getEnv = null) =>
        (getEnv ?? Environment.GetEnvironmentVariable)(OperatingSystem.IsWindows() ? "USERPROFILE" : "HOME")
        ?? Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);

    /// <summary>
    /// <paramref name="path"/> with a leading <c>~</c> (alone, or before <c>/</c>, and on Windows <c>\</c>) replaced by
    /// <paramref name="home"/> (default <see cref="Home"/>); any other path unchanged.
    /// </summary>
    public static string ExpandUser(string path, string? home = null)
    {
        if (path.Length == 0 || path[0] != '~') return path;
        if (path.Length > 1 && path[1] != '/' && !(OperatingSystem.IsWindows() && path[1] == '\\')) return path; // ~user
        // posixpath / ntpath: the home without its trailing separators, then the rest of the path as it is
        string trimmed = (home ?? Home()).TrimEnd(OperatingSystem.IsWindows() ? ['/', '\\'] : ['/']);
        string expanded = trimmed + path[1..];
        return expanded.Length == 0 ? "/" : expanded;
    }

    /// <summary>
    /// Python's <c>os.path.abspath</c>: <paramref name="path"/> as a full path against the current folder, an empty one
    /// being the current folder itself (an empty <c>HF_HUB_CACHE</c>: huggingface_hub's <c>os.path.join("", name)</c> is
    /// <c>name</c> in the current folder; <see cref="Path.GetFullPath(string)"/> refuses "").
    /// </summary>
    public static string FullPath(string path) => Path.GetFullPath(path.Length == 0 ? "." : path);
}
