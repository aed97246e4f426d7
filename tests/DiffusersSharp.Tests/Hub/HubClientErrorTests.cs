using System.Text;
using DiffusersSharp.Hub;

namespace DiffusersSharp.Tests.Hub;

public sealed class HubClientErrorTests : IDisposable
{
    private readonly HubTestEnv _env = new();

    public void Dispose() => _env.Dispose();

    [Fact]
    public async Task UnknownRepoIsAClear404Error()
    {
        using var client = _env.Client();
        var e = await Assert.ThrowsAsync<HubException>(() => client.DownloadPipelineAsync("nobody/nothing"));
        Assert.Equal(HubErrorKind.RepositoryNotFound, e.Kind);
        Assert.Equal(404, e.StatusCode);
        Assert.Contains($"Repository Not Found for url: {_env.Server.Endpoint}/api/models/nobody/nothing/revision/main.", e.Message);
        Assert.Contains("'nobody/nothing'", e.Message);

        var e2 = await Assert.ThrowsAsync<HubException>(() => client.DownloadFileAsync("nobody/nothing", "config.json"));
        Assert.Equal(HubErrorKind.RepositoryNotFound, e2.Kind);
        Assert.Contains($"/nobody/nothing/resolve/main/config.json", e2.Message);
    }

    [Fact]
    public async Task MissingFileIsEntryNotFoundAndLeavesANoExistMarker()
    {
        using var client = _env.Client();
        const string optional = "unet/diffusion_pytorch_model.fp16.safetensors";
        var e = await Assert.ThrowsAsync<HubException>(() => client.DownloadFileAsync(HubTestEnv.TinyId, optional));
        Assert.Equal(HubErrorKind.EntryNotFound, e.Kind);
        Assert.Equal(404, e.StatusCode);
        Assert.StartsWith($"{optional} not found in {HubTestEnv.TinyId} at revision 'main'.", e.Message);
        Assert.Contains("Entry Not Found for url:", e.Message);

        string repo = _env.RepoFolder(HubTestEnv.TinyId);
        Assert.True(File.Exists(Path.Combine(repo, ".no_exist", _env.TinyCommit, "unet", "diffusion_pytorch_model.fp16.safetensors")));
        Assert.Equal(_env.TinyCommit, File.ReadAllText(Path.Combine(repo, "refs", "main")));
        Assert.False(Directory.Exists(Path.Combine(repo, "snapshots")));

        // An optional file: null, and with a known commit the marker answers without a request.
        Assert.Null(await client.TryDownloadFileAsync(HubTestEnv.TinyId, optional));
        int before = _env.Server.Requests.Count;
        Assert.Null(await client.TryDownloadFileAsync(HubTestEnv.TinyId, optional, revision: _env.TinyCommit));
        using var offline = _env.Client(offline: true);
        Assert.Null(await offline.TryDownloadFileAsync(HubTestEnv.TinyId, optional));
        Assert.Equal(before, _env.Server.Requests.Count);
        Assert.NotNull(await client.TryDownloadFileAsync(HubTestEnv.TinyId, "config.json", subfolder: "unet"));
    }

    [Fact]
    public async Task AMissingFileIsEntryNotFoundEvenWhenItsNoExistMarkerCannotBeWritten()
    {
        const string optional = "unet/diffusion_pytorch_model.fp16.safetensors";
        string repo = _env.RepoFolder(HubTestEnv.TinyId);
        Directory.CreateDirectory(repo);
        string noExist = Path.Combine(repo, ".no_exist");
        File.WriteAllText(noExist, "a file where the markers' folder goes"); // the marker cannot be written (as in a read-only cache)
        using var client = _env.Client();
        var e = await Assert.ThrowsAsync<HubException>(() => client.DownloadFileAsync(HubTestEnv.TinyId, optional));
        Assert.Equal(HubErrorKind.EntryNotFound, e.Kind);
        Assert.StartsWith($"{optional} not found in {HubTestEnv.TinyId} at revision 'main'.", e.Message);
        Assert.Null(await client.TryDownloadFileAsync(HubTestEnv.TinyId, optional)); // an optional file is still just absent
        Assert.Equal("a file where the markers' folder goes", File.ReadAllText(noExist));
        Assert.Equal(_env.TinyCommit, File.ReadAllText(Path.Combine(repo, "refs", "main")));
    }

