using DiffusersSharp.Hub;

namespace DiffusersSharp.Loading;

/// <summary>
/// Turns what a user passes to <c>FromPretrained</c> into a local folder: an existing folder as it is, or a
/// Hugging Face Hub id (<c>org/name</c>) resolved from the local Hub cache the way huggingface_hub 0.20
/// lays it out: <c>{cache}/models--org--name/refs/{revision}</c> holds a commit sha and the files are in
/// <c>snapshots/{sha}/</c>. The cache is <c>HF_HUB_CACHE</c>, else <c>HUGGINGFACE_HUB_CACHE</c>, else
/// <c>HF_HOME/hub</c>, else <c>XDG_CACHE_HOME/huggingface/hub</c>, else <c>~/.cache/huggingface/hub</c>.
/// An id that is not cached is downloaded into that cache with <see cref="HubClient.DownloadFolderAsync"/> (only the
/// files <c>from_pretrained</c> needs), unless <c>localFilesOnly</c> or <c>HF_HUB_OFFLINE=1</c>.
/// </summary>
public static class PretrainedLocator
{
    /// <summary>
    /// The local folder of <paramref name="idOrPath"/> (and of its <paramref name="subfolder"/>, when given). Of
    /// <paramref name="options"/> it reads <see cref="LoadOptions.Revision"/> (a branch or tag name under <c>refs/</c>
    /// or a 40-hex commit sha; default <c>main</c>), <see cref="LoadOptions.CacheDir"/> (overrides the Hub settings' and
    /// the environment's cache), <see cref="LoadOptions.Variant"/> (preferred when downloading),
    /// <see cref="LoadOptions.LocalFilesOnly"/> (never download), <see cref="LoadOptions.Token"/>,
    /// <see cref="LoadOptions.Hub"/> (endpoint, token and offline settings; default <see cref="HubSettings.FromEnvironment"/>),
    /// <see cref="LoadOptions.HubClientOptions"/> and <see cref="LoadOptions.DownloadProgress"/>.
    /// </summary>
    public static string Resolve(string idOrPath, string? subfolder = null, LoadOptions? options = null)
    {
        options ??= LoadOptions.Default;
        if (string.IsNullOrWhiteSpace(idOrPath))
            throw new DiffusersException("No model given: expected a local folder or a Hugging Face Hub id like 'google/ddpm-cat-256'");
        string local = UserPath.ExpandUser(idOrPath);
        if (Directory.Exists(local)) return WithSubfolder(Path.GetFullPath(local), subfolder, idOrPath);
        if (File.Exists(local))
            throw new DiffusersException($"'{idOrPath}' is a file; expected a model or pipeline folder (the one holding config.json or model_index.json)") { FilePath = local };

        if (!IsValidRepoId(idOrPath))
            throw new DiffusersException(
                $"'{idOrPath}' is neither an existing folder nor a valid Hugging Face Hub id ('name' or 'org/name': letters, digits, '-', '_', '.'; no '--' or '..'; at most 96 characters)")
            { FilePath = idOrPath };

        string rev = options.Revision ?? "main";
        CheckRevisionAndSubfolder(idOrPath, rev, subfolder);
        string cache = CacheDirOf(options);
        var miss = FromCache(idOrPath, subfolder, rev, cache, options.Variant, out string? cached);
        if (miss is null) return cached!;
        // a snapshot the Hub may complete (a variant some components lack) is used as it is when nothing can be asked
        if (options.LocalFilesOnly) return cached ?? throw miss;

        var settings = SettingsOf(options, cache);
        if (settings.Offline) return cached ?? throw OfflineMiss(miss);
        using var client = new HubClient(settings, options.HubClientOptions);
        try
        {
            return client.DownloadFolderAsync(idOrPath, subfolder, rev, options.Variant, localFilesOnly: false, options.Token,
                                              options.DownloadProgress)
                         .ConfigureAwait(false).GetAwaiter().GetResult();
        }
        catch (HubException e)
        {
            throw DownloadFailed(miss, settings, e);
        }
    }

