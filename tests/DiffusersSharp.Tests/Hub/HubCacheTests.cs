using DiffusersSharp.Hub;

namespace DiffusersSharp.Tests.Hub;

public sealed class HubCacheTests : IDisposable
{
    private readonly HubTestEnv _env = new();

    public void Dispose() => _env.Dispose();

    /// <summary>
    /// Writes, by hand, what huggingface_hub 0.20.3 leaves after
    /// <c>DiffusionPipeline.download("google/ddpm-tiny")</c>: blobs named by etag, relative symlinks, refs/main.
    /// </summary>
    private string WritePythonCache(string repoId, string commit)
    {
        string repo = Path.Combine(_env.CacheDir, "models--" + repoId.Replace("/", "--"));
        Directory.CreateDirectory(Path.Combine(repo, "blobs"));
        Directory.CreateDirectory(Path.Combine(repo, "refs"));
        File.WriteAllText(Path.Combine(repo, "refs", "main"), commit); // no trailing newline, as Python writes it
        foreach (var f in new[] { "model_index.json", "scheduler/scheduler_config.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors" })
        {
            byte[] bytes = HubTestEnv.Golden(f);
            string etag = FakeRepo.Etag(f, bytes);
            File.WriteAllBytes(Path.Combine(repo, "blobs", etag), bytes);
            string link = Path.Combine(repo, "snapshots", commit, f);
            Directory.CreateDirectory(Path.GetDirectoryName(link)!);
            string up = string.Concat(Enumerable.Repeat("../", f.Count(c => c == '/') + 2));
            File.CreateSymbolicLink(link, up + "blobs/" + etag);
        }
        return repo;
    }

    [Fact]
    public async Task ACacheWrittenInPythonLayoutIsReadAsIs()
    {
        string repo = WritePythonCache(HubTestEnv.TinyId, _env.TinyCommit);
        string snapshot = Path.Combine(repo, "snapshots", _env.TinyCommit);

        using var offline = _env.Client(offline: true);
        Assert.Equal(snapshot, await offline.DownloadPipelineAsync(HubTestEnv.TinyId));
        string weights = await offline.DownloadFileAsync(HubTestEnv.TinyId, "diffusion_pytorch_model.safetensors", subfolder: "unet");
        Assert.Equal(Path.Combine(snapshot, "unet", "diffusion_pytorch_model.safetensors"), weights);
        Assert.Equal(HubTestEnv.Golden("unet/diffusion_pytorch_model.safetensors"), File.ReadAllBytes(weights));

        // Online, same commit: metadata requests only, not one body byte of a blob, nothing rewritten.
        var before = Directory.GetFiles(repo, "*", SearchOption.AllDirectories).Order().ToList();
        using var online = _env.Client();
        Assert.Equal(snapshot, await online.DownloadPipelineAsync(HubTestEnv.TinyId));
        Assert.DoesNotContain(_env.Server.Requests, r => r.Path.StartsWith("/cdn/", StringComparison.Ordinal));
        Assert.DoesNotContain(_env.Server.Requests, r => r.Method == "GET" && r.Path.Contains("/resolve/"));
        Assert.Equal(before, Directory.GetFiles(repo, "*", SearchOption.AllDirectories).Order().ToList());
    }

