using DiffusersSharp.Hub;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;

namespace DiffusersSharp.Tests.Hub;

/// <summary>PretrainedLocator downloads a Hub id that is not cached, through the fake Hub.</summary>
public sealed class LocatorDownloadTests : IDisposable
{
    private readonly HubTestEnv _env = new();

    public void Dispose() => _env.Dispose();

    [Fact]
    public void UncachedIdIsDownloadedThenResolvedFromTheCache()
    {
        string snapshot = Path.Combine(_env.RepoFolder(HubTestEnv.TinyId), "snapshots", _env.TinyCommit);
        string unet = PretrainedLocator.Resolve(HubTestEnv.TinyId, "unet", options: new() { Hub = _env.Settings() });
        Assert.Equal(Path.Combine(snapshot, "unet"), unet);
        Assert.Equal(["config.json", "diffusion_pytorch_model.safetensors"], Directory.GetFiles(unet).Select(Path.GetFileName).Order());

        // FromPretrained on the downloaded folder gives the golden weights
        using (var model = UNet2DModel.FromPretrained(unet))
        using (var golden = UNet2DModel.FromPretrained(Support.Golden.Path("tiny-ddpm"), "unet"))
        {
            var a = model.state_dict();
            var b = golden.state_dict();
            Assert.Equal(b.Keys.Order(), a.Keys.Order());
            Assert.All(b.Keys, k => Assert.True(a[k].allclose(b[k], rtol: 0, atol: 0), k));
        }

        // cached now: no request at all, even for another subfolder already present
        int requests = _env.Server.Requests.Count;
        Assert.Equal(unet, PretrainedLocator.Resolve(HubTestEnv.TinyId, "unet", options: new() { Hub = _env.Settings() }));
        Assert.Equal(requests, _env.Server.Requests.Count);

        // a subfolder not yet cached is fetched; the whole pipeline then too
        Assert.Equal(Path.Combine(snapshot, "scheduler"), PretrainedLocator.Resolve(HubTestEnv.TinyId, "scheduler", options: new() { Hub = _env.Settings() }));
        Assert.True(File.Exists(Path.Combine(snapshot, "scheduler", "scheduler_config.json")));
        Assert.Equal(snapshot, PretrainedLocator.Resolve(HubTestEnv.TinyId, options: new() { Hub = _env.Settings() }));
    }

    [Fact]
    public void OfflineOrLocalFilesOnlyNeverDownload()
    {
        var e = Assert.Throws<DiffusersException>(() => PretrainedLocator.Resolve(HubTestEnv.TinyId, options: new() { Hub = _env.Settings(offline: true) }));
        Assert.EndsWith("Offline mode is enabled (HF_HUB_OFFLINE=1), so nothing is downloaded.", e.Message);
        var e2 = Assert.Throws<DiffusersException>(() => PretrainedLocator.Resolve(HubTestEnv.TinyId, "unet", options: new() { Hub = _env.Settings(), LocalFilesOnly = true }));
        Assert.StartsWith($"'{HubTestEnv.TinyId}' is not a local folder and is not in the Hugging Face cache", e2.Message);
        Assert.Empty(_env.Server.Requests);

        var e3 = Assert.Throws<HubException>(() => PretrainedLocator.Resolve("nobody/nothing", options: new() { Hub = _env.Settings() }));
        Assert.Equal(HubErrorKind.RepositoryNotFound, e3.Kind);
        Assert.StartsWith("'nobody/nothing' is not a local folder and is not in the Hugging Face cache (", e3.Message);
        Assert.Contains($"Downloading it from {_env.Server.Endpoint} failed: 404 Client Error.", e3.Message);
        Assert.Contains("Repository Not Found for url:", e3.Message);
    }

    [Fact]
    public void APartlyCachedPipelineIsCompletedBeforeUse()
    {
        string snapshot = Path.Combine(_env.RepoFolder(HubTestEnv.TinyId), "snapshots", _env.TinyCommit);
        PretrainedLocator.Resolve(HubTestEnv.TinyId, "unet", options: new() { Hub = _env.Settings() }); // only unet/
        var e = Assert.Throws<DiffusersException>(() => PretrainedLocator.Resolve(HubTestEnv.TinyId, options: new() { Hub = _env.Settings(), LocalFilesOnly = true }));
        Assert.Equal($"'{HubTestEnv.TinyId}' revision 'main' is only partly in the Hugging Face cache: its snapshot {snapshot} lacks model_index.json (or config.json). "
                     + $"Download it first with `diffusers download {HubTestEnv.TinyId}` (or `huggingface-cli download {HubTestEnv.TinyId}`), or pass a local folder.", e.Message);

        File.Copy(Support.Golden.Path("tiny-ddpm", "model_index.json"), Path.Combine(snapshot, "model_index.json"));
        var e2 = Assert.Throws<DiffusersException>(() => PretrainedLocator.Resolve(HubTestEnv.TinyId, options: new() { Hub = _env.Settings(), LocalFilesOnly = true }));
        Assert.Contains("lacks the 'scheduler' folder", e2.Message);

        Assert.Equal(snapshot, PretrainedLocator.Resolve(HubTestEnv.TinyId, options: new() { Hub = _env.Settings() }));
        Assert.True(File.Exists(Path.Combine(snapshot, "scheduler", "scheduler_config.json")));
        Assert.Equal(snapshot, PretrainedLocator.Resolve(HubTestEnv.TinyId, options: new() { Hub = _env.Settings(), LocalFilesOnly = true }));
    }
}
