using System.Diagnostics;
using DiffusersSharp.Hub;
using DiffusersSharp.Loading;

namespace DiffusersSharp.Tests.Hub;

/// <summary>
/// Hub failure modes that used to loop forever (issue 11), through the loopback fake Hub: a lock file that cannot be
/// created (a read-only cache) and a server that ignores Range while the stream keeps breaking.
/// </summary>
public sealed class HubFailureModeTests : IDisposable
{
    private readonly HubTestEnv _env = new();

    public void Dispose() => _env.Dispose();

    private string LockPath(string file)
    {
        byte[] bytes = HubTestEnv.Golden(file);
        return CacheLayout.LockPath(_env.CacheDir, HubTestEnv.TinyId, FakeRepo.Etag(file, bytes));
    }

    // A read-only file system (EROFS) cannot be made in a test run as root; a lock path that cannot be opened for
    // another reason (a symbolic link to itself: ELOOP; a link into a missing folder: ENOENT) takes the same path:
    // an IOException that is not "held by another process".
    [Theory]
    [InlineData("loop", "Too many levels of symbolic links")]
    [InlineData("dangling", "Could not find file")]
    public async Task ALockFileThatCannotBeCreatedFailsWithTheReasonInsteadOfPollingForever(string kind, string reason)
    {
        string lockPath = LockPath("unet/config.json");
        Directory.CreateDirectory(Path.GetDirectoryName(lockPath)!);
        File.CreateSymbolicLink(lockPath, kind == "loop" ? lockPath : Path.Combine(_env.Temp.Path, "no-such-folder", "x.lock"));
        using var client = _env.Client();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var clock = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<HubException>(() => client.DownloadFileAsync(HubTestEnv.TinyId, "unet/config.json", ct: timeout.Token));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"took {clock.Elapsed}");
        Assert.Equal(HubErrorKind.CacheNotWritable, e.Kind);
        Assert.StartsWith($"The Hugging Face cache folder '{_env.CacheDir}' is not writable (", e.Message);
        Assert.Contains(reason, e.Message);
    }

    [Fact]
    public async Task ALockHeldByAnotherHandleIsWaitedFor()
    {
        string lockPath = LockPath("unet/config.json");
        Directory.CreateDirectory(Path.GetDirectoryName(lockPath)!);
        var held = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        using var client = _env.Client();
        var download = client.DownloadFileAsync(HubTestEnv.TinyId, "unet/config.json");
        await Task.Delay(300);
        Assert.False(download.IsCompleted);
        held.Dispose();
        string path = await download.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(HubTestEnv.Golden("unet/config.json"), File.ReadAllBytes(path));
    }

    [Fact]
    public async Task AServerThatIgnoresRangeWhileTheStreamKeepsBreakingIsRetriedABoundedNumberOfTimes()
    {
        const string file = "unet/diffusion_pytorch_model.safetensors";
        byte[] blob = HubTestEnv.Golden(file);
        string cdn = FakeHubServer.CdnPath(blob);
        _env.Server.IgnoreRange = true;
        _env.Server.DropEvery[cdn] = 100_000;
        var options = HubTestEnv.FastOptions with { MaxRetries = 3 };
        using var client = _env.Client(options: options);
        var clock = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<HubException>(() => client.DownloadFileAsync(HubTestEnv.TinyId, file));
        Assert.Equal(HubErrorKind.Network, e.Kind);
        Assert.Contains("Max retries exceeded", e.Message);
        int requests = _env.Server.Count("GET", cdn);
        // the first attempt, then one restart from byte 0 per retry: never an endless loop
        Assert.InRange(requests, 2, options.MaxRetries + 2);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task AServerThatIgnoresRangeOnceStillCompletesTheDownload()
    {
        const string file = "unet/diffusion_pytorch_model.safetensors";
        byte[] blob = HubTestEnv.Golden(file);
        string cdn = FakeHubServer.CdnPath(blob);
        _env.Server.IgnoreRange = true;
        _env.Server.DropAfter[cdn] = 100_000;
        using var client = _env.Client();
        string path = await client.DownloadFileAsync(HubTestEnv.TinyId, file);
        Assert.Equal(blob, File.ReadAllBytes(path));
        Assert.Equal(2, _env.Server.Count("GET", cdn));
    }

    [Fact]
    public void AnInterruptedPipelineDownloadIsResumedNotReportedAsMissingWeights()
    {
        string snapshot = PretrainedLocator.Resolve(HubTestEnv.TinyId, null, new LoadOptions { Hub = _env.Settings() });
        string weights = Path.Combine(snapshot, "unet", "diffusion_pytorch_model.safetensors");
        Interrupt(weights);
        Assert.False(File.Exists(weights));

        // offline, the cache is reported as partial (not "No weights found")
        var e = Assert.Throws<DiffusersException>(() => PretrainedLocator.Resolve(HubTestEnv.TinyId, null, new LoadOptions { Hub = _env.Settings(), LocalFilesOnly = true }));
        Assert.Contains("is only partly in the Hugging Face cache", e.Message);
        Assert.Contains("lacks its weights (config.json is there, no .safetensors or .bin) in the 'unet' folder", e.Message);
        var e2 = Assert.Throws<DiffusersException>(() => PretrainedLocator.Resolve(HubTestEnv.TinyId, "unet", new LoadOptions { Hub = _env.Settings(), LocalFilesOnly = true }));
        Assert.Contains("lacks its weights", e2.Message);

        // online, the download is finished from where it stopped
        long servedBefore = _env.Server.Served(FakeHubServer.CdnPath(HubTestEnv.Golden("unet/diffusion_pytorch_model.safetensors")));
        Assert.Equal(snapshot, PretrainedLocator.Resolve(HubTestEnv.TinyId, null, new LoadOptions { Hub = _env.Settings() }));
        Assert.Equal(HubTestEnv.Golden("unet/diffusion_pytorch_model.safetensors"), File.ReadAllBytes(weights));
        long servedNow = _env.Server.Served(FakeHubServer.CdnPath(HubTestEnv.Golden("unet/diffusion_pytorch_model.safetensors"))) - servedBefore;
        Assert.Equal(HubTestEnv.Golden("unet/diffusion_pytorch_model.safetensors").Length / 2, servedNow, tolerance: 1);
    }

    /// <summary>What a download stopped half way through a file leaves: no link in the snapshot, half the blob as <c>.incomplete</c>.</summary>
    internal static void Interrupt(string pointer)
    {
        string blob = new FileInfo(pointer).ResolveLinkTarget(returnFinalTarget: true)!.FullName;
        byte[] bytes = File.ReadAllBytes(blob);
        File.Delete(pointer);
        File.Delete(blob);
        File.WriteAllBytes(blob + ".incomplete", bytes[..(bytes.Length / 2)]);
    }
}
