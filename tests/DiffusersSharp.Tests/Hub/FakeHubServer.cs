using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace DiffusersSharp.Tests.Hub;

/// <summary>
/// A real HTTP/1.1 server on 127.0.0.1 (random free port) speaking the Hub protocol: <c>/api/models/{repo}/revision/{rev}</c>,
/// <c>/{repo}/resolve/{rev}/{path}</c> (302 to <c>/cdn/{sha256}</c> for LFS files, with X-Repo-Commit, X-Linked-Etag,
/// X-Linked-Size), Range requests, X-Error-Code errors, and fault injection. Counts every body byte it sends. The CDN
/// answers on a second port, another origin as the Hub's CDN is (a token must never reach it).
/// </summary>
public sealed class FakeHubServer : IDisposable
{
    private readonly TcpListener _listener, _cdnListener;
    private readonly CancellationTokenSource _cts = new();
    private readonly Task _accept, _acceptCdn;

    public FakeHubServer()
    {
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _cdnListener = new TcpListener(IPAddress.Loopback, 0);
        _cdnListener.Start();
        CdnPort = ((IPEndPoint)_cdnListener.LocalEndpoint).Port;
        _accept = Task.Run(() => AcceptLoop(_listener));
        _acceptCdn = Task.Run(() => AcceptLoop(_cdnListener));
    }

    public int Port { get; }

    /// <summary>The port of the CDN the LFS redirects point to.</summary>
    public int CdnPort { get; }

    public string Endpoint => $"http://127.0.0.1:{Port}";

    public string CdnEndpoint => $"http://127.0.0.1:{CdnPort}";

    /// <summary>When set, the LFS redirects carry no X-Linked-Size, and a body (so a Content-Length that is not the file's).</summary>
    public bool OmitLinkedSize { get; set; }

    public ConcurrentDictionary<string, FakeRepo> Repos { get; } = new();

    /// <summary>Body bytes sent, by request path.</summary>
    public ConcurrentDictionary<string, long> BytesServed { get; } = new();

    public ConcurrentQueue<(string Method, string Path, string? Authorization, string? Range)> Requests { get; } = new();

    /// <summary>Path → statuses to answer (one per request, in order) before serving normally.</summary>
    public ConcurrentDictionary<string, ConcurrentQueue<int>> FailStatus { get; } = new();

    /// <summary>Paths whose requests are read and never answered (until the server is disposed).</summary>
    public ConcurrentDictionary<string, bool> Stall { get; } = new();

    /// <summary>When set, the statuses of <see cref="FailStatus"/> carry this <c>X-Error-Message</c> header.</summary>
    public string? FailErrorMessage { get; set; }

    /// <summary>Path → number of body bytes after which the next response to it is cut (connection closed), once.</summary>
    public ConcurrentDictionary<string, long> DropAfter { get; } = new();

    /// <summary>Path → number of body bytes after which every response to it is cut (a stream that keeps breaking).</summary>
    public ConcurrentDictionary<string, long> DropEvery { get; } = new();

    /// <summary>When set, the CDN ignores Range headers and always answers 200 with the whole blob.</summary>
    public bool IgnoreRange { get; set; }

    /// <summary>SHA-256 → how many more times the CDN serves that blob with one byte flipped.</summary>
    public ConcurrentDictionary<string, int> Corrupt { get; } = new();

    /// <summary>Delay between 16 KiB body chunks of CDN responses (to make downloads overlap).</summary>
    public int ChunkDelayMs { get; set; }

    /// <summary>The most CDN responses that were being sent at the same time.</summary>
    public int MaxConcurrentCdn => _maxCdn;

    private int _cdnNow, _maxCdn;

    /// <summary>
    /// Called with each request's method and path before it is answered: a test's way to change the repositories between
    /// two requests of one load (a push to a branch between the listing and the download).
    /// </summary>
    public Action<string, string>? OnRequest { get; set; }

    /// <summary>Old repo id → new id: requests under the old id get a relative 307 redirect (a renamed repository).</summary>
    public ConcurrentDictionary<string, string> Renamed { get; } = new();

    public void Add(FakeRepo repo) => Repos[repo.Id] = repo;

    public static string CdnPath(byte[] blob) => "/cdn/" + FakeRepo.Sha256(blob);

    public long Served(string path) => BytesServed.TryGetValue(path, out long n) ? n : 0;

    public int Count(string method, string pathPrefix) => Requests.Count(r => r.Method == method && r.Path.StartsWith(pathPrefix, StringComparison.Ordinal));

