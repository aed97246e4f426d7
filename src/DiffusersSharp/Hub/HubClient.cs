namespace DiffusersSharp.Hub;

/// <summary>
/// Downloads files and snapshots of Hugging Face Hub model repositories into the cache layout huggingface_hub
/// 0.20.3 writes (so C# and Python share one cache), resumably, verified by SHA-256, with retries, file locks
/// and an offline fallback. A port of <c>hf_hub_download</c>, <c>snapshot_download</c> and diffusers'
/// <c>DiffusionPipeline.download</c>.
/// </summary>
public sealed partial class HubClient : IDisposable
{
    private readonly HttpClient _httpClient;
    private readonly bool _ownsClient;
    private readonly HubHttp _http;

    /// <param name="settings">Endpoint, token, offline flag and cache folder; default <see cref="HubSettings.FromEnvironment"/>.</param>
    /// <param name="options">Retries, timeouts, parallelism.</param>
    /// <param name="handler">The HTTP handler (redirects are followed by the client, so it must not follow them itself).</param>
    public HubClient(HubSettings? settings = null, HubClientOptions? options = null, HttpMessageHandler? handler = null)
    {
        Settings = settings ?? HubSettings.FromEnvironment();
        Options = options ?? new HubClientOptions();
        _httpClient = new HttpClient(handler ?? new SocketsHttpHandler { AllowAutoRedirect = false, AutomaticDecompression = System.Net.DecompressionMethods.None },
                                     disposeHandler: handler is null)
        { Timeout = Timeout.InfiniteTimeSpan };
        _ownsClient = true;
        _http = new HubHttp(_httpClient, Options);
    }

    /// <summary>The endpoint, token, cache and offline settings (from the environment unless given).</summary>
    public HubSettings Settings { get; }

    /// <summary>Timeouts, retries and parallelism of the downloads.</summary>
    public HubClientOptions Options { get; }

    /// <summary><c>GET {endpoint}/api/models/{repo}/revision/{revision}</c>: the commit sha and file list of a revision.</summary>
    public Task<RepoRevisionInfo> GetRevisionInfoAsync(string repoId, string? revision = null, string? token = null, CancellationToken ct = default) =>
        GetRevisionInfoAsync(repoId, revision, token, retry: true, ct);

    /// <summary>As above; <paramref name="retry"/> false for one attempt (a cached snapshot to fall back to).</summary>
    internal async Task<RepoRevisionInfo> GetRevisionInfoAsync(string repoId, string? revision, string? token, bool retry, CancellationToken ct)
    {
        revision = HubRepoId.ValidateWithRevision(repoId, revision);
        if (Settings.Offline)
            throw new HubException(HubErrorKind.LocalEntryNotFound,
                $"Cannot query the Hub for {repoId}@{revision}: offline mode is enabled (HF_HUB_OFFLINE=1).")
            { RepoId = repoId };
        string url = $"{Root}/api/models/{repoId}/revision/{Uri.EscapeDataString(revision)}";
        using var response = await _http.SendAsync(HttpMethod.Get, url, token ?? Settings.Token, RedirectMode.All, repoId, 0, ct, retry).ConfigureAwait(false);
        string json = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
        return RepoRevisionInfo.Parse(json, repoId, url);
    }

