namespace DiffusersSharp.Hub;

/// <summary>
/// The huggingface_hub cache layout (file_download.py): <c>models--org--name/{blobs,snapshots,refs,.no_exist}</c>,
/// relative snapshot symlinks, <c>refs/{revision}</c> files and <c>.locks/models--org--name/{etag}.lock</c>.
/// </summary>
internal static class CacheLayout
{
    public static string StorageFolder(string cacheDir, string repoId) => Path.Combine(cacheDir, HubRepoId.FolderName(repoId));

    public static string LockPath(string cacheDir, string repoId, string etag) =>
        Path.Combine(cacheDir, ".locks", HubRepoId.FolderName(repoId), etag + ".lock");

    /// <summary>Python's <c>os.path.exists</c>: false for a broken symlink.</summary>
    public static bool FileExists(string path)
    {
        var fi = new FileInfo(path);
        if (!fi.Exists) return false;
        if (fi.LinkTarget is null) return true;
        return fi.ResolveLinkTarget(returnFinalTarget: true) is { Exists: true };
    }

    /// <summary>Checks a repo file name ("unet/config.json") and returns it with OS separators.</summary>
    public static string RelativeFileName(string filename)
    {
        if (string.IsNullOrEmpty(filename) || filename.StartsWith('/') || filename.Contains('\\') || filename.Contains('\0')
            || filename.Split('/').Any(p => p is "" or "." or ".."))
            throw new HubException(HubErrorKind.InvalidInput,
                $"Invalid file name in repository: '{filename}'. Expected a relative path like 'unet/config.json'.")
            { Key = "filename" };
        return Path.Combine(filename.Split('/'));
    }

