using DiffusersSharp.Hub;

namespace DiffusersSharp.Loading;

/// <summary>
/// Turns what a user passes to <c>load_lora_weights</c> or <c>load_textual_inversion</c> into one local file, as diffusers
/// 0.25.1's <c>lora_state_dict</c>, <c>load_textual_inversion_state_dicts</c> and <c>_get_model_file</c> do: a file as it
/// is; a folder (or its subfolder) through the weight name, else the <see cref="WeightFileRule"/>'s choice among its
/// files; a Hugging Face Hub id (<c>org/name</c>) through the Hub cache that <see cref="PretrainedLocator"/> uses, with
/// the same <see cref="LoadOptions"/>, downloading only the chosen file.
/// </summary>
public static class PretrainedFileLocator
{
    /// <summary>
    /// The local file of <paramref name="pathOrId"/>. A file is returned as it is (weight name and subfolder do not apply).
    /// A folder: <paramref name="subfolder"/> in it when given, then <paramref name="weightName"/> in that, or the file
    /// <paramref name="rule"/> chooses among its files. A Hub id: the weight name, or the rule's choice among the files of
    /// the revision (<see cref="LoadOptions.Revision"/>, default <c>main</c>) under the subfolder. The cached snapshot
    /// answers without a request when it holds the weight name or the rule's preferred file; otherwise the Hub lists the
    /// revision's files (<see cref="HubClient.GetRevisionInfoAsync(string, string?, string?, CancellationToken)"/>) and only
    /// the chosen file is downloaded into the cache, at the commit that listing named (so a push to the branch in between
    /// changes nothing), after which <c>refs/{revision}</c> names that commit. Offline
    /// (<see cref="LoadOptions.LocalFilesOnly"/>, <c>HF_HUB_OFFLINE=1</c>), or with the Hub unreachable, the rule chooses
    /// among the cached snapshot's files: diffusers instead refuses offline loads without a weight name ("When using the
    /// offline mode, you must specify a `weight_name`"). Of <paramref name="options"/> it reads <c>Revision</c>,
    /// <c>CacheDir</c>, <c>LocalFilesOnly</c>, <c>Token</c>, <c>Hub</c>, <c>HubClientOptions</c> and <c>DownloadProgress</c>.
    /// </summary>
    public static string Resolve(string pathOrId, WeightFileRule rule, string? weightName = null, string? subfolder = null, LoadOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(rule);
        options ??= LoadOptions.Default;
        if (string.IsNullOrWhiteSpace(pathOrId))
            throw new DiffusersException($"No {rule.What} file given: expected a file, a folder or a Hugging Face Hub id like 'org/name'");
        if (weightName is not null && !IsRelativeName(weightName))
            throw new DiffusersException($"Invalid weight name '{weightName}' for '{pathOrId}': expected a file name in it, like '{rule.Preferred}'") { Key = "weight_name" };
        string? sub = string.IsNullOrEmpty(subfolder) ? null : subfolder.Replace('\\', '/').Trim('/');
        if (sub is not null && !IsRelativeName(sub))
            throw new DiffusersException($"Invalid subfolder '{subfolder}' for '{pathOrId}': expected a relative folder name") { Key = "subfolder" };

        string local = UserPath.ExpandUser(pathOrId);
        if (File.Exists(local)) return Path.GetFullPath(local);
        if (Directory.Exists(local)) return InFolder(pathOrId, Path.GetFullPath(local), sub, rule, weightName);
        if (!PretrainedLocator.IsValidRepoId(pathOrId))
            throw new DiffusersException(
                $"{Capitalized(rule.What)} file not found: '{pathOrId}' is neither an existing file or folder nor a valid Hugging Face Hub id "
                + "('org/name': letters, digits, '-', '_', '.'; no '--' or '..'; at most 96 characters)")
            { FilePath = pathOrId };
        return FromHub(pathOrId, rule, weightName, sub, options);
    }

    private static string InFolder(string given, string folder, string? sub, WeightFileRule rule, string? weightName)
    {
        string dir = sub is null ? folder : Path.Combine(folder, Path.Combine(sub.Split('/')));
        if (!Directory.Exists(dir))
            throw new DiffusersException($"'{given}' has no subfolder '{sub}' ({dir} does not exist)") { FilePath = dir };
        var files = Directory.GetFiles(dir).Select(f => Path.GetFileName(f)).Order(StringComparer.Ordinal).ToList();
        string name = weightName ?? rule.Choose(files, $"{Capitalized(rule.What)} folder {dir}")
                      ?? throw new DiffusersException($"{Capitalized(rule.What)} folder {dir} holds no {rule.What} file ({rule.Expected})") { FilePath = dir };
        string file = Path.Combine(dir, Path.Combine(name.Split('/')));
        if (!File.Exists(file))
            throw new DiffusersException($"{Capitalized(rule.What)} folder {dir} has no file named '{name}'") { FilePath = file, Key = "weight_name" };
        return file;
    }

