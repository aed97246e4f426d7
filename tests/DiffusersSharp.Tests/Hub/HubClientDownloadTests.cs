using DiffusersSharp.Hub;

namespace DiffusersSharp.Tests.Hub;

public sealed class HubClientDownloadTests : IDisposable
{
    private readonly HubTestEnv _env = new();

    public void Dispose() => _env.Dispose();

    private static readonly string[] TinyPipelineFiles =
        ["model_index.json", "scheduler/scheduler_config.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors"];

    private static List<string> FilesUnder(string folder) =>
        Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
                 .Select(f => Path.GetRelativePath(folder, f).Replace('\\', '/')).Order(StringComparer.Ordinal).ToList();

    [Fact]
    public async Task FirstDownloadWritesPythonLayoutThenOfflineReloadMakesNoRequest()
    {
        using var client = _env.Client();
        string snapshot = await client.DownloadPipelineAsync(HubTestEnv.TinyId);

        string repo = _env.RepoFolder(HubTestEnv.TinyId);
        Assert.Equal(Path.Combine(repo, "snapshots", _env.TinyCommit), snapshot);
        // diffusers' from_pretrained selection: configs + safetensors only, never the .bin
        Assert.Equal(TinyPipelineFiles, FilesUnder(snapshot));
        foreach (var f in TinyPipelineFiles)
            Assert.Equal(HubTestEnv.Golden(f), File.ReadAllBytes(Path.Combine(snapshot, f)));
        Assert.Equal(_env.TinyCommit, File.ReadAllText(Path.Combine(repo, "refs", "main")));

        // snapshots/{commit}/unet/x.safetensors -> ../../../blobs/{sha256}, a relative symlink
        byte[] weights = HubTestEnv.Golden("unet/diffusion_pytorch_model.safetensors");
        var link = new FileInfo(Path.Combine(snapshot, "unet", "diffusion_pytorch_model.safetensors"));
        Assert.Equal("../../../blobs/" + FakeRepo.Sha256(weights), link.LinkTarget);
        var cfgLink = new FileInfo(Path.Combine(snapshot, "model_index.json"));
        Assert.Equal("../../blobs/" + FakeRepo.GitBlobSha(HubTestEnv.Golden("model_index.json")), cfgLink.LinkTarget);
        Assert.Equal(4, Directory.GetFiles(Path.Combine(repo, "blobs")).Length);
        Assert.Empty(Directory.GetFiles(repo, "*.incomplete", SearchOption.AllDirectories));
        Assert.True(File.Exists(Path.Combine(_env.CacheDir, ".locks", "models--google--ddpm-tiny", FakeRepo.Sha256(weights) + ".lock")));

        int requests = _env.Server.Requests.Count;
        using var offline = _env.Client(offline: true);
        Assert.Equal(snapshot, await offline.DownloadPipelineAsync(HubTestEnv.TinyId));
        Assert.Equal(Path.Combine(snapshot, "unet", "config.json"), await offline.DownloadFileAsync(HubTestEnv.TinyId, "config.json", subfolder: "unet"));
        Assert.Equal(requests, _env.Server.Requests.Count);

        // The Hub unreachable (server gone): the cached revision is used.
        string deadEndpoint = _env.Server.Endpoint;
        _env.Server.Dispose();
        using var unreachable = _env.Client(endpoint: deadEndpoint);
        Assert.Equal(snapshot, await unreachable.DownloadPipelineAsync(HubTestEnv.TinyId));
        Assert.Equal(Path.Combine(snapshot, "model_index.json"), await unreachable.DownloadFileAsync(HubTestEnv.TinyId, "model_index.json"));
    }