    /// <summary>A revision (branch, tag or commit) and a subfolder that stay inside the cache, or an error naming them.</summary>
    internal static void CheckRevisionAndSubfolder(string idOrPath, string rev, string? subfolder)
    {
        if (rev.Length == 0 || rev.Contains("..") || Path.IsPathRooted(rev) || rev.Contains('\\'))
            throw new DiffusersException($"Invalid revision '{rev}' for '{idOrPath}'");
        if (!string.IsNullOrEmpty(subfolder) && (Path.IsPathRooted(subfolder) || subfolder.Split('/', '\\').Any(p => p is ".." or "")))
            throw new DiffusersException($"Invalid subfolder '{subfolder}' for '{idOrPath}': expected a relative folder name like 'unet'");
    }

    /// <summary>The cache folder <paramref name="options"/> select: their <c>CacheDir</c>, their Hub settings', else the environment's.</summary>
    internal static string CacheDirOf(LoadOptions options) =>
        options.CacheDir is { } dir ? UserPath.ExpandUser(dir) : options.Hub?.CacheDir ?? DefaultCacheDir();

    /// <summary>The Hub settings of <paramref name="options"/> (else the environment's), with <paramref name="cache"/> as their cache.</summary>
    internal static HubSettings SettingsOf(LoadOptions options, string cache) =>
        (options.Hub ?? HubSettings.FromEnvironment(cacheDir: cache)) with { CacheDir = UserPath.FullPath(cache) };

    /// <summary>A cache miss that offline mode keeps from being downloaded.</summary>
    internal static DiffusersException OfflineMiss(DiffusersException miss) =>
        new(miss.Message + " Offline mode is enabled (HF_HUB_OFFLINE=1), so nothing is downloaded.") { FilePath = miss.FilePath };

    /// <summary>A cache miss whose download failed: the miss, the endpoint and the Hub's error, of the Hub error's kind.</summary>
    internal static HubException DownloadFailed(DiffusersException miss, HubSettings settings, HubException e) =>
        new(e.Kind, $"{miss.Message} Downloading it from {settings.Endpoint.AbsoluteUri.TrimEnd('/')} failed: {e.Message}", e)
        { StatusCode = e.StatusCode, Url = e.Url, RepoId = e.RepoId, CommitHash = e.CommitHash, FilePath = miss.FilePath };