    /// <summary>
    /// <c>hf_hub_download</c>: the path of <paramref name="filename"/> in the local snapshot
    /// (<c>snapshots/{commit}/{filename}</c>), downloading it first unless it is cached.
    /// </summary>
    public async Task<string> DownloadFileAsync(
        string repoId, string filename, string? revision = null, string? subfolder = null, bool localFilesOnly = false,
        string? token = null, IProgress<HubDownloadProgress>? progress = null, CancellationToken ct = default)
    {
        revision = HubRepoId.ValidateWithRevision(repoId, revision);
        if (!string.IsNullOrEmpty(subfolder)) filename = subfolder.Trim('/') + "/" + filename;
        string rel = CacheLayout.RelativeFileName(filename);
        string storage = CacheLayout.StorageFolder(Settings.CacheDir, repoId);
        token ??= Settings.Token;

        if (HubRepoId.IsCommitHash(revision) && CacheLayout.FileExists(CacheLayout.PointerPath(storage, revision, rel)))
            return CacheLayout.PointerPath(storage, revision, rel);

        string url = ResolveUrl(repoId, revision, filename);
        FileMetadata? meta = null;
        HubException? headError = null;
        if (!localFilesOnly && !Settings.Offline)
        {
            try
            {
                // one attempt when the file is cached: a failure falls back to it at once (huggingface_hub's retry_on_errors=False)
                bool cached = CacheLayout.TryResolveCommit(storage, revision) is { } known && CacheLayout.FileExists(CacheLayout.PointerPath(storage, known, rel));
                meta = await GetFileMetadataAsync(url, token, repoId, retry: !cached, ct).ConfigureAwait(false);
            }
            catch (HubException e) when (e.Kind == HubErrorKind.EntryNotFound)
            {
                if (e.CommitHash is { } c && HubRepoId.IsCommitHash(c))
                {
                    string marker = CacheLayout.NoExistPath(storage, c, rel);
                    // the marker only saves a later request: where it cannot be written (a read-only shared cache), the
                    // answer is still "not found" (huggingface_hub logs "Could not cache non-existence of file" and goes on)
                    if (!File.Exists(marker))
                    {
                        try
                        {
                            Directory.CreateDirectory(Path.GetDirectoryName(marker)!);
                            using (File.Open(marker, FileMode.OpenOrCreate)) { }
                        }
                        catch (Exception x) when (x is IOException or UnauthorizedAccessException) { }
                    }
                    TryCache(() => CacheLayout.WriteRef(storage, revision, c));
                }
                throw new HubException(HubErrorKind.EntryNotFound,
                    $"{filename} not found in {repoId} at revision '{revision}'.\n{e.Message}", e)
                { StatusCode = e.StatusCode, Url = e.Url, RepoId = repoId, CommitHash = e.CommitHash };
            }
            catch (HubException e) when (e.Kind is HubErrorKind.Network or HubErrorKind.Http or HubErrorKind.RepositoryNotFound or HubErrorKind.GatedRepo)
            {
                headError = e;
            }
        }

        if (meta is null)
        {
            // offline / local files only, a ref that holds no commit is the error naming it; after a failed request it is a
            // cache miss, so the error is the request's (huggingface_hub: "An error happened while trying to locate the file")
            string? commit = headError is null ? CacheLayout.ResolveCommit(storage, revision) : CacheLayout.TryResolveCommit(storage, revision);
            if (commit is not null && CacheLayout.FileExists(CacheLayout.PointerPath(storage, commit, rel)))
                return CacheLayout.PointerPath(storage, commit, rel);
            if (localFilesOnly)
                throw NotCached(repoId, $"Cannot find {filename} of {repoId}@{revision} in the disk cache ({Settings.CacheDir}) and outgoing traffic has been disabled. "
                                        + "To enable hf.co look-ups and downloads online, set 'localFilesOnly' to false.", null);
            if (Settings.Offline)
                throw NotCached(repoId, $"Cannot find {filename} of {repoId}@{revision} in the disk cache ({Settings.CacheDir}) and offline mode is enabled. "
                                        + "To enable hf.co look-ups and downloads online, set HF_HUB_OFFLINE=0.", null);
            if (headError is not null && HubHttp.IsAuthOrRepoError(headError)) throw headError;
            throw NotCached(repoId, $"An error happened while trying to locate {filename} of {repoId}@{revision} on the Hub and it is not in the local cache "
                                    + $"({Settings.CacheDir}). Please check your connection and try again. Cause: {headError?.Message}", headError);
        }

        string blob = Path.Combine(storage, "blobs", meta.Etag);
        string pointer = CacheLayout.PointerPath(storage, meta.Commit, rel);
        CacheLayout.EnsureDirectory(Path.GetDirectoryName(blob)!, Settings.CacheDir);
        CacheLayout.EnsureDirectory(Path.GetDirectoryName(pointer)!, Settings.CacheDir);
        TryCache(() => CacheLayout.WriteRef(storage, revision, meta.Commit));

        if (CacheLayout.FileExists(pointer)) return pointer;
        if (CacheLayout.FileExists(blob))
        {
            TryCache(() => CacheLayout.CreateSymlink(blob, pointer, newBlob: false));
            return pointer;
        }

        FileLockHandle fileLock;
        try { fileLock = await FileLockHandle.AcquireAsync(CacheLayout.LockPath(Settings.CacheDir, repoId, meta.Etag), ct).ConfigureAwait(false); }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException) { throw CacheLayout.NotWritable(Settings.CacheDir, e); }
        using (fileLock)
        {
            // Another downloader may have finished while we waited for the lock.
            if (CacheLayout.FileExists(pointer)) return pointer;
            if (!CacheLayout.FileExists(blob))
            {
                // never send the token to another origin (the CDN); keep it for a same-host redirect (a renamed repo)
                string? blobToken = SameOrigin(meta.Location, url) ? token : null;
                await DownloadBlobAsync(repoId, filename, meta, blob, blobToken, progress, ct).ConfigureAwait(false);
                TryCache(() => CacheLayout.CreateSymlink(blob, pointer, newBlob: true));
            }
            else TryCache(() => CacheLayout.CreateSymlink(blob, pointer, newBlob: false));
        }
        return pointer;
    }

    /// <summary>
    /// <paramref name="filename"/> of the commit that a listing of <paramref name="revision"/> returned
    /// (<paramref name="listed"/>, from <see cref="GetRevisionInfoAsync(string, string?, string?, CancellationToken)"/>):
    /// downloaded at that commit, as <c>snapshot_download</c> hands the listed sha to <c>hf_hub_download</c>, so that a push
    /// to the branch between the listing and the download cannot give a file of another commit. Then
    /// <c>refs/{revision}</c> is set to the listed commit (<c>_cache_commit_hash_for_specific_revision</c>, which
    /// <c>snapshot_download</c> and <c>hf_hub_download</c> with a branch call; a download at a sha alone writes no ref),
    /// once the file is there: a failed download leaves the ref, and the snapshot it names, as they were.
    /// </summary>
    internal async Task<string> DownloadListedFileAsync(
        RepoRevisionInfo listed, string revision, string filename, string? token, IProgress<HubDownloadProgress>? progress, CancellationToken ct)
    {
        revision = HubRepoId.ValidateWithRevision(listed.RepoId, revision);
        string path = await DownloadFileAsync(listed.RepoId, filename, listed.Sha, null, localFilesOnly: false, token, progress, ct).ConfigureAwait(false);
        string storage = CacheLayout.StorageFolder(Settings.CacheDir, listed.RepoId);
        TryCache(() => CacheLayout.WriteRef(storage, revision, listed.Sha));
        return path;
    }

    /// <summary>
    /// Like <see cref="DownloadFileAsync"/>, but null when the file does not exist in the repository (an optional file);
    /// the answer is remembered as a <c>.no_exist/{commit}/{filename}</c> marker and reused without a request.
    /// </summary>
    public async Task<string?> TryDownloadFileAsync(
        string repoId, string filename, string? revision = null, string? subfolder = null, bool localFilesOnly = false,
        string? token = null, IProgress<HubDownloadProgress>? progress = null, CancellationToken ct = default)
    {
        HubRepoId.Validate(repoId);
        string full = string.IsNullOrEmpty(subfolder) ? filename : subfolder.Trim('/') + "/" + filename;
        string? cached = CacheLayout.TryLoadFromCache(Settings.CacheDir, repoId, full, revision ?? "main");
        if (cached == CacheLayout.NoExist && (localFilesOnly || Settings.Offline || HubRepoId.IsCommitHash(revision ?? ""))) return null;
        try
        {
            return await DownloadFileAsync(repoId, full, revision, null, localFilesOnly, token, progress, ct).ConfigureAwait(false);
        }
        catch (HubException e) when (e.Kind == HubErrorKind.EntryNotFound)
        {
            return null;
        }
        catch (HubException e) when (e.Kind == HubErrorKind.LocalEntryNotFound && cached == CacheLayout.NoExist)
        {
            return null;
        }
    }

    private string Root => Settings.Endpoint.AbsoluteUri.TrimEnd('/');

    /// <summary><c>hf_hub_url</c>: <c>{endpoint}/{repo}/resolve/{quote(revision)}/{quote(filename)}</c>.</summary>
    public string ResolveUrl(string repoId, string revision, string filename) =>
        $"{Root}/{repoId}/resolve/{Uri.EscapeDataString(revision)}/{string.Join('/', filename.Split('/').Select(Uri.EscapeDataString))}";

    private sealed record FileMetadata(string Commit, string Etag, string Location, long? Size);

    /// <summary><c>get_hf_file_metadata</c>: a HEAD that follows only relative redirects.</summary>
    private async Task<FileMetadata> GetFileMetadataAsync(string url, string? token, string repoId, bool retry, CancellationToken ct)
    {
        using var r = await _http.SendAsync(HttpMethod.Head, url, token, RedirectMode.RelativeOnly, repoId, 0, ct, retry).ConfigureAwait(false);
        string? Header(string name) => r.Headers.TryGetValues(name, out var v) ? v.FirstOrDefault()
                                      : r.Content.Headers.TryGetValues(name, out var cv) ? cv.FirstOrDefault() : null;
        string? commit = Header("X-Repo-Commit");
        string? etag = NormalizeEtag(Header("X-Linked-Etag") ?? Header("ETag"));
        string location = r.Headers.Location is { } loc ? new Uri(r.RequestMessage!.RequestUri!, loc).AbsoluteUri : r.RequestMessage!.RequestUri!.AbsoluteUri;
        // a redirect's Content-Length is its own body's, not the file's
        bool redirect = (int)r.StatusCode is >= 300 and <= 399;
        long? size = long.TryParse(Header("X-Linked-Size") ?? (redirect ? null : Header("Content-Length")), out long s) ? s : null;
        if (commit is null || !HubRepoId.IsCommitHash(commit))
            throw new HubException(HubErrorKind.Http,
                $"Distant resource {url} does not seem to be on a Hugging Face Hub (no X-Repo-Commit header). Check HF_ENDPOINT, your firewall and proxy settings.")
            { Url = url, RepoId = repoId };
        if (etag is null || etag.Length == 0 || etag.IndexOfAny(['/', '\\', '\0']) >= 0 || etag is "." or "..")
            throw new HubException(HubErrorKind.Http,
                $"Distant resource {url} does not have a usable ETag ('{etag}'), we won't be able to reliably ensure reproducibility.")
            { Url = url, RepoId = repoId };
        return new FileMetadata(commit, etag, location, size);
    }

    /// <summary>huggingface_hub's <c>urlparse(url).netloc == urlparse(location).netloc</c>: same host and port.</summary>
    private static bool SameOrigin(string a, string b) =>
        string.Equals(new Uri(a).Authority, new Uri(b).Authority, StringComparison.OrdinalIgnoreCase);

    /// <summary><c>_normalize_etag</c>: strips a leading <c>W/</c> and the quotes.</summary>
    internal static string? NormalizeEtag(string? etag) => etag?.TrimStart('W', '/').Trim('"');

    private void TryCache(Action write)
    {
        try { write(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw CacheLayout.NotWritable(Settings.CacheDir, e); }
    }

    private static HubException NotCached(string repoId, string message, Exception? inner) =>
        inner is null ? new(HubErrorKind.LocalEntryNotFound, message) { RepoId = repoId }
                      : new(HubErrorKind.LocalEntryNotFound, message, inner) { RepoId = repoId };

    /// <summary>Disposes the HTTP client when the client created it.</summary>
    public void Dispose()
    {
        if (_ownsClient) _httpClient.Dispose();
    }
}