    /// <summary>
    /// A refs file that holds no commit sha (a write cut short, a hand edit): online, huggingface_hub never reads it, downloads
    /// and rewrites it from the Hub's answer; so do we (the one refs reader made it an error for the client's cache check too).
    /// Offline it stays an error naming the file.
    /// </summary>
    [Fact]
    public async Task AnOnlineDownloadRepairsACorruptRef()
    {
        using (var first = _env.Client()) await first.DownloadPipelineAsync(HubTestEnv.TinyId);
        string refFile = Path.Combine(_env.RepoFolder(HubTestEnv.TinyId), "refs", "main");
        string snapshot = Path.Combine(_env.RepoFolder(HubTestEnv.TinyId), "snapshots", _env.TinyCommit);

        File.WriteAllText(refFile, "");
        using (var offline = _env.Client(offline: true))
        {
            var e = await Assert.ThrowsAsync<DiffusersException>(() => offline.DownloadFileAsync(HubTestEnv.TinyId, "model_index.json"));
            Assert.Equal($"{refFile}: expected a 40-hex commit sha, found ''", e.Message);
        }
        using var client = _env.Client();
        Assert.Equal(Path.Combine(snapshot, "model_index.json"), await client.DownloadFileAsync(HubTestEnv.TinyId, "model_index.json"));
        Assert.Equal(_env.TinyCommit, File.ReadAllText(refFile));

        File.WriteAllText(refFile, "garbage");
        Assert.Equal(snapshot, await client.DownloadPipelineAsync(HubTestEnv.TinyId));
        Assert.Equal(_env.TinyCommit, File.ReadAllText(refFile));

        // the Hub unreachable and the ref garbage: the cache cannot answer, and the error is the request's, as in Python
        File.WriteAllText(refFile, "garbage");
        using var unreachable = await StopServerAndAssertAFileIsTheConnectionError();
        var e3 = await Assert.ThrowsAsync<HubException>(() => unreachable.SnapshotDownloadAsync(HubTestEnv.TinyId));
        Assert.Equal(HubErrorKind.LocalEntryNotFound, e3.Kind);
        Assert.Contains("Please check your connection", e3.Message);
    }

    /// <summary>
    /// Stops the fake Hub, then asserts that a client of its address fails to get model_index.json with the connection
    /// error (LocalEntryNotFound, "Please check your connection", the network error inside); returns that client.
    /// </summary>
    private async Task<HubClient> StopServerAndAssertAFileIsTheConnectionError()
    {
        string dead = _env.Server.Endpoint;
        _env.Server.Dispose();
        var unreachable = _env.Client(endpoint: dead);
        var e = await Assert.ThrowsAsync<HubException>(() => unreachable.DownloadFileAsync(HubTestEnv.TinyId, "model_index.json"));
        Assert.Equal(HubErrorKind.LocalEntryNotFound, e.Kind);
        Assert.Contains("Please check your connection", e.Message);
        Assert.Equal(HubErrorKind.Network, Assert.IsType<HubException>(e.InnerException).Kind);
        return unreachable;
    }

    [Fact]
    public async Task OfflineAndNotCachedIsAClearError()
    {
        using var offline = _env.Client(offline: true);
        var e = await Assert.ThrowsAsync<HubException>(() => offline.DownloadPipelineAsync(HubTestEnv.TinyId));
        Assert.Equal(HubErrorKind.LocalEntryNotFound, e.Kind);
        Assert.Contains("google/ddpm-tiny@main", e.Message);
        Assert.Contains("HF_HUB_OFFLINE=0", e.Message);
        Assert.Empty(_env.Server.Requests);

        using var _ = await StopServerAndAssertAFileIsTheConnectionError();
    }

