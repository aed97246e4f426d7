namespace DiffusersSharp.Hub;

public sealed partial class HubClient
{
    /// <summary>
    /// Makes <paramref name="repoId"/> available locally for <c>FromPretrained(repoId, subfolder:)</c> and returns the
    /// local folder (<c>snapshots/{commit}</c> or its <paramref name="subfolder"/>). Without a subfolder, a pipeline
    /// repository (one with <c>model_index.json</c>) is downloaded as <see cref="DownloadPipelineAsync"/> does; otherwise
    /// only the folder's configs and one weight format (<see cref="PipelineFileSelection.SelectFolder"/>) are fetched.
    /// Offline, or with the Hub unreachable, the cached snapshot is used.
    /// </summary>
    public async Task<string> DownloadFolderAsync(
        string repoId, string? subfolder = null, string? revision = null, string? variant = null, bool localFilesOnly = false,
        string? token = null, IProgress<HubDownloadProgress>? progress = null, CancellationToken ct = default)
    {
        revision = HubRepoId.ValidateWithRevision(repoId, revision);
        string? sub = string.IsNullOrEmpty(subfolder) ? null : subfolder.Trim('/');
        if (sub is not null) CacheLayout.RelativeFileName(sub);
        string Within(string snapshot) => sub is null ? snapshot : Path.Combine(snapshot, Path.Combine(sub.Split('/')));

        var (info, cached) = await InfoOrCachedSnapshotAsync(repoId, revision, localFilesOnly, token, progress, ct,
                                                             sub is null ? null : Path.Combine(sub.Split('/'))).ConfigureAwait(false);
        if (info is null)
        {
            string folder = Within(cached!);
            if (!Directory.Exists(folder))
                throw new HubException(HubErrorKind.LocalEntryNotFound,
                    $"The cached snapshot {cached} of {repoId}@{revision} has no folder '{sub}', and the Hub cannot be asked (offline or unreachable).")
                { RepoId = repoId };
            return folder;
        }

        if (sub is null && info.Files.Contains("model_index.json"))
            return (await PipelineFromInfoAsync(repoId, revision, info, variant, token, progress, ct).ConfigureAwait(false)).Snapshot;

        return Within((await FolderFromInfoAsync(repoId, revision, info, sub, variant, token, progress, ct).ConfigureAwait(false)).Snapshot);
    }

    /// <summary>
    /// Downloads <see cref="PipelineFileSelection.SelectFolder"/>'s files of <paramref name="sub"/> (null: the top);
    /// returns the snapshot folder and the selected files.
    /// </summary>
    private async Task<(string Snapshot, IReadOnlyList<string> Files)> FolderFromInfoAsync(
        string repoId, string revision, RepoRevisionInfo info, string? sub, string? variant, string? token,
        IProgress<HubDownloadProgress>? progress, CancellationToken ct)
    {
        var files = PipelineFileSelection.SelectFolder(info.Files, sub, variant);
        if (files.Count == 0)
            throw new HubException(HubErrorKind.EntryNotFound,
                $"{repoId}@{revision} has no files in '{sub ?? "/"}'" + (sub is null ? "." : $". Folders: {string.Join(", ", info.Files.Where(f => f.Contains('/')).Select(f => f[..f.IndexOf('/')]).Distinct().Take(20))}."))
            { RepoId = repoId };
        string snapshot = await SnapshotCoreAsync(repoId, revision, info, files.Select(FnMatch.Escape).ToList(), null, false, token, progress, ct).ConfigureAwait(false);
        return (snapshot, files);
    }
}