    [Fact]
    public async Task GatedRepoNeedsATokenWhichNeverReachesTheCdn()
    {
        var gated = FakeRepo.FromFolder("org/gated", Support.Golden.Path("tiny-ddpm"), out string commit);
        gated.RequiredToken = "hf_secret";
        _env.Server.Add(gated);

        using var anonymous = _env.Client();
        var e = await Assert.ThrowsAsync<HubException>(() => anonymous.DownloadPipelineAsync("org/gated"));
        Assert.Equal(HubErrorKind.GatedRepo, e.Kind);
        Assert.Equal(401, e.StatusCode);
        Assert.Contains($"Cannot access gated repo for url {_env.Server.Endpoint}/org/gated/resolve/{commit}/model_index.json.", e.Message);
        Assert.Contains("HF_TOKEN", e.Message);

        var wrong = await Assert.ThrowsAsync<HubException>(() => anonymous.DownloadFileAsync("org/gated", "model_index.json", token: "hf_wrong"));
        Assert.Equal(HubErrorKind.GatedRepo, wrong.Kind);
        Assert.Equal($"401 Client Error.\n\nCannot access gated repo for url {_env.Server.Endpoint}/org/gated/resolve/main/model_index.json.\n"
                     + "Access to model org/gated is restricted: accept its conditions on the Hub and pass a token with access "
                     + "(token:, HF_TOKEN, or the token file that `huggingface-cli login` writes: HF_TOKEN_PATH, default $HF_HOME/token).", wrong.Message);

        // the token from the HF_HOME token file
        Directory.CreateDirectory(_env.Temp.File("hf-home"));
        File.WriteAllText(_env.Temp.File("hf-home/token"), "hf_secret\n");
        using var authed = _env.Client();
        Assert.Equal("hf_secret", authed.Settings.Token);
        string snapshot = await authed.DownloadPipelineAsync("org/gated");
        Assert.Equal(HubTestEnv.Golden("unet/diffusion_pytorch_model.safetensors"),
                     File.ReadAllBytes(Path.Combine(snapshot, "unet", "diffusion_pytorch_model.safetensors")));
        Assert.Contains(_env.Server.Requests, r => r.Path.StartsWith("/org/gated/resolve/", StringComparison.Ordinal) && r.Authorization == "Bearer hf_secret");
        Assert.All(_env.Server.Requests.Where(r => r.Path.StartsWith("/cdn/", StringComparison.Ordinal)), r => Assert.Null(r.Authorization));
    }

    [Fact]
    public async Task AnUnauthorizedHeadIsATokenErrorNotAConnectionProblem()
    {
        string path = $"/{HubTestEnv.TinyId}/resolve/main/model_index.json";
        string url = _env.Server.Endpoint + path;
        using var client = _env.Client(token: "hf_expired");
        _env.Server.FailStatus[path] = new([401]); // a 401 without X-Error-Code, as the Hub answers a private repo
        var e = await Assert.ThrowsAsync<HubException>(() => client.DownloadFileAsync(HubTestEnv.TinyId, "model_index.json"));
        Assert.Equal(HubErrorKind.RepositoryNotFound, e.Kind);
        Assert.Equal(401, e.StatusCode);
        Assert.Equal($"401 Client Error.\n\nRepository Not Found for url: {url}.\nPlease make sure you specified the correct `repo_id` ('{HubTestEnv.TinyId}') and `repo_type`."
                     + "\nIf you are trying to access a private or gated repo, make sure you are authenticated "
                     + "(token:, HF_TOKEN, or the token file that `huggingface-cli login` writes: HF_TOKEN_PATH, default $HF_HOME/token).", e.Message);

        // the Hub's answer to a token it does not accept: raised as it is, never "check your connection"
        _env.Server.FailErrorMessage = "Invalid credentials in Authorization header";
        _env.Server.FailStatus[path] = new([401]);
        var bad = await Assert.ThrowsAsync<HubException>(() => client.DownloadFileAsync(HubTestEnv.TinyId, "model_index.json"));
        Assert.Equal(HubErrorKind.Http, bad.Kind);
        Assert.Equal(401, bad.StatusCode);
        Assert.Equal($"401 Client Error.\n\nInvalid credentials in Authorization header for url: {url}.\nThe token sent was refused: check or renew it "
                     + "(token:, HF_TOKEN, or the token file that `huggingface-cli login` writes: HF_TOKEN_PATH, default $HF_HOME/token).", bad.Message);
        Assert.False(Directory.Exists(Path.Combine(_env.RepoFolder(HubTestEnv.TinyId), "snapshots")));

        // a cached file is still returned, as huggingface_hub does for any error of the HEAD call
        string cached = await client.DownloadFileAsync(HubTestEnv.TinyId, "model_index.json");
        _env.Server.FailStatus[path] = new([401]);
        Assert.Equal(cached, await client.DownloadFileAsync(HubTestEnv.TinyId, "model_index.json"));
        Assert.Empty(_env.Server.FailStatus[path]);
    }

