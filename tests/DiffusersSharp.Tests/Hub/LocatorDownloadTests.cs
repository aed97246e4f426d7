using DiffusersSharp.Hub;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using TorchSharp;

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
    public void AnOnlineLoadRepairsACorruptRef()
    {
        // a refs file that holds no commit sha: huggingface_hub's online downloads never read it and rewrite it from the Hub's
        // answer, and so does HubClient; the loaders refused it before asking the Hub (offline it stays that error)
        string snapshot = Path.Combine(_env.RepoFolder(HubTestEnv.TinyId), "snapshots", _env.TinyCommit);
        string refFile = Path.Combine(_env.RepoFolder(HubTestEnv.TinyId), "refs", "main");
        var options = new LoadOptions { Hub = _env.Settings() };
        Assert.Equal(snapshot, PretrainedLocator.Resolve(HubTestEnv.TinyId, options: options));

        File.WriteAllText(refFile, "garbage");
        Assert.Equal(snapshot, PretrainedLocator.Resolve(HubTestEnv.TinyId, options: options));
        Assert.Equal(_env.TinyCommit, File.ReadAllText(refFile));

        File.WriteAllText(refFile, "");
        var index = new WeightFileRule("index", "model_index.json", "model_index.json",
            (files, _) => files.Contains("model_index.json") ? "model_index.json" : null);
        Assert.Equal(Path.Combine(snapshot, "model_index.json"), PretrainedFileLocator.Resolve(HubTestEnv.TinyId, index, options: options));
        Assert.Equal(_env.TinyCommit, File.ReadAllText(refFile));
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
                     + $"Download it first with `diffusers download {HubTestEnv.TinyId} --cache-dir {_env.CacheDir}` "
                     + $"(or `huggingface-cli download {HubTestEnv.TinyId} --cache-dir {_env.CacheDir}`), or pass a local folder.", e.Message);

        File.Copy(Support.Golden.Path("tiny-ddpm", "model_index.json"), Path.Combine(snapshot, "model_index.json"));
        var e2 = Assert.Throws<DiffusersException>(() => PretrainedLocator.Resolve(HubTestEnv.TinyId, options: new() { Hub = _env.Settings(), LocalFilesOnly = true }));
        Assert.Contains("lacks the 'scheduler' folder", e2.Message);

        Assert.Equal(snapshot, PretrainedLocator.Resolve(HubTestEnv.TinyId, options: new() { Hub = _env.Settings() }));
        Assert.True(File.Exists(Path.Combine(snapshot, "scheduler", "scheduler_config.json")));
        Assert.Equal(snapshot, PretrainedLocator.Resolve(HubTestEnv.TinyId, options: new() { Hub = _env.Settings(), LocalFilesOnly = true }));
    }

    [Fact]
    public void ASnapshotWhoseBlobWasDeletedIsDownloadedAgainOnlineAndAClearErrorOffline()
    {
        string snapshot = PretrainedLocator.Resolve(HubTestEnv.TinyId, options: new() { Hub = _env.Settings() });
        byte[] weights = HubTestEnv.Golden("unet/diffusion_pytorch_model.safetensors");
        string link = Path.Combine(snapshot, "unet", "diffusion_pytorch_model.safetensors");
        File.Delete(Path.Combine(_env.RepoFolder(HubTestEnv.TinyId), "blobs", FakeRepo.Sha256(weights))); // the link dangles
        Assert.True(File.Exists(link)); // .NET on Unix: true for a dangling link, hence CacheLayout.FileExists

        var e = Assert.Throws<DiffusersException>(() => PretrainedLocator.Resolve(HubTestEnv.TinyId, options: new() { Hub = _env.Settings(), LocalFilesOnly = true }));
        Assert.Equal($"'{HubTestEnv.TinyId}' revision 'main' is only partly in the Hugging Face cache: its snapshot {snapshot} lacks the blob of "
                     + "diffusion_pytorch_model.safetensors (a dangling link) in the 'unet' folder. "
                     + $"Download it first with `diffusers download {HubTestEnv.TinyId} --cache-dir {_env.CacheDir}` "
                     + $"(or `huggingface-cli download {HubTestEnv.TinyId} --cache-dir {_env.CacheDir}`), or pass a local folder.", e.Message);
        var sub = Assert.Throws<DiffusersException>(() => PretrainedLocator.Resolve(HubTestEnv.TinyId, "unet", new() { Hub = _env.Settings(), LocalFilesOnly = true }));
        Assert.Contains($"its folder {Path.Combine(snapshot, "unet")} lacks the blob of diffusion_pytorch_model.safetensors (a dangling link)", sub.Message);

        int served = (int)_env.Server.Served(FakeHubServer.CdnPath(weights));
        Assert.Equal(snapshot, PretrainedLocator.Resolve(HubTestEnv.TinyId, options: new() { Hub = _env.Settings() }));
        Assert.Equal(weights, File.ReadAllBytes(link));
        Assert.Equal(served + weights.Length, _env.Server.Served(FakeHubServer.CdnPath(weights)));

        // the same for model_index.json, read before any component
        byte[] index = HubTestEnv.Golden("model_index.json");
        File.Delete(Path.Combine(_env.RepoFolder(HubTestEnv.TinyId), "blobs", FakeRepo.GitBlobSha(index)));
        var e2 = Assert.Throws<DiffusersException>(() => PretrainedLocator.Resolve(HubTestEnv.TinyId, options: new() { Hub = _env.Settings(offline: true) }));
        Assert.Contains($"its snapshot {snapshot} lacks the blob of model_index.json (a dangling link).", e2.Message);
        Assert.Equal(snapshot, PretrainedLocator.Resolve(HubTestEnv.TinyId, options: new() { Hub = _env.Settings() }));
        Assert.Equal(index, File.ReadAllBytes(Path.Combine(snapshot, "model_index.json")));
    }

    /// <summary>
    /// tiny-ddpm as <paramref name="id"/> with its UNet also as the "fp16" variant (the golden weights in float16); returns
    /// the commit and the fp16 file's bytes. Without the .bin: with a .bin and no fp16 .bin, diffusers 0.25.1's
    /// selection would take the .bin (is_safetensors_compatible ignores the variant).
    /// </summary>
    private (string Commit, byte[] Fp16) AddRepoWithAnFp16Unet(string id)
    {
        var files = FakeRepo.FromFolder(id, Support.Golden.Path("tiny-ddpm"), out _).Commits.Values.Single();
        files.Remove("unet/diffusion_pytorch_model.bin");
        using (var half = UNet2DModel.FromPretrained(Support.Golden.Path("tiny-ddpm"), "unet", new LoadOptions { Dtype = torch.ScalarType.Float16 }))
            files["unet/diffusion_pytorch_model.fp16.safetensors"] = File.ReadAllBytes(ModelLoading.SaveWeights(half, _env.Temp.File("fp16"), variant: "fp16"));
        var repo = new FakeRepo(id);
        string commit = repo.AddCommit(files);
        _env.Server.Add(repo);
        return (commit, files["unet/diffusion_pytorch_model.fp16.safetensors"]);
    }

    [Fact]
    public void ACachedSnapshotWithoutTheRequestedVariantIsCompletedOnlineAndRefusedOffline()
    {
        const string id = "org/ddpm-fp16";
        var (commit, fp16) = AddRepoWithAnFp16Unet(id);
        string snapshot = Path.Combine(_env.RepoFolder(id), "snapshots", commit);
        string fp16Path = Path.Combine(snapshot, "unet", "diffusion_pytorch_model.fp16.safetensors");
        Assert.Equal(snapshot, PretrainedLocator.Resolve(id, options: new() { Hub = _env.Settings() })); // the float32 pipeline
        Assert.False(File.Exists(fp16Path));

        // nothing can be asked: the cached snapshot has no fp16 weights to load, and says so
        string expected = $"'{id}' revision 'main' is in the Hugging Face cache without the 'fp16' variant: there are no 'fp16' weight files in "
                          + $"{Path.Combine(snapshot, "unet")}. Download it first with `diffusers download {id} --variant fp16 --cache-dir {_env.CacheDir}` "
                          + $"(or `huggingface-cli download {id} --cache-dir {_env.CacheDir}`), or pass a local folder.";
        var local = Assert.Throws<DiffusersException>(() => PretrainedLocator.Resolve(id, options: new() { Hub = _env.Settings(), Variant = "fp16", LocalFilesOnly = true }));
        Assert.Equal(expected, local.Message);
        Assert.Equal(Path.Combine(snapshot, "unet"), local.FilePath);
        var offline = Assert.Throws<DiffusersException>(() => PretrainedLocator.Resolve(id, options: new() { Hub = _env.Settings(offline: true), Variant = "fp16" }));
        Assert.Equal(expected + " Offline mode is enabled (HF_HUB_OFFLINE=1), so nothing is downloaded.", offline.Message);
        var sub = Assert.Throws<DiffusersException>(() => PretrainedLocator.Resolve(id, "unet", new() { Hub = _env.Settings(), Variant = "fp16", LocalFilesOnly = true }));
        Assert.Equal(expected, sub.Message);

        // online, the variant's files are fetched into the same snapshot (diffusers: "pipeline_is_cached" is false)
        Assert.Equal(snapshot, PretrainedLocator.Resolve(id, options: new() { Hub = _env.Settings(), Variant = "fp16" }));
        Assert.Equal(fp16, File.ReadAllBytes(fp16Path));

        // then it is a cache hit, and the pipeline loads the fp16 weights without a request
        int requests = _env.Server.Requests.Count;
        using var pipe = DDPMPipeline.FromPretrained(id, new LoadOptions { Hub = _env.Settings(), Variant = "fp16" });
        Assert.Equal(requests, _env.Server.Requests.Count);
        using var golden = UNet2DModel.FromPretrained(Support.Golden.Path("tiny-ddpm"), "unet");
        var loaded = pipe.Unet.state_dict();
        foreach (var (key, value) in golden.state_dict())
            Assert.True(loaded[key].allclose(value.to(torch.ScalarType.Float16).to(torch.ScalarType.Float32), rtol: 0, atol: 0), key);
        Assert.False(loaded["conv_in.weight"].allclose(golden.state_dict()["conv_in.weight"], rtol: 0, atol: 0)); // really the rounded weights
    }
}
