namespace DiffusersSharp.Pipelines;

/// <summary>
/// Resolves a Hub id (<c>org/name</c>) from the local Hugging Face cache: <c>HF_HUB_CACHE</c>, else
/// <c>HF_HOME/hub</c>, else <c>~/.cache/huggingface/hub</c>; layout
/// <c>models--org--name/snapshots/&lt;rev&gt;/</c> with <c>refs/main</c> naming the revision.
/// </summary>
internal static class HubCacheLookup
{
    public static string CacheDir()
    {
        if (Environment.GetEnvironmentVariable("HF_HUB_CACHE") is { Length: > 0 } c) return c;
        if (Environment.GetEnvironmentVariable("HF_HOME") is { Length: > 0 } h) return Path.Combine(h, "hub");
        return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "huggingface", "hub");
    }

    public static string Resolve(string id)
    {
        string cache = CacheDir();
        string how = $"Download it first, e.g. `huggingface-cli download {id}` (the files land in {cache}), or pass a local folder.";
        var parts = id.Split('/');
        if (parts.Length != 2 || parts.Any(p => p.Length == 0 || p == "." || p == ".."))
            throw new DiffusersException($"'{id}' is neither a folder nor a Hub id of the form org/name. {how}");
        string repo = Path.Combine(cache, $"models--{parts[0]}--{parts[1]}");
        string snapshots = Path.Combine(repo, "snapshots");
        if (!Directory.Exists(snapshots))
            throw new DiffusersException($"'{id}' is not a local folder and is not in the Hugging Face cache ({repo} not found). {how}");
        string refMain = Path.Combine(repo, "refs", "main");
        if (File.Exists(refMain))
        {
            string rev = File.ReadAllText(refMain).Trim();
            string snap = Path.Combine(snapshots, rev);
            if (rev.Length > 0 && Directory.Exists(snap)) return snap;
        }
        var dirs = Directory.GetDirectories(snapshots);
        if (dirs.Length == 1) return dirs[0];
        if (dirs.Length == 0)
            throw new DiffusersException($"'{id}': the cache folder {snapshots} holds no snapshot. {how}");
        // several snapshots and no refs/main: take the most recently written one
        return dirs.OrderByDescending(Directory.GetLastWriteTimeUtc).First();
    }
}
