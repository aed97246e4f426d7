namespace DiffusersSharp.Hub;

/// <summary>
/// Lists and removes cached repositories (huggingface_hub's <c>scan_cache_dir</c> and <c>delete_revisions</c>),
/// for <c>diffusers cache list</c> and <c>diffusers cache rm</c>.
/// </summary>
public static class HubCache
{
    /// <summary>Helper files the OS writes into folders (huggingface_hub's <c>FILES_TO_IGNORE</c>): never cache content.</summary>
    private static readonly string[] FilesToIgnore = [".DS_Store", "Thumbs.db", "desktop.ini"];

    private static bool Ignored(string path) => FilesToIgnore.Contains(Path.GetFileName(path));

    /// <summary>The repo types of the cache (<c>REPO_TYPES</c>): folders <c>models--…</c>, <c>datasets--…</c>, <c>spaces--…</c>.</summary>
    public static readonly IReadOnlyList<string> RepoTypes = ["model", "dataset", "space"];

    /// <summary>
    /// The repositories in <paramref name="cacheDir"/> (default: the environment's, <see cref="HubSettings.DefaultCacheDir"/>;
    /// a leading <c>~</c> is the home folder, as <c>scan_cache_dir</c> expands it), sorted by type, then id. Folders that
    /// are not valid cache repos are skipped and described in <paramref name="warnings"/>.
    /// </summary>
    public static IReadOnlyList<CachedRepoInfo> ScanRepos(string? cacheDir = null, ICollection<string>? warnings = null)
    {
        cacheDir = CacheFolder(cacheDir);
        if (!Directory.Exists(cacheDir))
        {
            if (File.Exists(cacheDir))
                throw new HubException(HubErrorKind.InvalidInput, $"Scan cache expects a directory but found a file: {cacheDir}.") { FilePath = cacheDir };
            return [];
        }
        var repos = new List<CachedRepoInfo>();
        foreach (var dir in Directory.EnumerateDirectories(cacheDir).Order(StringComparer.Ordinal))
        {
            if (Path.GetFileName(dir) == ".locks" || Ignored(dir)) continue;
            try { repos.Add(ScanRepo(dir)); }
            catch (HubException e) { warnings?.Add(e.Message); }
            // one unreadable repo (a symlink loop, a permission error) is a warning, not the end of the listing
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { warnings?.Add(Unreadable(dir, e)); }
        }
        return repos.OrderBy(r => r.RepoType, StringComparer.Ordinal).ThenBy(r => r.RepoId, StringComparer.Ordinal).ToList();
    }