    [Fact]
    public async Task RevisionAsBranchAndAsCommitSha()
    {
        var repo = new FakeRepo("org/revs");
        string c1 = repo.AddCommit(new() { ["config.json"] = "{\"v\": 1}"u8.ToArray(), ["w.safetensors"] = new byte[1000] });
        string c2 = repo.AddCommit(new() { ["config.json"] = "{\"v\": 2}"u8.ToArray(), ["w.safetensors"] = Enumerable.Repeat((byte)7, 1000).ToArray() }, "dev");
        repo.Branches["main"] = c1;
        _env.Server.Add(repo);
        using var client = _env.Client();
        string storage = _env.RepoFolder("org/revs");

        string dev = await client.DownloadFileAsync("org/revs", "config.json", revision: "dev");
        Assert.Equal(Path.Combine(storage, "snapshots", c2, "config.json"), dev);
        Assert.Equal("{\"v\": 2}", File.ReadAllText(dev));
        Assert.Equal(c2, File.ReadAllText(Path.Combine(storage, "refs", "dev")));

        string bySha = await client.SnapshotDownloadAsync("org/revs", revision: c1);
        Assert.Equal(Path.Combine(storage, "snapshots", c1), bySha);
        Assert.Equal("{\"v\": 1}", File.ReadAllText(Path.Combine(bySha, "config.json")));
        Assert.Equal(new byte[1000], File.ReadAllBytes(Path.Combine(bySha, "w.safetensors")));
        Assert.False(File.Exists(Path.Combine(storage, "refs", c1)));
        Assert.False(File.Exists(Path.Combine(storage, "refs", "main")));

        // a cached commit needs no request at all
        int before = _env.Server.Requests.Count;
        Assert.Equal(Path.Combine(bySha, "config.json"), await client.DownloadFileAsync("org/revs", "config.json", revision: c1));
        Assert.Equal(before, _env.Server.Requests.Count);

        var e = await Assert.ThrowsAsync<HubException>(() => client.SnapshotDownloadAsync("org/revs", revision: "no-such-branch"));
        Assert.Equal(HubErrorKind.RevisionNotFound, e.Kind);
        Assert.Contains($"Revision Not Found for url: {_env.Server.Endpoint}/api/models/org/revs/revision/no-such-branch.", e.Message);
        var e2 = await Assert.ThrowsAsync<HubException>(() => client.DownloadFileAsync("org/revs", "config.json", revision: "no-such-branch"));
        Assert.Equal(HubErrorKind.RevisionNotFound, e2.Kind);
        Assert.Equal($"404 Client Error.\n\nRevision Not Found for url: {_env.Server.Endpoint}/org/revs/resolve/no-such-branch/config.json.\n"
                     + "The repository 'org/revs' has no such branch, tag or commit.", e2.Message);
    }

    [Theory]
    [InlineData("a/b/c", "Repo id must be in the form 'repo_name' or 'namespace/repo_name': 'a/b/c'. Use `repo_type` argument if needed.")]
    [InlineData("", "Repo id must use alphanumeric chars or '-', '_', '.', '--' and '..' are forbidden, '-' and '.' cannot start or end the name, max length is 96: ''.")]
    [InlineData("..", "Repo id must use alphanumeric chars or '-', '_', '.', '--' and '..' are forbidden, '-' and '.' cannot start or end the name, max length is 96: '..'.")]
    [InlineData("org/a..b", "Cannot have -- or .. in repo_id: 'org/a..b'.")]
    [InlineData("org--x/name", "Cannot have -- or .. in repo_id: 'org--x/name'.")]
    [InlineData("org/name.git", "Repo_id cannot end by '.git': 'org/name.git'.")]
    [InlineData(".repo", "Repo id must use alphanumeric chars or '-', '_', '.', '--' and '..' are forbidden, '-' and '.' cannot start or end the name, max length is 96: '.repo'.")]
    [InlineData("org/with space", "Repo id must use alphanumeric chars or '-', '_', '.', '--' and '..' are forbidden, '-' and '.' cannot start or end the name, max length is 96: 'org/with space'.")]
    public async Task MalformedRepoIdsAreRejectedBeforeAnyRequest(string repoId, string message)
    {
        using var client = _env.Client();
        var e = await Assert.ThrowsAsync<HubException>(() => client.DownloadPipelineAsync(repoId));
        Assert.Equal(HubErrorKind.InvalidInput, e.Kind);
        Assert.Equal(message, e.Message);
        Assert.Empty(_env.Server.Requests);
        Assert.False(Directory.Exists(_env.CacheDir));
    }

