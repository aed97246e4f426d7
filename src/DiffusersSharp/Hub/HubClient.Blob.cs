using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Text.RegularExpressions;

namespace DiffusersSharp.Hub;

public sealed partial class HubClient
{
    /// <summary>
    /// <c>http_get</c> into <c>blobs/{etag}.incomplete</c>: resumes from the partial file's length with a Range
    /// request, retries broken streams, then checks size and SHA-256 (LFS etags) before the blob becomes visible.
    /// </summary>
    private async Task DownloadBlobAsync(
        string repoId, string filename, FileMetadata meta, string blobPath, string? token,
        IProgress<HubDownloadProgress>? progress, CancellationToken ct)
    {
        string incomplete = blobPath + ".incomplete";
        long Length() => File.Exists(incomplete) ? new FileInfo(incomplete).Length : 0;
        long pos = Length();
        if (meta.Size is { } known && pos > known)
        {
            File.Delete(incomplete);
            pos = 0;
        }
        var tracker = new ProgressTracker(repoId, filename, meta.Size, pos, progress, Options.ProgressInterval);
        // Retries are reset only by progress past the furthest byte reached so far, and a server that ignores Range
        // (so every retry starts again from byte 0) gets at most MaxRetries restarts: a stream that keeps breaking ends
        // in an error instead of an endless loop.
        int retriesLeft = Options.MaxRetries, restarts = 0;
        long furthest = pos;
        var buffer = new byte[64 * 1024];

        while (meta.Size is not { } size || pos < size)
        {
            Exception? networkError = null;
            using (var response = await _http.SendAsync(HttpMethod.Get, meta.Location, token, RedirectMode.All, repoId, pos, ct).ConfigureAwait(false))
            {
                if (pos > 0 && response.StatusCode != HttpStatusCode.PartialContent)
                {
                    pos = 0; // the server ignored Range: start over
                    if (++restarts > Options.MaxRetries)
                        throw new HubException(HubErrorKind.Network,
                            $"Downloading {filename} from {repoId} failed: the server ignores Range requests (it answers {(int)response.StatusCode}, not 206) and the transfer broke {restarts} times; "
                            + $"it cannot be resumed. Max retries exceeded.")
                        { RepoId = repoId, Url = meta.Location, FilePath = incomplete };
                }
                Stream file = OpenPartial(incomplete, pos);
                try
                {
                    using var body = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
                    while (true)
                    {
                        int n;
                        try
                        {
                            using var readTimeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                            readTimeout.CancelAfter(Options.RequestTimeout);
                            n = await body.ReadAsync(buffer, readTimeout.Token).ConfigureAwait(false);
                        }
                        catch (Exception e) when (HubHttp.IsTransient(e, ct))
                        {
                            networkError = e;
                            break;
                        }
                        if (n == 0) break;
                        try
                        {
                            await file.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                        }
                        catch (IOException e)
                        {
                            throw WriteFailed(repoId, filename, incomplete, e);
                        }
                        pos += n;
                        if (pos > furthest)
                        {
                            furthest = pos;
                            retriesLeft = Options.MaxRetries; // progress was made
                        }
                        tracker.Report(pos);
                    }
                    try { await file.FlushAsync(ct).ConfigureAwait(false); }
                    catch (IOException e) { throw WriteFailed(repoId, filename, incomplete, e); }
                }
                finally
                {
                    try { file.Dispose(); } catch (IOException) { }
                }
            }
            pos = Length();
            if (networkError is null && meta.Size is null) break; // size unknown: a clean end of stream ends the file
            if (networkError is null && meta.Size is { } expected && pos >= expected) break;
            if (retriesLeft-- <= 0)
                throw new HubException(HubErrorKind.Network,
                    $"Downloading {filename} from {repoId} failed: {networkError?.Message ?? "the stream ended early"}. Max retries exceeded; "
                    + $"{pos} bytes are kept in {incomplete} and the next download resumes from there.", networkError ?? new EndOfStreamException())
                { RepoId = repoId, Url = meta.Location, FilePath = incomplete };
            await Task.Delay(_http.Backoff(Options.MaxRetries - retriesLeft - 1), ct).ConfigureAwait(false);
        }

        if (!File.Exists(incomplete)) using (File.Create(incomplete)) { } // an empty file
        long actual = Length();
        if (meta.Size is { } expectedSize && actual != expectedSize)
        {
            File.Delete(incomplete);
            throw new HubException(HubErrorKind.ChecksumMismatch,
                $"Consistency check failed: {filename} of {repoId} should be of size {expectedSize} but has size {actual}. The download was discarded; please retry.")
            { RepoId = repoId, Url = meta.Location, FilePath = blobPath };
        }
        if (Sha256Regex().IsMatch(meta.Etag))
        {
            string hash;
            using (var fs = new FileStream(incomplete, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan))
                hash = Convert.ToHexStringLower(await SHA256.HashDataAsync(fs, ct).ConfigureAwait(false));
            if (!string.Equals(hash, meta.Etag, StringComparison.OrdinalIgnoreCase))
            {
                File.Delete(incomplete);
                throw new HubException(HubErrorKind.ChecksumMismatch,
                    $"SHA-256 mismatch for {filename} of {repoId} at {meta.Commit}: expected {meta.Etag}, got {hash}. "
                    + "The corrupt download was discarded and nothing was added to the cache; please retry.")
                { RepoId = repoId, Url = meta.Location, FilePath = blobPath, CommitHash = meta.Commit };
            }
        }
        File.Move(incomplete, blobPath, overwrite: true);
        tracker.Complete(actual);
    }

    private Stream OpenPartial(string path, long position)
    {
        if (Options.OpenPartialFile is { } open) return open(path, position);
        var fs = new FileStream(path, FileMode.OpenOrCreate, FileAccess.Write, FileShare.Read, bufferSize: 0);
        fs.SetLength(position);
        fs.Position = position;
        return fs;
    }

    private static HubException WriteFailed(string repoId, string filename, string incomplete, IOException e) =>
        new(HubErrorKind.WriteFailed,
            $"Could not write {filename} of {repoId} to {incomplete}: {e.Message} (disk full?). The partial file is kept; "
            + "free some space and download again to resume.", e)
        { RepoId = repoId, FilePath = incomplete };

    [GeneratedRegex("^[0-9a-fA-F]{64}$")]
    private static partial Regex Sha256Regex();

    /// <summary>Rate-limited progress reports with the rate and ETA measured over this session's bytes.</summary>
    private sealed class ProgressTracker(string repoId, string file, long? total, long initial, IProgress<HubDownloadProgress>? sink, TimeSpan interval)
    {
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private TimeSpan? _last;

        public void Report(long pos)
        {
            if (sink is null || (_last is { } last && _clock.Elapsed - last < interval)) return;
            _last = _clock.Elapsed;
            sink.Report(Make(pos, false));
        }

        public void Complete(long pos) => sink?.Report(Make(pos, true));

        private HubDownloadProgress Make(long pos, bool done)
        {
            double seconds = Math.Max(_clock.Elapsed.TotalSeconds, 1e-6);
            double rate = (pos - initial) / seconds;
            TimeSpan? eta = total is { } t && rate > 0 ? TimeSpan.FromSeconds(Math.Max(0, t - pos) / rate) : null;
            return new HubDownloadProgress(repoId, file, pos, total, rate, done ? TimeSpan.Zero : eta, done);
        }
    }
}