    /// <summary>
    /// Deletes the cached repository <paramref name="repoId"/> of <paramref name="repoType"/> (<see cref="RepoTypes"/>: the
    /// folder <c>{type}s--org--name</c>, as <see cref="ScanRepos"/> lists it by id and type) with all its revisions, blobs and
    /// locks, and returns what was removed. Nothing else is touched: a repo of the same id and another type stays. Throws
    /// <see cref="HubException"/> (InvalidInput for an unknown type, LocalEntryNotFound when it is not cached; the message
    /// names the other types under which the id is cached).
    /// </summary>
    public static CachedRepoInfo Remove(string repoId, string? cacheDir = null, string repoType = "model")
    {
        HubRepoId.Validate(repoId);
        if (!RepoTypes.Contains(repoType))
            throw new HubException(HubErrorKind.InvalidInput, $"Invalid repo type: '{repoType}'. Expected one of {string.Join(", ", RepoTypes)}.")
            { Key = "repo_type", RepoId = repoId };
        cacheDir = CacheFolder(cacheDir);
        string folder = HubRepoId.FolderName(repoId, repoType);
        string path = Path.Combine(cacheDir, folder);
        if (!Directory.Exists(path))
        {
            var others = RepoTypes.Where(t => t != repoType && Directory.Exists(Path.Combine(cacheDir, HubRepoId.FolderName(repoId, t)))).ToList();
            string what = repoType == "model" ? repoId : $"{repoType} {repoId}";
            string hint = others.Count == 0 ? ""
                : " The cache holds " + string.Join(" and ", others.Select(t => $"the {t} {repoId} (--repo-type {t})")) + ".";
            throw new HubException(HubErrorKind.LocalEntryNotFound, $"{what} is not in the cache {cacheDir}.{hint}") { RepoId = repoId, FilePath = path };
        }
        CachedRepoInfo info;
        try { info = ScanRepo(path); }
        catch (Exception e) when (e is HubException or IOException or UnauthorizedAccessException)
        {
            // a repo that cannot be scanned is still removed: its size is the plain folder size
            info = new CachedRepoInfo(repoId, repoType, path, DirSize(path), 0, [], Directory.GetLastWriteTimeUtc(path));
        }
        try
        {
            Directory.Delete(path, recursive: true);
            string locks = Path.Combine(cacheDir, ".locks", folder);
            if (Directory.Exists(locks)) Directory.Delete(locks, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw CacheLayout.NotWritable(cacheDir, e);
        }
        return info;
    }

    /// <summary>The cache folder to scan: <paramref name="cacheDir"/> with <c>~</c> expanded, made absolute (<c>expanduser().resolve()</c>), or the environment's.</summary>
    private static string CacheFolder(string? cacheDir) =>
        cacheDir is null ? HubSettings.DefaultCacheDir() : UserPath.FullPath(UserPath.ExpandUser(cacheDir));

    /// <summary><c>_scan_cached_repo</c>.</summary>
    private static CachedRepoInfo ScanRepo(string repoPath)
    {
        string name = Path.GetFileName(repoPath);
        int sep = name.IndexOf("--", StringComparison.Ordinal);
        if (sep < 0) throw Corrupted($"Repo path is not a valid HuggingFace cache directory: {repoPath}");
        string repoType = name[..sep].TrimEnd('s');
        string repoId = name[(sep + 2)..].Replace("--", "/");
        if (!RepoTypes.Contains(repoType))
            throw Corrupted($"Repo type must be `dataset`, `model` or `space`, found `{repoType}` ({repoPath}).");
        string snapshots = Path.Combine(repoPath, "snapshots"), refs = Path.Combine(repoPath, "refs");
        if (!Directory.Exists(snapshots)) throw Corrupted($"Snapshots dir doesn't exist in cached repo: {snapshots}");

        var refsByHash = new Dictionary<string, List<string>>();
        if (File.Exists(refs)) throw Corrupted($"Refs directory cannot be a file: {refs}");
        if (Directory.Exists(refs))
            foreach (var f in Directory.EnumerateFiles(refs, "*", SearchOption.AllDirectories).Where(f => !Ignored(f)))
            {
                string hash = File.ReadAllText(f).Trim();
                string refName = Path.GetRelativePath(refs, f).Replace(Path.DirectorySeparatorChar, '/');
                if (!refsByHash.TryGetValue(hash, out var list)) refsByHash[hash] = list = [];
                list.Add(refName);
            }

        var blobs = new Dictionary<string, FileInfo>();
        var revisions = new List<CachedRevisionInfo>();
        foreach (var rev in Directory.EnumerateFileSystemEntries(snapshots).Where(e => !Ignored(e)).Order(StringComparer.Ordinal))
        {
            if (File.Exists(rev)) throw Corrupted($"Snapshots folder corrupted. Found a file: {rev}");
            var files = new List<string>();
            var revBlobs = new HashSet<string>();
            foreach (var f in Directory.EnumerateFiles(rev, "*", SearchOption.AllDirectories))
            {
                var fi = new FileInfo(f);
                var blob = fi.LinkTarget is null ? fi : fi.ResolveLinkTarget(returnFinalTarget: true) as FileInfo;
                if (blob is null || !blob.Exists) throw Corrupted($"Blob missing (broken symlink): {f}");
                string key = Path.GetFullPath(blob.FullName);
                blobs.TryAdd(key, blob);
                revBlobs.Add(key);
                files.Add(Path.GetRelativePath(rev, f).Replace(Path.DirectorySeparatorChar, '/'));
            }
            string commit = Path.GetFileName(rev);
            var refNames = refsByHash.Remove(commit, out var r) ? r.Order(StringComparer.Ordinal).ToList() : [];
            files.Sort(StringComparer.Ordinal);
            revisions.Add(new CachedRevisionInfo(commit, refNames, revBlobs.Sum(b => blobs[b].Length), files, rev));
        }
        if (refsByHash.Count > 0)
            throw Corrupted($"Reference(s) refer to missing commit hashes: {string.Join(", ", refsByHash.Select(kv => $"{string.Join("/", kv.Value)} -> {kv.Key}"))} ({repoPath}).");
        DateTime modified = blobs.Count > 0 ? blobs.Values.Max(b => b.LastWriteTimeUtc) : Directory.GetLastWriteTimeUtc(repoPath);
        return new CachedRepoInfo(repoId, repoType, repoPath, blobs.Values.Sum(b => b.Length), blobs.Count, revisions, modified);
    }

    /// <summary>The size of the regular files under <paramref name="path"/> (links not followed); what cannot be read counts 0.</summary>
    private static long DirSize(string path)
    {
        var options = new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true, AttributesToSkip = FileAttributes.ReparsePoint };
        long size = 0;
        try
        {
            foreach (var f in new DirectoryInfo(path).EnumerateFiles("*", options)) size += f.Length;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        return size;
    }

    /// <summary>The warning for a repo folder that could not be read.</summary>
    internal static string Unreadable(string repoPath, Exception e) => $"Cannot read cached repo {repoPath}: {e.Message}";

    private static HubException Corrupted(string message) => new(HubErrorKind.InvalidInput, "Corrupted cache: " + message);
}