    /// <summary>
    /// The cached folder (null returned), or the reason it is not cached (returned, not thrown). With a
    /// <paramref name="variant"/>, a cached model folder without that variant's files is a miss: the Hub may have them
    /// (diffusers asks it, and downloads them). When some component folders of a pipeline snapshot hold the variant and
    /// others do not, the snapshot is also returned in <paramref name="folder"/>: it is what diffusers loads offline
    /// (the variant where a folder holds it); when none does, or a single model folder lacks it, there is nothing to load.
    /// </summary>
    private static DiffusersException? FromCache(string idOrPath, string? subfolder, string rev, string cache, string? variant, out string? folder)
    {
        folder = null;
        string repo = CacheLayout.StorageFolder(cache, idOrPath);
        string howTo = DownloadHint.For(idOrPath, rev, cache, variant, "folder");
        if (!Directory.Exists(repo))
            return new DiffusersException(
                $"'{idOrPath}' is not a local folder and is not in the Hugging Face cache ({repo} does not exist). {howTo}")
            { FilePath = repo };

        string? sha;
        string refFile;
        try { sha = CacheLayout.ResolveCommit(repo, rev, out refFile); }
        catch (DiffusersException badRef)
        {
            // a ref that holds no commit sha: an error offline; online the download replaces it with the Hub's answer, as
            // huggingface_hub's snapshot_download never reads the ref (HubClient does the same)
            return badRef;
        }
        if (sha is null)
        {
            return new DiffusersException(
                $"'{idOrPath}' is in the Hugging Face cache ({repo}) but revision '{rev}' is not ({refFile} does not exist). {howTo}")
            { FilePath = refFile };
        }
        string snapshot = Path.Combine(repo, "snapshots", sha);
        if (!Directory.Exists(snapshot))
            return new DiffusersException(
                $"'{idOrPath}' revision '{rev}' points to commit {sha}, but the Hugging Face cache has no snapshot {snapshot}. {howTo}")
            { FilePath = snapshot };
        if (!string.IsNullOrEmpty(subfolder) && !Directory.Exists(Path.Combine(snapshot, subfolder)))
            return new DiffusersException(
                $"'{idOrPath}' revision '{rev}' is in the Hugging Face cache but its snapshot {snapshot} has no subfolder '{subfolder}'. {howTo}")
            { FilePath = Path.Combine(snapshot, subfolder) };
        if (!string.IsNullOrEmpty(subfolder) && MissingFiles(Path.Combine(snapshot, subfolder)) is { } lacking)
            return new DiffusersException(
                $"'{idOrPath}' revision '{rev}' is only partly in the Hugging Face cache: its folder {Path.Combine(snapshot, subfolder)} lacks {lacking} (an interrupted download?). {howTo}")
            { FilePath = Path.Combine(snapshot, subfolder) };
        if (string.IsNullOrEmpty(subfolder) && MissingPipelineParts(snapshot) is { } missing)
            return new DiffusersException(
                $"'{idOrPath}' revision '{rev}' is only partly in the Hugging Face cache: its snapshot {snapshot} lacks {missing}. {howTo}")
            { FilePath = snapshot };
        if (variant is not null)
        {
            var models = (string.IsNullOrEmpty(subfolder) ? ComponentFolders(snapshot) : [Path.Combine(snapshot, subfolder)])
                .Where(m => CacheLayout.FileExists(Path.Combine(m, "config.json"))).ToList();
            var without = models.Where(m => !PipelineVariant.FolderHolds(m, variant)).ToList();
            if (without.Count > 0)
            {
                if (without.Count < models.Count) folder = snapshot;   // some components hold the variant
                return new DiffusersException(
                    $"'{idOrPath}' revision '{rev}' is in the Hugging Face cache without the '{variant}' variant: there are no '{variant}' weight files in "
                    + $"{string.Join(", ", without)}. {howTo}")
                { FilePath = without[0] };
            }
        }
        folder = WithSubfolder(snapshot, subfolder, idOrPath);
        return null;
    }

    /// <summary>
    /// The folders of a snapshot's components (those <c>model_index.json</c> names), or the snapshot itself for a single model.
    /// </summary>
    private static List<string> ComponentFolders(string snapshot)
    {
        var index = Path.Combine(snapshot, "model_index.json");
        return CacheLayout.FileExists(index) ? ComponentNames(index).Select(name => Path.Combine(snapshot, name)).ToList() : [snapshot];
    }

    /// <summary>
    /// What a cached snapshot used as a whole lacks: <c>model_index.json</c> / <c>config.json</c>, or the folder of a
    /// component that <c>model_index.json</c> names and a pipeline loads (a download that stopped half way, or one
    /// component fetched alone).
    /// </summary>
    private static string? MissingPipelineParts(string snapshot)
    {
        string index = Path.Combine(snapshot, "model_index.json");
        if (Dangling(index)) return "the blob of model_index.json (a dangling link)";
        if (!CacheLayout.FileExists(index))
            return CacheLayout.FileExists(Path.Combine(snapshot, "config.json")) ? MissingFiles(snapshot) : "model_index.json (or config.json)";
        foreach (var name in ComponentNames(index))
        {
            string folder = Path.Combine(snapshot, name);
            if (!Directory.Exists(folder)) return $"the '{name}' folder";
            if (MissingFiles(folder) is { } lacking) return $"{lacking} in the '{name}' folder";
        }
        return null;
    }