    public static string PointerPath(string storage, string commit, string relativeFileName)
    {
        string snapshots = Path.GetFullPath(Path.Combine(storage, "snapshots"));
        string pointer = Path.GetFullPath(Path.Combine(snapshots, commit, relativeFileName));
        if (!pointer.StartsWith(snapshots + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            throw new HubException(HubErrorKind.InvalidInput,
                $"Invalid pointer path: cannot create pointer path in snapshot folder if storage_folder='{storage}', revision='{commit}' and relative_filename='{relativeFileName}'.");
        return pointer;
    }

    public static string NoExistPath(string storage, string commit, string relativeFileName) =>
        Path.Combine(storage, ".no_exist", commit, relativeFileName);

    /// <summary>
    /// The commit <paramref name="revision"/> names in the cached repository folder <paramref name="storage"/>: the revision
    /// itself when it is a full commit sha (as <c>hf_hub_download</c> takes it: <c>refs/</c> never holds a sha's name), else
    /// the content of <c>refs/{revision}</c> (surrounding white space dropped), else null. A ref that holds no commit sha
    /// (a hand edit, a write cut short) is an error naming it rather than a path to follow. The one reader of the refs
    /// files: the Hub client and the loaders (<c>PretrainedLocator</c>, <c>PretrainedFileLocator</c>) all resolve through it.
    /// </summary>
    public static string? ResolveCommit(string storage, string revision) => ResolveCommit(storage, revision, out _);

    /// <summary>As above; <paramref name="refFile"/> is the ref looked at (<c>refs/{revision}</c>), for messages.</summary>
    public static string? ResolveCommit(string storage, string revision, out string refFile)
    {
        refFile = Path.Combine(storage, "refs", revision);
        if (HubRepoId.IsCommitHash(revision)) return revision;
        if (!File.Exists(refFile)) return null;
        string sha = File.ReadAllText(refFile).Trim();
        return HubRepoId.IsCommitHash(sha) ? sha
            : throw new DiffusersException($"{refFile}: expected a 40-hex commit sha, found '{(sha.Length <= 60 ? sha : sha[..60] + "…")}'") { FilePath = refFile };
    }

    /// <summary>
    /// <see cref="ResolveCommit(string, string)"/> for a look-up that only saves work (a retry policy, a cache hit before the
    /// Hub is asked, <c>try_to_load_from_cache</c>): a ref that holds no commit sha, or cannot be read, is not cached (null), as
    /// huggingface_hub's online downloads never read it and rewrite it from the Hub's answer.
    /// </summary>
    public static string? TryResolveCommit(string storage, string revision)
    {
        try { return ResolveCommit(storage, revision); }
        catch (Exception e) when (e is DiffusersException or IOException or UnauthorizedAccessException) { return null; }
    }

    /// <summary>
    /// The cached snapshot folder of <paramref name="revision"/> (a commit, or a ref to one) in <paramref name="storage"/>,
    /// or null; a ref that holds no commit sha is <see cref="ResolveCommit(string, string)"/>'s error naming it, or, where
    /// <paramref name="lenient"/> (a look-up that only saves work, <see cref="TryResolveCommit"/>), not cached.
    /// </summary>
    public static string? CachedSnapshot(string storage, string revision, bool lenient = false) =>
        (lenient ? TryResolveCommit(storage, revision) : ResolveCommit(storage, revision)) is { } commit
        && Directory.Exists(Path.Combine(storage, "snapshots", commit))
            ? Path.Combine(storage, "snapshots", commit) : null;

    /// <summary><c>_cache_commit_hash_for_specific_revision</c>: writes <c>refs/{revision}</c> only when it changed.</summary>
    public static void WriteRef(string storage, string revision, string commit)
    {
        if (revision == commit) return;
        string refPath = Path.Combine(storage, "refs", revision);
        if (File.Exists(refPath) && File.ReadAllText(refPath) == commit) return;
        Directory.CreateDirectory(Path.GetDirectoryName(refPath)!);
        string tmp = refPath + "." + Guid.NewGuid().ToString("N") + ".tmp";
        File.WriteAllText(tmp, commit);
        File.Move(tmp, refPath, overwrite: true);
    }

    /// <summary>
    /// <c>_create_symlink</c>: a relative symlink dst → src; where symlinks are impossible, the blob is moved
    /// (a new blob) or copied (a blob other snapshots may share).
    /// </summary>
    public static void CreateSymlink(string src, string dst, bool newBlob)
    {
        try { File.Delete(dst); } catch (IOException) { }
        string absSrc = Path.GetFullPath(src), absDst = Path.GetFullPath(dst);
        string relative = Path.GetRelativePath(Path.GetDirectoryName(absDst)!, absSrc);
        try
        {
            File.CreateSymbolicLink(absDst, relative);
            return;
        }
        catch (IOException) when (File.Exists(absDst))
        {
            // Created concurrently between Delete and CreateSymbolicLink: fine if it points to the same blob.
            var target = new FileInfo(absDst).ResolveLinkTarget(returnFinalTarget: true);
            if (target is not null && Path.GetFullPath(target.FullName) == absSrc) return;
            throw;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or PlatformNotSupportedException)
        {
            // Symlinks not supported here (Windows without developer mode, some network drives).
        }
        if (newBlob) File.Move(absSrc, absDst, overwrite: true);
        else File.Copy(absSrc, absDst, overwrite: true);
    }

    /// <summary><c>try_to_load_from_cache</c>: the cached path, <see cref="NoExist"/> when known missing, or null.</summary>
    public static string? TryLoadFromCache(string cacheDir, string repoId, string filename, string revision)
    {
        string storage = StorageFolder(cacheDir, repoId);
        if (!Directory.Exists(storage)) return null;
        string rel = RelativeFileName(filename);
        string commit = TryResolveCommit(storage, revision) ?? revision;
        if (File.Exists(NoExistPath(storage, commit, rel))) return NoExist;
        string pointer = Path.Combine(storage, "snapshots", commit, rel);
        return FileExists(pointer) ? pointer : null;
    }

    /// <summary>Returned by <see cref="TryLoadFromCache"/> for a file cached as not existing (<c>_CACHED_NO_EXIST</c>).</summary>
    public const string NoExist = "\0no_exist";

    /// <summary>Creates a folder, turning permission and "is a file" errors into a clear <see cref="HubErrorKind.CacheNotWritable"/>.</summary>
    public static void EnsureDirectory(string dir, string cacheDir)
    {
        try { Directory.CreateDirectory(dir); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw NotWritable(cacheDir, e);
        }
    }

    public static HubException NotWritable(string cacheDir, Exception e) =>
        new(HubErrorKind.CacheNotWritable,
            $"The Hugging Face cache folder '{cacheDir}' is not writable ({e.Message}). "
            + "Set HF_HUB_CACHE (or HF_HOME), or pass cacheDir:, to a writable folder.", e)
        { FilePath = cacheDir };
}
