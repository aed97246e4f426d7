namespace DiffusersSharp.Hub;

public sealed partial class HubClient
{
    /// <summary>
    /// What <c>diffusers download &lt;id&gt;</c> fetches without patterns, by the repository's <see cref="RepoLayout"/>
    /// (<see cref="PipelineFileSelection.LayoutOf"/>): a pipeline repository as <see cref="DownloadPipelineAsync"/> does
    /// (diffusers' selection), a model repository as <see cref="DownloadFolderAsync"/> does (its configs and one weight
    /// format), any other repository whole (every file of the revision, as <c>snapshot_download</c> without patterns:
    /// LoRAs, textual-inversion embeddings, single-file checkpoints, which <c>FromPretrained</c>'s selection would leave
    /// out). <paramref name="variant"/> belongs to the first two; for any other repository it is refused (InvalidInput)
    /// before anything is downloaded. Offline, or with the Hub unreachable, the cached snapshot is returned as it is
    /// (<see cref="RepoDownload.Layout"/> null).
    /// </summary>
    public async Task<RepoDownload> DownloadRepositoryAsync(
        string repoId, string? revision = null, string? variant = null, bool localFilesOnly = false, string? token = null,
        IProgress<HubDownloadProgress>? progress = null, CancellationToken ct = default)
    {
        revision = HubRepoId.ValidateWithRevision(repoId, revision);
        var (info, cached) = await InfoOrCachedSnapshotAsync(repoId, revision, localFilesOnly, token, progress, ct).ConfigureAwait(false);
        if (info is null) return new RepoDownload(cached!, null, []);

        var layout = PipelineFileSelection.LayoutOf(info.Files, variant);
        switch (layout)
        {
            case RepoLayout.Pipeline:
                var (pipeline, selected) = await PipelineFromInfoAsync(repoId, revision, info, variant, token, progress, ct).ConfigureAwait(false);
                return new RepoDownload(pipeline, layout, selected);
            case RepoLayout.Model:
                var (model, files) = await FolderFromInfoAsync(repoId, revision, info, null, variant, token, progress, ct).ConfigureAwait(false);
                return new RepoDownload(model, layout, files);
            default:
                if (variant is not null)
                    throw new HubException(HubErrorKind.InvalidInput,
                        $"variant '{variant}' picks weights in diffusers' file selection of a pipeline (model_index.json) or a model folder (config.json next to "
                        + $"diffusers/transformers weights of that variant or plain ones), which {repoId}@{revision} is not "
                        + $"(files: {string.Join(", ", info.Files.Take(20))}{(info.Files.Count > 20 ? ", …" : "")}); without a variant every file of it is downloaded.")
                    { Key = "variant", RepoId = repoId };
                string snapshot = await SnapshotCoreAsync(repoId, revision, info, null, null, false, token, progress, ct).ConfigureAwait(false);
                return new RepoDownload(snapshot, layout, info.Files.Order(StringComparer.Ordinal).ToList());
        }
    }
}