    /// <summary>
    /// The components <c>model_index.json</c> names with a library (not <c>[null, null]</c>) that a pipeline loads
    /// (not <see cref="PipelineFileSelection.NotLoadedComponents"/>: a Python cache made with <c>safety_checker=None</c>
    /// has no safety checker); none when it cannot be read (a broken model_index.json is reported by whoever reads it,
    /// with its position).
    /// </summary>
    private static List<string> ComponentNames(string index)
    {
        var names = new List<string>();
        try
        {
            using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(index));
            if (doc.RootElement.ValueKind != System.Text.Json.JsonValueKind.Object) return names;
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (p.Name.StartsWith('_') || p.Value.ValueKind != System.Text.Json.JsonValueKind.Array
                    || p.Value.GetArrayLength() != 2 || p.Value[0].ValueKind != System.Text.Json.JsonValueKind.String
                    || !PipelineIndex.IsFolderName(p.Name) || PipelineFileSelection.IsNotLoaded(p.Name))
                    continue; // not a component, a name PipelineIndex refuses when the index is read, or never loaded
                names.Add(p.Name);
            }
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException or IOException)
        {
            return [];
        }
        return names;
    }

    /// <summary>
    /// What a cached component folder lacks, judged offline the way an interrupted download leaves it: no file at all,
    /// a link whose blob never arrived, or a model's <c>config.json</c> without any weight file.
    /// </summary>
    private static string? MissingFiles(string folder)
    {
        var files = Directory.GetFiles(folder);
        if (files.Length == 0) return "any file";
        foreach (var f in files)
            if (Dangling(f)) return $"the blob of {Path.GetFileName(f)} (a dangling link)";
        bool model = CacheLayout.FileExists(Path.Combine(folder, "config.json"));
        bool weights = files.Any(f => f.EndsWith(".safetensors", StringComparison.Ordinal) || f.EndsWith(".bin", StringComparison.Ordinal)
                                      || f.EndsWith(".index.json", StringComparison.Ordinal) || f.Contains(".index.", StringComparison.Ordinal));
        return model && !weights ? "its weights (config.json is there, no .safetensors or .bin)" : null;
    }

    /// <summary>
    /// A snapshot link whose blob is gone (deleted by hand, or a cleaner): .NET's <c>File.Exists</c> is true for it on
    /// Unix, <see cref="CacheLayout.FileExists"/> (Python's <c>os.path.exists</c>) is not.
    /// </summary>
    private static bool Dangling(string path) => new FileInfo(path).LinkTarget is not null && !CacheLayout.FileExists(path);

    /// <summary>The Hub cache folder the environment selects (see the class summary; <see cref="HubSettings.DefaultCacheDir"/>).</summary>
    public static string DefaultCacheDir() => HubSettings.DefaultCacheDir();

    /// <summary>
    /// huggingface_hub's <c>validate_repo_id</c>: <c>name</c> or <c>namespace/name</c>. The one rule is
    /// <see cref="HubRepoId.IsValid"/>; this name stays for the loaders' callers.
    /// </summary>
    public static bool IsValidRepoId(string id) => HubRepoId.IsValid(id);

    /// <summary>
    /// The cache folder name of a model repo, <c>models--org--name</c>: <see cref="HubRepoId.FolderName"/>, which refuses an
    /// invalid id (<see cref="HubException"/>, InvalidInput, huggingface_hub's <c>validate_repo_id</c> message).
    /// </summary>
    public static string RepoFolderName(string repoId) => HubRepoId.FolderName(repoId);

    private static string WithSubfolder(string folder, string? subfolder, string idOrPath)
    {
        if (string.IsNullOrEmpty(subfolder)) return folder;
        if (Path.IsPathRooted(subfolder) || subfolder.Split('/', '\\').Any(p => p is ".." or ""))
            throw new DiffusersException($"Invalid subfolder '{subfolder}' for '{idOrPath}': expected a relative folder name like 'unet'");
        string sub = Path.Combine(folder, subfolder);
        if (!Directory.Exists(sub))
            throw new DiffusersException($"'{idOrPath}' has no subfolder '{subfolder}' ({sub} does not exist)") { FilePath = sub };
        return sub;
    }
}