    private static string FromHub(string id, WeightFileRule rule, string? weightName, string? sub, LoadOptions options)
    {
        string rev = options.Revision ?? "main";
        PretrainedLocator.CheckRevisionAndSubfolder(id, rev, sub);
        string cache = PretrainedLocator.CacheDirOf(options);
        string at = $"'{id}'" + (rev == "main" ? "" : $" revision '{rev}'") + (sub is null ? "" : $" subfolder '{sub}'");
        string wanted = weightName is null ? $"{rule.What} file" : $"file '{weightName}'";

        // the cache: its answer is final when it holds the weight name or the rule's preferred file
        string? cached = null;
        if (CachedSnapshot(cache, id, rev, out var badRef) is { } snapshot)
        {
            string dir = sub is null ? snapshot : Path.Combine(snapshot, Path.Combine(sub.Split('/')));
            var files = Directory.Exists(dir) ? SnapshotFiles(dir) : [];
            string? name = weightName ?? rule.Choose(files, $"The cached snapshot {dir} of {at}");
            if (name is not null && files.Contains(name))
            {
                cached = Path.Combine(dir, Path.Combine(name.Split('/')));
                if (weightName is not null || name == rule.Preferred) return cached;
            }
        }
        var miss = new DiffusersException(
            $"'{id}' is not an existing file or folder, and the Hugging Face cache ({cache}) holds no {wanted} of {at}. "
            + DownloadHint.For(id, rev, cache, variant: null, "file"))
        { FilePath = CacheLayout.StorageFolder(cache, id) };
        if (options.LocalFilesOnly) return cached ?? throw (badRef ?? miss);
        var settings = PretrainedLocator.SettingsOf(options, cache);
        if (settings.Offline) return cached ?? throw PretrainedLocator.OfflineMiss(badRef ?? miss);

        using var client = new HubClient(settings, options.HubClientOptions);
        RepoRevisionInfo info;
        try
        {
            // one attempt when the cache has an answer: it is used at once if the Hub cannot be reached
            info = client.GetRevisionInfoAsync(id, rev, options.Token, retry: cached is null, CancellationToken.None)
                         .ConfigureAwait(false).GetAwaiter().GetResult();
        }
        catch (HubException e) when (cached is not null && e.Kind is HubErrorKind.Network or HubErrorKind.Http)
        {
            return cached;
        }
        catch (HubException e)
        {
            throw PretrainedLocator.DownloadFailed(miss, settings, e);
        }

        var repoFiles = (sub is null ? info.Files : info.Files.Where(f => f.StartsWith(sub + "/", StringComparison.Ordinal)).Select(f => f[(sub.Length + 1)..]))
            .Order(StringComparer.Ordinal).ToList();
        string chosen = weightName ?? rule.Choose(repoFiles, $"{at} on the Hub (commit {info.Sha})")
                        ?? throw new DiffusersException($"{at} holds no {rule.What} file on the Hub ({rule.Expected}); its files: {Listing(repoFiles)}") { FilePath = id };
        if (!repoFiles.Contains(chosen))
            throw new DiffusersException($"{at} has no file named '{chosen}' on the Hub (commit {info.Sha}); its files: {Listing(repoFiles)}")
            { FilePath = id, Key = "weight_name" };
        try
        {
            // the listed commit's file (a push to the branch since cannot mix commits); refs/{rev} then names that commit
            return client.DownloadListedFileAsync(info, rev, sub is null ? chosen : sub + "/" + chosen, options.Token, options.DownloadProgress,
                                                  CancellationToken.None)
                         .ConfigureAwait(false).GetAwaiter().GetResult();
        }
        catch (HubException e)
        {
            throw PretrainedLocator.DownloadFailed(miss, settings, e);
        }
    }

    /// <summary>
    /// The cached snapshot folder of <paramref name="id"/> at <paramref name="rev"/>, or null; a ref that holds no commit sha
    /// is not cached, <paramref name="badRef"/> the error naming it (thrown offline; online the download rewrites the ref,
    /// as huggingface_hub's does).
    /// </summary>
    private static string? CachedSnapshot(string cache, string id, string rev, out DiffusersException? badRef)
    {
        badRef = null;
        string repo = CacheLayout.StorageFolder(cache, id);
        if (!Directory.Exists(repo)) return null;
        try { return CacheLayout.CachedSnapshot(repo, rev) is { } snapshot ? Path.GetFullPath(snapshot) : null; }
        catch (DiffusersException e)
        {
            badRef = e;
            return null;
        }
    }

    /// <summary>The files of a snapshot folder as repository names (<c>/</c>-separated), links whose blob is gone left out.</summary>
    private static List<string> SnapshotFiles(string dir) =>
        Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories)
            .Where(CacheLayout.FileExists)
            .Select(f => Path.GetRelativePath(dir, f).Replace(Path.DirectorySeparatorChar, '/'))
            .Order(StringComparer.Ordinal).ToList();

    private static bool IsRelativeName(string name) =>
        !Path.IsPathRooted(name) && !name.Contains('\\') && !name.Contains('\0') && !name.Split('/').Any(p => p is "" or "." or "..");

    private static string Listing(List<string> files) =>
        files.Count == 0 ? "none" : string.Join(", ", files.Take(20)) + (files.Count > 20 ? $", … ({files.Count} in all)" : "");

    private static string Capitalized(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..];
}