    private async Task AcceptLoop(TcpListener listener)
    {
        while (!_cts.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await listener.AcceptTcpClientAsync(_cts.Token); }
            catch (Exception) { return; }
            _ = Task.Run(() => Handle(client));
        }
    }

    private async Task Handle(TcpClient client)
    {
        using (client)
        {
            try
            {
                var stream = client.GetStream();
                string? head = await ReadHead(stream);
                if (head is null) return;
                var lines = head.Split("\r\n");
                var first = lines[0].Split(' ');
                var headers = lines.Skip(1).Where(l => l.Contains(':'))
                    .ToDictionary(l => l[..l.IndexOf(':')].Trim().ToLowerInvariant(), l => l[(l.IndexOf(':') + 1)..].Trim());
                string method = first[0], path = first[1];
                headers.TryGetValue("authorization", out var auth);
                headers.TryGetValue("range", out var range);
                Requests.Enqueue((method, path, auth, range));
                OnRequest?.Invoke(method, path);
                await Respond(stream, method, path, auth, range);
                client.Client.Shutdown(SocketShutdown.Send);
            }
            catch (IOException) { }
            catch (SocketException) { }
            catch (ObjectDisposedException) { }
            catch (OperationCanceledException) { }
        }
    }

    private static async Task<string?> ReadHead(NetworkStream s)
    {
        var buf = new List<byte>();
        var one = new byte[1];
        while (buf.Count < 65536)
        {
            if (await s.ReadAsync(one) == 0) return null;
            buf.Add(one[0]);
            int n = buf.Count;
            if (n >= 4 && buf[n - 4] == '\r' && buf[n - 3] == '\n' && buf[n - 2] == '\r' && buf[n - 1] == '\n')
                return Encoding.ASCII.GetString(buf.ToArray(), 0, n - 4);
        }
        return null;
    }

    private async Task Respond(NetworkStream s, string method, string rawPath, string? auth, string? range)
    {
        if (Stall.ContainsKey(rawPath))
        {
            await Task.Delay(Timeout.Infinite, _cts.Token);
            return;
        }
        if (FailStatus.TryGetValue(rawPath, out var q) && q.TryDequeue(out int failCode))
        {
            await Send(s, method, rawPath, failCode, FailErrorMessage is { } message ? [("X-Error-Message", message)] : [], [], Retry: true);
            return;
        }
        string path = rawPath;
        foreach (var (oldId, newId) in Renamed)
            foreach (var prefix in new[] { $"/api/models/{oldId}/", $"/{oldId}/resolve/" })
                if (path.StartsWith(prefix, StringComparison.Ordinal))
                {
                    string target = prefix.Replace(oldId, newId) + path[prefix.Length..];
                    await Send(s, method, path, 307, [("Location", target)], []);
                    return;
                }
        if (path.StartsWith("/cdn/", StringComparison.Ordinal))
        {
            string sha = path[5..];
            byte[]? blob = Repos.Values.SelectMany(r => r.Commits.Values).SelectMany(c => c.Values).FirstOrDefault(b => Sha(b) == sha);
            if (blob is null) { await Error(s, method, path, 404, "EntryNotFound", null); return; }
            if (Corrupt.TryGetValue(sha, out int left) && left > 0)
            {
                Corrupt[sha] = left - 1;
                blob = (byte[])blob.Clone();
                blob[blob.Length / 2] ^= 0x5A;
            }
            int now = Interlocked.Increment(ref _cdnNow);
            int max;
            while (now > (max = _maxCdn) && Interlocked.CompareExchange(ref _maxCdn, now, max) != max) { }
            try { await SendRange(s, method, path, blob, range); }
            finally { Interlocked.Decrement(ref _cdnNow); }
            return;
        }
        if (path.StartsWith("/api/models/", StringComparison.Ordinal))
        {
            string rest = path["/api/models/".Length..];
            int at = rest.IndexOf("/revision/", StringComparison.Ordinal);
            string repoId = at < 0 ? rest : rest[..at];
            string rev = at < 0 ? "main" : Uri.UnescapeDataString(rest[(at + "/revision/".Length)..]);
            if (!Repos.TryGetValue(repoId, out var repo)) { await Error(s, method, path, 404, "RepoNotFound", null); return; }
            string? commit = ResolveRevision(repo, rev);
            if (commit is null) { await Error(s, method, path, 404, "RevisionNotFound", null); return; }
            string siblings = string.Join(",", repo.Commits[commit].Keys.Order(StringComparer.Ordinal).Select(f => $"{{\"rfilename\":\"{f}\"}}"));
            string json = $"{{\"id\":\"{repoId}\",\"modelId\":\"{repoId}\",\"sha\":\"{commit}\",\"siblings\":[{siblings}]}}";
            await Send(s, method, path, 200, [("Content-Type", "application/json")], Encoding.UTF8.GetBytes(json));
            return;
        }
        int resolve = path.IndexOf("/resolve/", StringComparison.Ordinal);
        if (resolve > 0)
        {
            string repoId = path[1..resolve];
            string[] tail = path[(resolve + "/resolve/".Length)..].Split('/', 2);
            string rev = Uri.UnescapeDataString(tail[0]);
            string file = tail.Length > 1 ? string.Join('/', tail[1].Split('/').Select(Uri.UnescapeDataString)) : "";
            if (!Repos.TryGetValue(repoId, out var repo)) { await Error(s, method, path, 404, "RepoNotFound", null); return; }
            if (repo.RequiredToken is { } tok && auth != "Bearer " + tok) { await Error(s, method, path, 401, "GatedRepo", null); return; }
            string? commit = ResolveRevision(repo, rev);
            if (commit is null) { await Error(s, method, path, 404, "RevisionNotFound", null); return; }
            if (!repo.Commits[commit].TryGetValue(file, out var bytes)) { await Error(s, method, path, 404, "EntryNotFound", commit); return; }
            if (FakeRepo.IsLfs(file))
            {
                string sha = Sha(bytes);
                var redirect = new List<(string, string)>
                {
                    ("Location", CdnEndpoint + "/cdn/" + sha), ("X-Repo-Commit", commit), ("X-Linked-Etag", $"\"{sha}\""),
                    ("ETag", $"\"{FakeRepo.GitBlobSha(Encoding.ASCII.GetBytes(sha))}\""),
                };
                if (!OmitLinkedSize) redirect.Add(("X-Linked-Size", bytes.Length.ToString()));
                await Send(s, method, path, 302, redirect, OmitLinkedSize ? Encoding.ASCII.GetBytes($"Found. Redirecting to {CdnEndpoint}/cdn/{sha}") : []);
                return;
            }
            await Send(s, method, path, 200, [("X-Repo-Commit", commit), ("ETag", $"\"{FakeRepo.GitBlobSha(bytes)}\"")], bytes);
            return;
        }
        await Error(s, method, path, 404, null, null);
    }

    private readonly ConcurrentDictionary<byte[], string> _sha = new(ReferenceEqualityComparer.Instance);

    private string Sha(byte[] bytes) => _sha.GetOrAdd(bytes, FakeRepo.Sha256);

    private static string? ResolveRevision(FakeRepo repo, string rev) =>
        repo.Branches.TryGetValue(rev, out var c) ? c : repo.Commits.ContainsKey(rev) ? rev : null;

    private Task Error(NetworkStream s, string method, string path, int code, string? errorCode, string? commit)
    {
        var h = new List<(string, string)>();
        if (errorCode is not null) h.Add(("X-Error-Code", errorCode));
        if (commit is not null) h.Add(("X-Repo-Commit", commit));
        return Send(s, method, path, code, h, Encoding.UTF8.GetBytes($"{{\"error\":\"{errorCode ?? "Not Found"}\"}}"));
    }

    private Task SendRange(NetworkStream s, string method, string path, byte[] blob, string? range)
    {
        if (!IgnoreRange && range is not null && range.StartsWith("bytes=", StringComparison.Ordinal) && range.EndsWith('-'))
        {
            long from = long.Parse(range[6..^1]);
            if (from >= blob.Length)
                return Send(s, method, path, 416, [("Content-Range", $"bytes */{blob.Length}")], []);
            return Send(s, method, path, 206, [("Content-Range", $"bytes {from}-{blob.Length - 1}/{blob.Length}"), ("Accept-Ranges", "bytes")],
                        blob[(int)from..], Chunked: true);
        }
        return Send(s, method, path, 200, [("Accept-Ranges", "bytes")], blob, Chunked: true);
    }

    private async Task Send(NetworkStream s, string method, string path, int code, IEnumerable<(string, string)> headers, byte[] body,
                            bool Chunked = false, bool Retry = false)
    {
        var sb = new StringBuilder($"HTTP/1.1 {code} {Reason(code)}\r\n");
        foreach (var (k, v) in headers) sb.Append(k).Append(": ").Append(v).Append("\r\n");
        if (Retry && code == 429) sb.Append("Retry-After: 0\r\n");
        sb.Append("Content-Length: ").Append(body.Length).Append("\r\nConnection: close\r\n\r\n");
        await s.WriteAsync(Encoding.ASCII.GetBytes(sb.ToString()));
        if (method == "HEAD") return;
        long limit = DropAfter.TryRemove(path, out long drop) ? drop : DropEvery.TryGetValue(path, out long every) ? every : long.MaxValue;
        int offset = 0;
        while (offset < body.Length && offset < limit)
        {
            int n = (int)Math.Min(Math.Min(16384, body.Length - offset), limit - offset);
            await s.WriteAsync(body.AsMemory(offset, n));
            offset += n;
            BytesServed.AddOrUpdate(path, n, (_, old) => old + n);
            if (Chunked && ChunkDelayMs > 0) await Task.Delay(ChunkDelayMs);
        }
        await s.FlushAsync();
    }

    private static string Reason(int code) => code switch
    {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        307 => "Temporary Redirect",
        401 => "Unauthorized",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        _ => "Status",
    };

    public void Dispose()
    {
        _cts.Cancel();
        _listener.Stop();
        _cdnListener.Stop();
        try { Task.WaitAll([_accept, _acceptCdn], 2000); } catch (AggregateException) { }
    }
}