    [Theory]
    [InlineData("foo")]
    [InlineData("google/ddpm-cat-256")]
    [InlineData("Foo-BAR_foo.bar123")]
    [InlineData("123/x")]
    public void ValidRepoIdsPass(string repoId) => Assert.True(HubRepoId.IsValid(repoId));

    [Theory]
    [InlineData("v2", "v2")]
    [InlineData("main", "main")]
    [InlineData("feature/x", "feature%2Fx")]          // quote(revision, safe=""): '/' too
    [InlineData("100%/a b", "100%25%2Fa%20b")]
    [InlineData("refs/pr/3", "refs/pr/3")]            // SPECIAL_REFS_REVISION_REGEX: as it is
    [InlineData("refs/convert/parquet", "refs/convert/parquet")]
    [InlineData("refs/heads/x", "refs%2Fheads%2Fx")]
    public void SafeRevisionQuotesARevisionAsHfFileSystemPathsWriteIt(string revision, string written) =>
        Assert.Equal(written, HubRepoId.SafeRevision(revision));

    [Theory]
    [InlineData("not a url")]
    [InlineData("ftp://example.com")]
    [InlineData("huggingface.co")]
    public void AnHfEndpointThatIsNotAUrlIsRejected(string value)
    {
        var e = Assert.Throws<HubException>(() => HubSettings.FromEnvironment(environment: new Dictionary<string, string?> { ["HF_ENDPOINT"] = value }));
        Assert.Equal(HubErrorKind.InvalidInput, e.Kind);
        Assert.Equal("HF_ENDPOINT", e.Key);
        Assert.Equal($"HF_ENDPOINT is not a valid http(s) URL: '{value}'. Expected something like 'https://huggingface.co'.", e.Message);
    }

    [Fact]
    public async Task UnwritableCacheDirectoryIsAClearErrorAndDamagesNothing()
    {
        // A regular file where the cache folder should be (root ignores permission bits, so use a file).
        string notADir = _env.Temp.File("cache-is-a-file");
        File.WriteAllText(notADir, "precious");
        var settings = _env.Settings() with { CacheDir = notADir };
        using var client = new HubClient(settings, HubTestEnv.FastOptions);
        var e = await Assert.ThrowsAsync<HubException>(() => client.DownloadPipelineAsync(HubTestEnv.TinyId));
        Assert.Equal(HubErrorKind.CacheNotWritable, e.Kind);
        Assert.StartsWith($"The Hugging Face cache folder '{notADir}' is not writable (", e.Message);
        Assert.Contains("HF_HUB_CACHE", e.Message);
        Assert.Equal("precious", File.ReadAllText(notADir));

        using var proc = new HubClient(_env.Settings() with { CacheDir = "/proc/diffusers-sharp-cache" }, HubTestEnv.FastOptions);
        var e2 = await Assert.ThrowsAsync<HubException>(() => proc.DownloadFileAsync(HubTestEnv.TinyId, "model_index.json"));
        Assert.Equal(HubErrorKind.CacheNotWritable, e2.Kind);
        // the reason in parentheses is .NET's IOException message
        Assert.StartsWith("The Hugging Face cache folder '/proc/diffusers-sharp-cache' is not writable (", e2.Message);
        Assert.EndsWith("). Set HF_HUB_CACHE (or HF_HOME), or pass cacheDir:, to a writable folder.", e2.Message);
    }

    [Fact]
    public async Task BadFileNamesAndRevisionsAreRejected()
    {
        using var client = _env.Client();
        foreach (var bad in new[] { "../x", "/etc/passwd", "a//b", "a/./b", "" })
        {
            var e = await Assert.ThrowsAsync<HubException>(() => client.DownloadFileAsync(HubTestEnv.TinyId, bad));
            Assert.Equal(HubErrorKind.InvalidInput, e.Kind);
            Assert.Equal($"Invalid file name in repository: '{bad}'. Expected a relative path like 'unet/config.json'.", e.Message);
        }
        var r = await Assert.ThrowsAsync<HubException>(() => client.DownloadFileAsync(HubTestEnv.TinyId, "config.json", revision: "../main"));
        Assert.Equal("Invalid revision: '../main'. A revision is a branch, a tag or a commit sha.", r.Message);
        Assert.Empty(_env.Server.Requests);
    }
}