    [Fact]
    public async Task ScanListsReposRevisionsRefsAndSizesAndRemoveDeletesOneRepo()
    {
        WritePythonCache("google/ddpm-cat-256", "0123456789abcdef0123456789abcdef01234567");
        using (var client = _env.Client())
        {
            await client.DownloadPipelineAsync(HubTestEnv.TinyId);
            await client.DownloadFileAsync(HubTestEnv.TinyId, "unet/diffusion_pytorch_model.bin");
        }
        Directory.CreateDirectory(Path.Combine(_env.CacheDir, "not-a-repo"));

        var warnings = new List<string>();
        var repos = HubCache.ScanRepos(_env.CacheDir, warnings);
        Assert.Equal(["google/ddpm-cat-256", "google/ddpm-tiny"], repos.Select(r => r.RepoId));
        Assert.Equal(["Corrupted cache: Repo path is not a valid HuggingFace cache directory: " + Path.Combine(_env.CacheDir, "not-a-repo")], warnings);

        long configs = new[] { "model_index.json", "scheduler/scheduler_config.json", "unet/config.json" }.Sum(f => HubTestEnv.Golden(f).LongLength);
        long st = HubTestEnv.Golden("unet/diffusion_pytorch_model.safetensors").LongLength;
        long bin = HubTestEnv.Golden("unet/diffusion_pytorch_model.bin").LongLength;

        var cat = repos[0];
        Assert.Equal("model", cat.RepoType);
        Assert.Equal(configs + st, cat.SizeOnDisk);
        Assert.Equal(4, cat.NbFiles);
        var rev = Assert.Single(cat.Revisions);
        Assert.Equal("0123456789abcdef0123456789abcdef01234567", rev.CommitHash);
        Assert.Equal(["main"], rev.Refs);
        Assert.Equal(["model_index.json", "scheduler/scheduler_config.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors"], rev.Files);

        var tiny = repos[1];
        Assert.Equal(configs + st + bin, tiny.SizeOnDisk);
        Assert.Equal(5, tiny.NbFiles);
        Assert.Equal(_env.TinyCommit, Assert.Single(tiny.Revisions).CommitHash);
        Assert.Equal("2.1MB", HubDownloadProgress.FormatSize(2_123_456));

        var removed = HubCache.Remove("google/ddpm-tiny", _env.CacheDir);
        Assert.Equal(tiny.SizeOnDisk, removed.SizeOnDisk);
        Assert.False(Directory.Exists(_env.RepoFolder(HubTestEnv.TinyId)));
        Assert.False(Directory.Exists(Path.Combine(_env.CacheDir, ".locks", "models--google--ddpm-tiny")));
        Assert.Equal(["google/ddpm-cat-256"], HubCache.ScanRepos(_env.CacheDir).Select(r => r.RepoId));

        var e = Assert.Throws<HubException>(() => HubCache.Remove("google/ddpm-tiny", _env.CacheDir));
        Assert.Equal(HubErrorKind.LocalEntryNotFound, e.Kind);
        Assert.Equal($"google/ddpm-tiny is not in the cache {_env.CacheDir}.", e.Message);
    }

    [Fact]
    public void BrokenSymlinkAndDanglingRefAreReportedAsCorrupted()
    {
        string repo = WritePythonCache("org/broken", "0123456789abcdef0123456789abcdef01234567");
        File.Delete(Path.Combine(repo, "blobs", FakeRepo.Etag("model_index.json", HubTestEnv.Golden("model_index.json"))));
        File.WriteAllText(Path.Combine(repo, "refs", "dev"), "ffffffffffffffffffffffffffffffffffffffff");
        var warnings = new List<string>();
        Assert.Empty(HubCache.ScanRepos(_env.CacheDir, warnings));
        Assert.StartsWith("Corrupted cache: Blob missing (broken symlink): ", Assert.Single(warnings));
    }

    [Fact]
    public void OsHelperFilesInRefsAndSnapshotsAreNotCorruption()
    {
        const string commit = "0123456789abcdef0123456789abcdef01234567";
        string repo = WritePythonCache("org/finder", commit);
        File.WriteAllBytes(Path.Combine(repo, "refs", ".DS_Store"), [0, 0, 0, 1, 0x42, 0x75, 0x64, 0x31]);
        File.WriteAllText(Path.Combine(repo, "refs", "desktop.ini"), "[.ShellClassInfo]");
        File.WriteAllBytes(Path.Combine(repo, "snapshots", ".DS_Store"), [0, 0, 0, 1]);
        File.WriteAllBytes(Path.Combine(repo, "snapshots", "Thumbs.db"), [0xD0, 0xCF]);

        var warnings = new List<string>();
        var found = Assert.Single(HubCache.ScanRepos(_env.CacheDir, warnings));
        Assert.Empty(warnings);
        Assert.Equal("org/finder", found.RepoId);
        var rev = Assert.Single(found.Revisions);
        Assert.Equal(commit, rev.CommitHash);
        Assert.Equal(["main"], rev.Refs);
    }
}
