namespace DiffusersSharp.Hub;

public sealed partial class HubClient
{
    /// <summary>
    /// <c>snapshot_download</c>: downloads the files of <paramref name="repoId"/>@<paramref name="revision"/> that match
    /// <paramref name="allowPatterns"/> (when given) and no <paramref name="ignorePatterns"/> (fnmatch patterns), in
    /// parallel, and returns the snapshot folder <c>snapshots/{commit}</c>. Offline or with the Hub unreachable, the
    /// cached snapshot of the revision is returned.
    /// </summary>
    public Task<string> SnapshotDownloadAsync(
        string repoId, string? revision = null, IEnumerable<string>? allowPatterns = null, IEnumerable<string>? ignorePatterns = null,
        bool localFilesOnly = false, string? token = null, IProgress<HubDownloadProgress>? progress = null, CancellationToken ct = default) =>
        SnapshotCoreAsync(repoId, revision ?? "main", null, allowPatterns?.ToList(), ignorePatterns?.ToList(), localFilesOnly, token, progress, ct);

    private async Task<string> SnapshotCoreAsync(
        string repoId, string revision, RepoRevisionInfo? info, List<string>? allow, List<string>? ignore,
        bool localFilesOnly, string? token, IProgress<HubDownloadProgress>? progress, CancellationToken ct)
    {
        HubRepoId.Validate(repoId);
        HubRepoId.ValidateRevision(revision);
        string storage = CacheLayout.StorageFolder(Settings.CacheDir, repoId);
        HubException? apiError = null;
        if (info is null && !localFilesOnly && !Settings.Offline)
        {
            try { info = await GetRevisionInfoAsync(repoId, revision, token, retry: CacheLayout.CachedSnapshot(storage, revision, lenient: true) is null, ct).ConfigureAwait(false); }
            catch (HubException e) when (e.Kind is HubErrorKind.Network or HubErrorKind.Http or HubErrorKind.RepositoryNotFound or HubErrorKind.GatedRepo)
            {
                apiError = e;
            }
        }

        if (info is null)
        {
            // after a failed request a ref that holds no commit is a cache miss (the error is the request's), else the error naming it
            if (CacheLayout.CachedSnapshot(storage, revision, lenient: apiError is not null) is { } cached) return cached;
            string where = $"{repoId}@{revision} in the cache ({Settings.CacheDir})";
            if (localFilesOnly)
                throw NotCached(repoId, $"Cannot find a cached snapshot of {where} and outgoing traffic has been disabled. "
                                        + "To enable repo look-ups and downloads online, pass 'localFilesOnly: false'.", null);
            if (Settings.Offline)
                throw NotCached(repoId, $"Cannot find a cached snapshot of {where} and offline mode is enabled. "
                                        + "To enable repo look-ups and downloads online, set HF_HUB_OFFLINE=0.", null);
            if (apiError is not null && HubHttp.IsAuthOrRepoError(apiError)) throw apiError;
            throw NotCached(repoId, $"An error happened while trying to locate the files of {repoId}@{revision} on the Hub and there is no cached snapshot of {where}. "
                                    + $"Please check your connection and try again. Cause: {apiError?.Message}", apiError!);
        }

        var files = FnMatch.Filter(info.Files, allow, ignore).ToList();
        string snapshot = Path.Combine(storage, "snapshots", info.Sha);
        CacheLayout.EnsureDirectory(storage, Settings.CacheDir);
        TryCache(() => CacheLayout.WriteRef(storage, revision, info.Sha));
        // the snapshot folder exists even when no file matched, so the ref never names a missing snapshot (which
        // `cache list` and huggingface_hub's scan-cache report as a corrupted cache)
        TryCache(() => Directory.CreateDirectory(snapshot));

        await Parallel.ForEachAsync(files,
            new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, Options.MaxParallelDownloads), CancellationToken = ct },
            async (file, t) => await DownloadFileAsync(repoId, file, info.Sha, null, false, token, progress, t).ConfigureAwait(false))
            .ConfigureAwait(false);
        return snapshot;
    }

    /// <summary>
    /// diffusers' <c>DiffusionPipeline.download</c>: fetches <c>model_index.json</c>, then only what the pipeline needs
    /// (each component's config and one weight format: safetensors over .bin, the <paramref name="variant"/> where it
    /// exists). Returns the snapshot folder. Offline, or with the Hub unreachable, the cached snapshot is returned.
    /// </summary>
    public async Task<string> DownloadPipelineAsync(
        string repoId, string? revision = null, string? variant = null, bool localFilesOnly = false, string? token = null,
        IProgress<HubDownloadProgress>? progress = null, CancellationToken ct = default)
    {
        revision = HubRepoId.ValidateWithRevision(repoId, revision);
        var (info, cached) = await InfoOrCachedSnapshotAsync(repoId, revision, localFilesOnly, token, progress, ct).ConfigureAwait(false);
        if (info is null) return cached!;
        return (await PipelineFromInfoAsync(repoId, revision, info, variant, token, progress, ct).ConfigureAwait(false)).Snapshot;
    }

    /// <summary>Downloads diffusers' selection of a pipeline repository; returns the snapshot folder and the selected files.</summary>
    private async Task<(string Snapshot, IReadOnlyList<string> Files)> PipelineFromInfoAsync(
        string repoId, string revision, RepoRevisionInfo info, string? variant, string? token, IProgress<HubDownloadProgress>? progress, CancellationToken ct)
    {
        string storage = CacheLayout.StorageFolder(Settings.CacheDir, repoId);
        if (!info.Files.Contains("model_index.json"))
            throw new HubException(HubErrorKind.EntryNotFound,
                $"{repoId}@{revision} has no model_index.json: it is not a diffusers pipeline repository (files: {string.Join(", ", info.Files.Take(20))}).")
            { RepoId = repoId };
        string modelIndex = await DownloadFileAsync(repoId, "model_index.json", info.Sha, null, false, token, progress, ct).ConfigureAwait(false);
        TryCache(() => CacheLayout.WriteRef(storage, revision, info.Sha));
        var selection = PipelineFileSelection.Select(await File.ReadAllTextAsync(modelIndex, ct).ConfigureAwait(false), info.Files, variant, modelIndex);
        string snapshot = Path.Combine(storage, "snapshots", info.Sha);
        if (selection.Files.All(f => CacheLayout.FileExists(Path.Combine(snapshot, Path.Combine(f.Split('/'))))))
            return (snapshot, selection.Files);
        return (await SnapshotCoreAsync(repoId, revision, info, selection.AllowPatterns.ToList(), selection.IgnorePatterns.ToList(),
                                        false, token, progress, ct).ConfigureAwait(false), selection.Files);
    }

    /// <summary>
    /// The revision's info from the Hub, or, offline / with the Hub unreachable (diffusers: "Couldn't connect to the Hub:
    /// will try to load from local cache"), the cached snapshot folder of the revision. The info call is made once, without
    /// retries, when that snapshot holds <paramref name="within"/> (a subfolder; null: the snapshot itself).
    /// </summary>
    private async Task<(RepoRevisionInfo? Info, string? CachedSnapshot)> InfoOrCachedSnapshotAsync(
        string repoId, string revision, bool localFilesOnly, string? token, IProgress<HubDownloadProgress>? progress, CancellationToken ct,
        string? within = null)
    {
        RepoRevisionInfo? info = null;
        HubException? infoError = null;
        if (!localFilesOnly && !Settings.Offline)
        {
            bool cached = CacheLayout.CachedSnapshot(CacheLayout.StorageFolder(Settings.CacheDir, repoId), revision, lenient: true) is { } snapshot
                          && (within is null || Directory.Exists(Path.Combine(snapshot, within)));
            try { info = await GetRevisionInfoAsync(repoId, revision, token, retry: !cached, ct).ConfigureAwait(false); }
            catch (HubException e) when (e.Kind is HubErrorKind.Network or HubErrorKind.Http or HubErrorKind.RepositoryNotFound
                                             or HubErrorKind.GatedRepo or HubErrorKind.RevisionNotFound)
            {
                infoError = e; // "Couldn't connect to the Hub: will try to load from local cache."
            }
        }

        if (info is null)
        {
            try
            {
                // Offline: SnapshotCore skips the network itself and names HF_HUB_OFFLINE in its error.
                return (null, await SnapshotCoreAsync(repoId, revision, null, null, null, localFilesOnly: !Settings.Offline, token, progress, ct).ConfigureAwait(false));
            }
            catch (HubException e) when (e.Kind == HubErrorKind.LocalEntryNotFound && infoError is not null)
            {
                if (HubHttp.IsAuthOrRepoError(infoError) || infoError.Kind == HubErrorKind.RevisionNotFound) throw infoError;
                throw new HubException(HubErrorKind.LocalEntryNotFound,
                    $"Cannot load model {repoId}: model is not cached locally ({Settings.CacheDir}) and an error occurred while trying to fetch metadata from the Hub: {infoError.Message}",
                    infoError)
                { RepoId = repoId };
            }
        }

        return (info, null);
    }
}