    [Fact]
    public async Task MetadataCallsAreNotRetriedWhenACachedCopyCanAnswer()
    {
        using var client = _env.Client();
        string snapshot = await client.DownloadPipelineAsync(HubTestEnv.TinyId);
        string head = $"/{HubTestEnv.TinyId}/resolve/main/unet/config.json", api = $"/api/models/{HubTestEnv.TinyId}/revision/main";
        int apiCalls = _env.Server.Count("GET", api);

        // the Hub answering 503: one HEAD, then the cached file (huggingface_hub: "no retry for fast fallback to local cache")
        _env.Server.FailStatus[head] = new(Enumerable.Repeat(503, 10));
        Assert.Equal(Path.Combine(snapshot, "unet", "config.json"), await client.DownloadFileAsync(HubTestEnv.TinyId, "unet/config.json"));
        Assert.Equal(1, _env.Server.Count("HEAD", head));

        // the same for the revision info of a cached snapshot, through both callers
        _env.Server.FailStatus[api] = new(Enumerable.Repeat(503, 10));
        Assert.Equal(snapshot, await client.DownloadPipelineAsync(HubTestEnv.TinyId));
        Assert.Equal(snapshot, await client.SnapshotDownloadAsync(HubTestEnv.TinyId));
        Assert.Equal(apiCalls + 2, _env.Server.Count("GET", api));

        // nothing cached to fall back to: the retries still run, and the download succeeds
        string bin = $"/{HubTestEnv.TinyId}/resolve/main/unet/diffusion_pytorch_model.bin";
        _env.Server.FailStatus[bin] = new([503, 503]);
        string path = await client.DownloadFileAsync(HubTestEnv.TinyId, "unet/diffusion_pytorch_model.bin");
        Assert.Equal(HubTestEnv.Golden("unet/diffusion_pytorch_model.bin"), File.ReadAllBytes(path));
        Assert.Equal(3, _env.Server.Count("HEAD", bin));

        // a snapshot without the subfolder asked for cannot answer either: retried, then fetched
        _env.Server.FailStatus[api] = new();
        using var other = new HubClient(_env.Settings() with { CacheDir = _env.Temp.File("other-cache") }, HubTestEnv.FastOptions);
        string scheduler = await other.DownloadFolderAsync(HubTestEnv.TinyId, "scheduler");
        apiCalls = _env.Server.Count("GET", api);
        _env.Server.FailStatus[api] = new([503, 503]);
        string unet = await other.DownloadFolderAsync(HubTestEnv.TinyId, "unet");
        Assert.Equal(Path.Combine(Path.GetDirectoryName(scheduler)!, "unet"), unet);
        Assert.Equal(apiCalls + 3, _env.Server.Count("GET", api));
    }

    [Fact]
    public async Task AHeadThatNeverAnswersEndsAtTheEtagTimeout()
    {
        var options = HubClientOptions.FromEnvironment(new Dictionary<string, string?> { ["HF_HUB_ETAG_TIMEOUT"] = "3", ["HF_HUB_DOWNLOAD_TIMEOUT"] = "600" });
        using var client = _env.Client(options: options);
        string cached = await client.DownloadFileAsync(HubTestEnv.TinyId, "model_index.json");
        string head = $"/{HubTestEnv.TinyId}/resolve/main/model_index.json";
        _env.Server.Stall[head] = true;
        // with the 600 s download timeout on the HEAD this would be cancelled; the 3 s etag timeout falls back to the cache (1 s
        // was too short on a loaded 2-core machine: a fresh-clone CI run's HEAD never reached the server before it gave up)
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        Assert.Equal(cached, await client.DownloadFileAsync(HubTestEnv.TinyId, "model_index.json", ct: limit.Token));
        // the stalled HEAD was sent; on a loaded machine the server may log it only after the client's 3 s gave up (a CI
        // run saw 1 here): wait for the log, then count exactly
        for (var wait = System.Diagnostics.Stopwatch.StartNew(); _env.Server.Count("HEAD", head) < 2 && wait.Elapsed < TimeSpan.FromSeconds(10);)
            await Task.Delay(20);
        Assert.Equal(2, _env.Server.Count("HEAD", head));
    }

    [Fact]
    public async Task TwoConcurrentDownloadersProduceOneCopyWithoutCorruption()
    {
        _env.Server.ChunkDelayMs = 3; // ~60 chunks: the two downloads overlap
        using var a = _env.Client();
        using var b = _env.Client();
        var results = await Task.WhenAll(
            Task.Run(() => a.DownloadPipelineAsync(HubTestEnv.TinyId)),
            Task.Run(() => b.DownloadPipelineAsync(HubTestEnv.TinyId)));
        Assert.Equal(results[0], results[1]);

        byte[] weights = HubTestEnv.Golden("unet/diffusion_pytorch_model.safetensors");
        Assert.Equal(weights.Length, _env.Server.Served(FakeHubServer.CdnPath(weights))); // fetched once
        Assert.Equal(weights, File.ReadAllBytes(Path.Combine(results[0], "unet", "diffusion_pytorch_model.safetensors")));
        string repo = _env.RepoFolder(HubTestEnv.TinyId);
        Assert.Equal(4, Directory.GetFiles(Path.Combine(repo, "blobs")).Length);
        Assert.Empty(Directory.GetFiles(repo, "*.incomplete", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task DroppedConnectionResumesWithRangeAndFetchesNoByteTwice()
    {
        byte[] weights = HubTestEnv.Golden("unet/diffusion_pytorch_model.safetensors");
        string cdn = FakeHubServer.CdnPath(weights);
        _env.Server.DropAfter[cdn] = 300_000;
        var reports = new List<HubDownloadProgress>();
        using var client = _env.Client();
        string path = await client.DownloadFileAsync(HubTestEnv.TinyId, "unet/diffusion_pytorch_model.safetensors",
                                                     progress: new SyncProgress<HubDownloadProgress>(reports.Add));

        Assert.Equal(weights, File.ReadAllBytes(path));
        Assert.Equal(weights.Length, _env.Server.Served(cdn));
        var cdnRequests = _env.Server.Requests.Where(r => r.Path == cdn).ToList();
        Assert.Equal(2, cdnRequests.Count);
        Assert.Null(cdnRequests[0].Range);
        Assert.Equal("bytes=300000-", cdnRequests[1].Range);
        var last = reports[^1];
        Assert.True(last.Completed);
        Assert.Equal(weights.Length, last.BytesDownloaded);
        Assert.Equal(weights.Length, last.TotalBytes);
    }

    [Fact]
    public async Task DiskFullKeepsAResumablePartialAndNoSnapshotLink()
    {
        byte[] weights = HubTestEnv.Golden("unet/diffusion_pytorch_model.safetensors");
        string cdn = FakeHubServer.CdnPath(weights);
        var full = HubTestEnv.FastOptions with { OpenPartialFile = (p, pos) => new DiskFullStream(p, pos, capacity: 200_000) };
        using (var client = _env.Client(options: full))
        {
            var e = await Assert.ThrowsAsync<HubException>(() => client.DownloadFileAsync(HubTestEnv.TinyId, "unet/diffusion_pytorch_model.safetensors"));
            Assert.Equal(HubErrorKind.WriteFailed, e.Kind);
            Assert.Contains("No space left on device", e.Message);
            Assert.Contains("partial file is kept", e.Message);
        }
        string repo = _env.RepoFolder(HubTestEnv.TinyId);
        string blob = Path.Combine(repo, "blobs", FakeRepo.Sha256(weights));
        Assert.Equal(200_000, new FileInfo(blob + ".incomplete").Length);
        Assert.False(File.Exists(blob));
        Assert.False(File.Exists(Path.Combine(repo, "snapshots", _env.TinyCommit, "unet", "diffusion_pytorch_model.safetensors")));
        long servedBefore = _env.Server.Served(cdn);

        using var again = _env.Client();
        string path = await again.DownloadFileAsync(HubTestEnv.TinyId, "unet/diffusion_pytorch_model.safetensors");
        Assert.Equal(weights, File.ReadAllBytes(path));
        Assert.Equal("bytes=200000-", _env.Server.Requests.Last(r => r.Path == cdn).Range);
        Assert.Equal(weights.Length - 200_000, _env.Server.Served(cdn) - servedBefore);
        Assert.False(File.Exists(blob + ".incomplete"));
    }

    [Fact]
    public async Task CancellationLeavesThePartialFileResumable()
    {
        byte[] weights = HubTestEnv.Golden("unet/diffusion_pytorch_model.safetensors");
        string cdn = FakeHubServer.CdnPath(weights);
        _env.Server.ChunkDelayMs = 5;
        using var cts = new CancellationTokenSource();
        var progress = new SyncProgress<HubDownloadProgress>(p => { if (p.BytesDownloaded >= 100_000) cts.Cancel(); });
        using (var client = _env.Client(options: HubTestEnv.FastOptions with { ProgressInterval = TimeSpan.Zero }))
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
                client.DownloadFileAsync(HubTestEnv.TinyId, "unet/diffusion_pytorch_model.safetensors", progress: progress, ct: cts.Token));
        string incomplete = Path.Combine(_env.RepoFolder(HubTestEnv.TinyId), "blobs", FakeRepo.Sha256(weights) + ".incomplete");
        long partial = new FileInfo(incomplete).Length;
        Assert.InRange(partial, 100_000, weights.Length - 1);

        _env.Server.ChunkDelayMs = 0;
        using var again = _env.Client();
        string path = await again.DownloadFileAsync(HubTestEnv.TinyId, "unet/diffusion_pytorch_model.safetensors");
        Assert.Equal(weights, File.ReadAllBytes(path));
        Assert.Equal($"bytes={partial}-", _env.Server.Requests.Last(r => r.Path == cdn).Range);
    }

    [Fact]
    public async Task Sha256MismatchIsRejectedAndNeverVisible()
    {
        byte[] weights = HubTestEnv.Golden("unet/diffusion_pytorch_model.safetensors");
        string sha = FakeRepo.Sha256(weights);
        _env.Server.Corrupt[sha] = 1;
        using var client = _env.Client();
        var e = await Assert.ThrowsAsync<HubException>(() => client.DownloadFileAsync(HubTestEnv.TinyId, "unet/diffusion_pytorch_model.safetensors"));
        Assert.Equal(HubErrorKind.ChecksumMismatch, e.Kind);
        Assert.Contains($"SHA-256 mismatch for unet/diffusion_pytorch_model.safetensors of google/ddpm-tiny at {_env.TinyCommit}: expected {sha}, got ", e.Message);

        string repo = _env.RepoFolder(HubTestEnv.TinyId);
        Assert.False(File.Exists(Path.Combine(repo, "blobs", sha)));
        Assert.False(File.Exists(Path.Combine(repo, "blobs", sha + ".incomplete")));
        Assert.False(File.Exists(Path.Combine(repo, "snapshots", _env.TinyCommit, "unet", "diffusion_pytorch_model.safetensors")));

        // the next try gets good bytes
        string path = await client.DownloadFileAsync(HubTestEnv.TinyId, "unet/diffusion_pytorch_model.safetensors");
        Assert.Equal(weights, File.ReadAllBytes(path));
    }

    [Fact]
    public async Task ARenamedRepositoryIsFollowedThroughRelativeRedirects()
    {
        _env.Server.Renamed["google/old-name"] = HubTestEnv.TinyId;
        using var client = _env.Client();
        string snapshot = await client.DownloadPipelineAsync("google/old-name");
        // cached under the id that was asked for, as huggingface_hub does
        Assert.Equal(Path.Combine(_env.RepoFolder("google/old-name"), "snapshots", _env.TinyCommit), snapshot);
        Assert.Equal(HubTestEnv.Golden("unet/diffusion_pytorch_model.safetensors"),
                     File.ReadAllBytes(Path.Combine(snapshot, "unet", "diffusion_pytorch_model.safetensors")));
        Assert.Contains(_env.Server.Requests, r => r.Method == "HEAD" && r.Path == $"/{HubTestEnv.TinyId}/resolve/{_env.TinyCommit}/model_index.json");
    }

    [Fact]
    public async Task ARedirectsOwnContentLengthIsNotTakenForTheFileSize()
    {
        _env.Server.OmitLinkedSize = true; // the 302 to the CDN has no X-Linked-Size, and a body of its own
        byte[] weights = HubTestEnv.Golden("unet/diffusion_pytorch_model.safetensors");
        using var client = _env.Client();
        string path = await client.DownloadFileAsync(HubTestEnv.TinyId, "unet/diffusion_pytorch_model.safetensors");
        Assert.Equal(weights, File.ReadAllBytes(path));
        Assert.Equal(weights.Length, _env.Server.Served(FakeHubServer.CdnPath(weights)));
    }

    [Fact]
    public async Task TheTokenFollowsASameHostRedirectButNeverReachesTheCdn()
    {
        var gated = FakeRepo.FromFolder("org/gated-new", Support.Golden.Path("tiny-ddpm"), out _);
        gated.RequiredToken = "hf_secret";
        _env.Server.Add(gated);
        _env.Server.Renamed["org/gated-old"] = "org/gated-new";
        using var client = _env.Client(token: "hf_secret");
        string snapshot = await client.DownloadPipelineAsync("org/gated-old");

        // model_index.json is served by the Hub itself after the rename's relative redirect: the GET needs the token
        Assert.Equal(HubTestEnv.Golden("model_index.json"), File.ReadAllBytes(Path.Combine(snapshot, "model_index.json")));
        Assert.Contains(_env.Server.Requests, r => r.Method == "GET" && r.Path.StartsWith("/org/gated-new/resolve/", StringComparison.Ordinal)
                                                   && r.Path.EndsWith("/model_index.json", StringComparison.Ordinal) && r.Authorization == "Bearer hf_secret");
        // the weights come from the CDN, another origin: without it
        Assert.Equal(HubTestEnv.Golden("unet/diffusion_pytorch_model.safetensors"),
                     File.ReadAllBytes(Path.Combine(snapshot, "unet", "diffusion_pytorch_model.safetensors")));
        var cdn = _env.Server.Requests.Where(r => r.Path.StartsWith("/cdn/", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(cdn);
        Assert.All(cdn, r => Assert.Null(r.Authorization));
    }

    [Fact]
    public async Task Transient429And500AreRetried()
    {
        byte[] weights = HubTestEnv.Golden("unet/diffusion_pytorch_model.safetensors");
        string resolvePath = $"/{HubTestEnv.TinyId}/resolve/main/unet/diffusion_pytorch_model.safetensors";
        string cdn = FakeHubServer.CdnPath(weights);
        _env.Server.FailStatus[resolvePath] = new([429]);
        _env.Server.FailStatus[cdn] = new([500, 503]);
        using var client = _env.Client();
        string path = await client.DownloadFileAsync(HubTestEnv.TinyId, "unet/diffusion_pytorch_model.safetensors");
        Assert.Equal(weights, File.ReadAllBytes(path));
        Assert.Equal(2, _env.Server.Count("HEAD", resolvePath));
        Assert.Equal(3, _env.Server.Count("GET", cdn));
        Assert.Equal(weights.Length, _env.Server.Served(cdn));

        // with retries exhausted, the status is reported
        _env.Server.FailStatus[$"/api/models/{HubTestEnv.TinyId}/revision/main"] = new([500, 500, 500]);
        using var impatient = _env.Client(options: HubTestEnv.FastOptions with { MaxRetries = 2 });
        var e = await Assert.ThrowsAsync<HubException>(() => impatient.GetRevisionInfoAsync(HubTestEnv.TinyId));
        Assert.Equal(HubErrorKind.Http, e.Kind);
        Assert.Equal(500, e.StatusCode);
        Assert.Equal($"500 Server Error: Internal Server Error for url: {_env.Server.Endpoint}/api/models/{HubTestEnv.TinyId}/revision/main", e.Message);
    }
}

/// <summary>IProgress that reports synchronously (Progress&lt;T&gt; posts to the thread pool).</summary>
internal sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
{
    private readonly object _gate = new();

    public void Report(T value) { lock (_gate) report(value); }
}

/// <summary>A partial-file stream on a "disk" that is full after <c>capacity</c> bytes.</summary>
internal sealed class DiskFullStream : FileStream
{
    private readonly long _capacity;

    public DiskFullStream(string path, long position, long capacity) : base(path, FileMode.OpenOrCreate, FileAccess.Write, FileShare.Read, 1)
    {
        _capacity = capacity;
        SetLength(position);
        Position = position;
    }

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken ct = default)
    {
        long room = _capacity - Position;
        if (room >= buffer.Length) { await base.WriteAsync(buffer, ct); return; }
        if (room > 0) await base.WriteAsync(buffer[..(int)room], ct);
        throw new IOException("No space left on device");
    }
}
