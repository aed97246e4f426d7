using DiffusersSharp.Hub;
using DiffusersSharp.Loading;
using DiffusersSharp.Loading.Lora;
using DiffusersSharp.Models.Lora;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Lora;
using DiffusersSharp.Tests.Pipelines;
using DiffusersSharp.Tests.Support;
using TorchSharp;

namespace DiffusersSharp.Tests.Hub;

/// <summary>
/// LoRA and textual-inversion loading from a Hub id (diffusers' <c>load_lora_weights("org/name")</c>,
/// <c>load_textual_inversion("org/name")</c>) through the loopback fake Hub: the file diffusers 0.25.1 chooses, only that
/// file downloaded, the same weights as the local file, the cache reused offline, and the errors.
/// </summary>
public sealed class HubWeightFileTests : IDisposable
{
    private const string LoraId = "latent-consistency/lcm-lora-tiny";
    private const string TwoId = "someone/two-loras";
    private const string TiId = "sd-concepts-library/cat-toy";

    private readonly HubTestEnv _env = new();

    public void Dispose() => _env.Dispose();

    private static byte[] LoraA => File.ReadAllBytes(LoraModelTests.LoraA(false));
    private static byte[] LoraB => File.ReadAllBytes(LoraModelTests.LoraB(false));

    private LoraLoadOptions Options(bool offline = false, bool localOnly = false, string? weightName = null) =>
        new() { WeightName = weightName, Source = new LoadOptions { Hub = _env.Settings(offline), HubClientOptions = HubTestEnv.FastOptions, LocalFilesOnly = localOnly } };

    private string AddLoraRepo()
    {
        var repo = new FakeRepo(LoraId);
        repo.AddCommit(new()
        {
            ["README.md"] = "# LCM-LoRA (tiny)\n"u8.ToArray(),
            ["pytorch_lora_weights.safetensors"] = LoraA,
            ["optimizer.safetensors"] = LoraB,                                   // "optimizer": never a LoRA
            ["checkpoint-500/pytorch_lora_weights.safetensors"] = LoraB,         // "checkpoint": an intermediate one
        });
        _env.Server.Add(repo);
        return repo.Branches["main"];
    }

    private string Snapshot(string id, string commit) => Path.Combine(_env.RepoFolder(id), "snapshots", commit);

    private static string[] Files(string folder) =>
        Directory.GetFiles(folder, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(folder, f).Replace('\\', '/'))
            .Order(StringComparer.Ordinal).ToArray();

    /// <summary>The UNet's and text encoder's weights with the loaded LoRA fused in.</summary>
    private static Dictionary<string, torch.Tensor> Fused(StableDiffusionPipeline pipe)
    {
        pipe.FuseLora();
        return pipe.Unet.state_dict().Select(kv => ("unet." + kv.Key, kv.Value))
            .Concat(pipe.TextEncoder.state_dict().Select(kv => ("text_encoder." + kv.Key, kv.Value)))
            .ToDictionary(p => p.Item1, p => p.Item2);
    }

    [Fact]
    public void ALoraRepoGivesTheLocalFilesWeightsDownloadingOnlyThatFile()
    {
        string commit = AddLoraRepo();
        using var fromHub = StableDiffusionPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        using var fromFile = StableDiffusionPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        var r = fromHub.LoadLoraWeights(LoraId, Options());
        var local = fromFile.LoadLoraWeights(LoraModelTests.LoraA(false));

        string cached = Path.Combine(Snapshot(LoraId, commit), "pytorch_lora_weights.safetensors");
        Assert.Equal(cached, r.File);
        Assert.Equal(local.LayersPatched, r.LayersPatched);
        Assert.Equal(68, r.TotalLayers);
        // only the chosen file came: one listing, one HEAD and one download of the LoRA, nothing of README / optimizer / checkpoint
        Assert.Equal(["pytorch_lora_weights.safetensors"], Files(Snapshot(LoraId, commit)));
        Assert.DoesNotContain(_env.Server.Requests, q => q.Path.Contains("README") || q.Path.Contains("optimizer") || q.Path.Contains("checkpoint"));
        Assert.Equal(LoraA.Length, _env.Server.Served(FakeHubServer.CdnPath(LoraA)));
        Assert.Equal(0, _env.Server.Served(FakeHubServer.CdnPath(LoraB)));

        var a = Fused(fromHub);
        var b = Fused(fromFile);
        Assert.Equal(b.Keys.Order(), a.Keys.Order());
        Assert.All(b.Keys, k => Assert.True(a[k].allclose(b[k], rtol: 0, atol: 0), k));
    }

    [Fact]
    public void ASecondLoadComesFromTheCacheOnlineOfflineAndWithLocalFilesOnly()
    {
        string commit = AddLoraRepo();
        string cached = Path.Combine(Snapshot(LoraId, commit), "pytorch_lora_weights.safetensors");
        Assert.Equal(cached, LoraFile.Locate(LoraId, options: Options().Source));
        int requests = _env.Server.Requests.Count;

        Assert.Equal(cached, LoraFile.Locate(LoraId, options: Options().Source)); // pytorch_lora_weights.safetensors cached: no request
        Assert.Equal(cached, LoraFile.Locate(LoraId, options: Options(offline: true).Source));
        Assert.Equal(cached, LoraFile.Locate(LoraId, options: Options(localOnly: true).Source));
        using var pipe = StableDiffusionPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        Assert.Equal(68, pipe.LoadLoraWeights(LoraId, Options(offline: true)).TotalLayers);
        Assert.Equal(requests, _env.Server.Requests.Count);
    }

    [Fact]
    public void OfflineWithNothingCachedIsAClearErrorAndMakesNoRequest()
    {
        AddLoraRepo();
        using var pipe = StableDiffusionPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        var e = Assert.Throws<DiffusersException>(() => pipe.LoadLoraWeights(LoraId, Options(offline: true)));
        Assert.Equal($"'{LoraId}' is not an existing file or folder, and the Hugging Face cache ({_env.CacheDir}) holds no LoRA file of '{LoraId}'. "
                     + $"Download it first with `diffusers download {LoraId} --cache-dir {_env.CacheDir}` (or `huggingface-cli download {LoraId} --cache-dir {_env.CacheDir}`), "
                     + "or pass a local file. Offline mode is enabled (HF_HUB_OFFLINE=1), so nothing is downloaded.",
                     e.Message);
        Assert.Empty(_env.Server.Requests);
        Assert.Empty(pipe.LoraAdapterNames);

        var missing = Assert.Throws<HubException>(() => LoraFile.Locate("nobody/nothing", options: Options().Source));
        Assert.Equal(HubErrorKind.RepositoryNotFound, missing.Kind);
        Assert.Contains($"Downloading it from {_env.Server.Endpoint} failed: 404 Client Error.", missing.Message);

        string nowhere = Path.Combine(_env.Temp.Path, "no", "such.safetensors");
        var notFound = Assert.Throws<DiffusersException>(() => pipe.LoadLoraWeights(nowhere));
        Assert.StartsWith($"LoRA file not found: '{nowhere}' is neither an existing file or folder nor a valid Hugging Face Hub id ('org/name'", notFound.Message);
    }

    /// <summary>Makes the next resolve request of <paramref name="repo"/> find <paramref name="branch"/> moved to a commit of <paramref name="files"/>.</summary>
    private void MoveBranchAtTheFirstDownload(FakeRepo repo, string branch, Dictionary<string, byte[]> files)
    {
        int done = 0;
        _env.Server.OnRequest = (_, path) =>
        {
            if (path.StartsWith($"/{repo.Id}/resolve/", StringComparison.Ordinal) && Interlocked.Exchange(ref done, 1) == 0)
                repo.AddCommit(files, branch); // pushed after the listing, before the file is fetched
        };
    }

    [Fact]
    public void ABranchPushedBetweenTheListingAndTheDownloadGivesTheListedCommitsFile()
    {
        string listed = AddLoraRepo();
        var repo = _env.Server.Repos[LoraId];
        MoveBranchAtTheFirstDownload(repo, "main", new() { ["pytorch_lora_weights.safetensors"] = LoraB, ["README.md"] = "v2\n"u8.ToArray() });

        string file = LoraFile.Locate(LoraId, options: Options().Source);

        string pushed = repo.Branches["main"];
        Assert.NotEqual(listed, pushed);
        // the listed commit's file, fetched at that commit (not at 'main', which by then named the pushed commit)
        Assert.Equal(Path.Combine(Snapshot(LoraId, listed), "pytorch_lora_weights.safetensors"), file);
        Assert.Equal(LoraA, File.ReadAllBytes(file));
        Assert.Equal([$"/api/models/{LoraId}/revision/main", $"/{LoraId}/resolve/{listed}/pytorch_lora_weights.safetensors"],
                     _env.Server.Requests.Where(q => !q.Path.StartsWith("/cdn/", StringComparison.Ordinal)).Select(q => q.Path));
        Assert.Equal(0, _env.Server.Served(FakeHubServer.CdnPath(LoraB)));
        // refs/main names the commit the file came from, as snapshot_download writes it
        Assert.Equal(listed, File.ReadAllText(Path.Combine(_env.RepoFolder(LoraId), "refs", "main")));
        Assert.False(Directory.Exists(Snapshot(LoraId, pushed)));
    }

    [Fact]
    public void AnEmbeddingAtABranchComesFromItsListedCommitIntoTheGivenCacheFolder()
    {
        // load_textual_inversion(id, revision=, cache_dir=): LoadOptions.Revision and CacheDir, the branch moved mid-load
        byte[] bin = File.ReadAllBytes(Golden.Path("tiny-sd-textual-inversion", "learned_embeds.bin"));
        var repo = new FakeRepo(TiId);
        repo.AddCommit(new() { ["learned_embeds.bin"] = LoraB, ["README.md"] = "main\n"u8.ToArray() });
        string listed = repo.AddCommit(new() { ["learned_embeds.bin"] = bin, ["README.md"] = "v2\n"u8.ToArray() }, "v2");
        _env.Server.Add(repo);
        MoveBranchAtTheFirstDownload(repo, "v2", new() { ["learned_embeds.bin"] = LoraA, ["README.md"] = "v3\n"u8.ToArray() });
        string cache = _env.Temp.File("another-cache");
        var source = new LoadOptions { Revision = "v2", CacheDir = cache, Hub = _env.Settings(), HubClientOptions = HubTestEnv.FastOptions };

        using var pipe = StableDiffusionPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        Assert.Equal(["<cat-toy>"], pipe.LoadTextualInversion(TiId, options: source));

        string repoFolder = Path.Combine(cache, "models--" + TiId.Replace("/", "--"));
        Assert.Equal(bin, File.ReadAllBytes(Path.Combine(repoFolder, "snapshots", listed, "learned_embeds.bin")));
        Assert.Equal(listed, File.ReadAllText(Path.Combine(repoFolder, "refs", "v2")));
        Assert.False(File.Exists(Path.Combine(repoFolder, "refs", "main")));
        Assert.False(Directory.Exists(_env.RepoFolder(TiId))); // the Hub settings' cache untouched
        Assert.Contains(_env.Server.Requests, q => q.Path == $"/{TiId}/resolve/{listed}/learned_embeds.bin");
        // a second load at v2 comes from that cache without a request, offline too
        int requests = _env.Server.Requests.Count;
        Assert.Equal(Path.Combine(repoFolder, "snapshots", listed, "learned_embeds.bin"),
                     TextualInversionEmbedding.Locate(TiId, options: source with { Hub = _env.Settings(offline: true) }));
        Assert.Equal(requests, _env.Server.Requests.Count);
    }

    [Fact]
    public void TwoCandidateFilesAreAnErrorNamingBothUnlessAWeightNameIsGiven()
    {
        var repo = new FakeRepo(TwoId);
        string commit = repo.AddCommit(new()
        {
            ["README.md"] = "two LoRAs\n"u8.ToArray(),
            ["a_lora.safetensors"] = LoraA,
            ["b_lora.safetensors"] = LoraB,
            ["scheduler.bin"] = LoraA,                                           // "scheduler": never a LoRA
        });
        _env.Server.Add(repo);
        using var pipe = StableDiffusionPipeline.FromPretrained(StableDiffusionPipelineTests.Model);

        var e = Assert.Throws<WeightsException>(() => pipe.LoadLoraWeights(TwoId, Options()));
        Assert.Equal($"'{TwoId}' on the Hub (commit {commit}) holds more than one LoRA weights file in the .safetensors format: a_lora.safetensors, b_lora.safetensors. "
                     + "Pass the one to load as the weight name (diffusers' weight_name), or keep only one .safetensors or .bin file there.", e.Message);
        Assert.Equal("weight_name", e.Key);
        Assert.Equal(0, _env.Server.Count("GET", $"/{TwoId}/resolve/") + _env.Server.Count("HEAD", $"/{TwoId}/resolve/"));
        Assert.Empty(pipe.LoraAdapterNames);
    }

    [Fact]
    public void AWeightNamePicksThatFileAndACachedNonPreferredFileIsNoAnswerWithoutOne()
    {
        var repo = new FakeRepo(TwoId);
        string commit = repo.AddCommit(new() { ["a_lora.safetensors"] = LoraA, ["b_lora.safetensors"] = LoraB });
        _env.Server.Add(repo);
        using var pipe = StableDiffusionPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        // the weight name picks b (kohya: convs and text MLPs too), and only b is downloaded
        var r = pipe.LoadLoraWeights(TwoId, Options(weightName: "b_lora.safetensors"));
        Assert.Equal(Path.Combine(Snapshot(TwoId, commit), "b_lora.safetensors"), r.File);
        Assert.Equal(new Dictionary<string, int> { ["unet"] = 17, ["text_encoder"] = 30 }, r.LayersPatched);
        Assert.Equal(["b_lora.safetensors"], Files(Snapshot(TwoId, commit)));

        // with only b cached, a load without a weight name asks the Hub, which has two: the same error as before
        var e = Assert.Throws<WeightsException>(() => LoraFile.Locate(TwoId, options: Options().Source));
        Assert.Contains("more than one LoRA weights file in the .safetensors format: a_lora.safetensors, b_lora.safetensors", e.Message);
        // offline, the cache alone answers (diffusers refuses offline loads without a weight name)
        Assert.Equal(r.File, LoraFile.Locate(TwoId, options: Options(offline: true).Source));

        var absent = Assert.Throws<DiffusersException>(() => LoraFile.Locate(TwoId, "c_lora.safetensors", options: Options().Source));
        Assert.Equal($"'{TwoId}' has no file named 'c_lora.safetensors' on the Hub (commit {commit}); its files: a_lora.safetensors, b_lora.safetensors", absent.Message);
    }

    [Fact]
    public void AFolderIsChosenFromByTheSameRule()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("one"));
        File.WriteAllBytes(dir.File("one/my_lora.safetensors"), LoraA);
        File.WriteAllBytes(dir.File("one/optimizer.safetensors"), LoraB);
        Assert.Equal(dir.File("one/my_lora.safetensors"), LoraFile.Locate(dir.File("one")));

        Directory.CreateDirectory(dir.File("two"));
        File.WriteAllBytes(dir.File("two/a.safetensors"), LoraA);
        File.WriteAllBytes(dir.File("two/b.safetensors"), LoraB);
        var e = Assert.Throws<WeightsException>(() => LoraFile.Read(dir.File("two")));
        Assert.StartsWith($"LoRA folder {dir.File("two")} holds more than one LoRA weights file in the .safetensors format: a.safetensors, b.safetensors.", e.Message);
        Assert.Equal(dir.File("two/b.safetensors"), LoraFile.Locate(dir.File("two"), "b.safetensors"));
        File.WriteAllBytes(dir.File("two/pytorch_lora_weights.safetensors"), LoraA);   // the preferred name wins over the others
        Assert.Equal(dir.File("two/pytorch_lora_weights.safetensors"), LoraFile.Locate(dir.File("two")));
    }

    [Fact]
    public void TextualInversionLoadsFromARepoWithLearnedEmbedsBin()
    {
        byte[] bin = File.ReadAllBytes(Golden.Path("tiny-sd-textual-inversion", "learned_embeds.bin"));
        var repo = new FakeRepo(TiId);
        string commit = repo.AddCommit(new()
        {
            ["README.md"] = "cat toy\n"u8.ToArray(),
            ["learned_embeds.bin"] = bin,
            ["token_identifier.txt"] = "<cat-toy>"u8.ToArray(),
            ["type_of_concept.txt"] = "object"u8.ToArray(),
        });
        _env.Server.Add(repo);
        var source = new LoadOptions { Hub = _env.Settings(), HubClientOptions = HubTestEnv.FastOptions };

        using var pipe = StableDiffusionPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        Assert.Equal(["<cat-toy>"], pipe.LoadTextualInversion(TiId, options: source));
        Assert.Equal(["learned_embeds.bin"], Files(Snapshot(TiId, commit)));
        using var local = TextualInversionEmbedding.Read(Golden.Path("tiny-sd-textual-inversion", "learned_embeds.bin"));
        using var rows = pipe.TextEncoder.GetInputEmbeddings();
        Assert.True(rows[pipe.Tokenizer.ConvertTokenToId("<cat-toy>")].allclose(local.Vectors[0], rtol: 0, atol: 0));

        // offline from the cache, under another token
        using var again = TextualInversionEmbedding.Read(TextualInversionEmbedding.Locate(TiId, options: source with { Hub = _env.Settings(offline: true) }), "<toy>");
        Assert.Equal("<toy>", again.Token);
        var none = Assert.Throws<DiffusersException>(() => TextualInversionEmbedding.Locate(HubTestEnv.TinyId, options: source));
        Assert.Equal($"'{HubTestEnv.TinyId}' holds no textual inversion file on the Hub (learned_embeds.safetensors or learned_embeds.bin); its files: "
                     + "model_index.json, scheduler/scheduler_config.json, unet/config.json, unet/diffusion_pytorch_model.bin, unet/diffusion_pytorch_model.safetensors",
                     none.Message);
    }

    [Fact]
    public void AnSdxlPipelineLoadsALoraFromAHubId()
    {
        byte[] xl = File.ReadAllBytes(LoraModelTests.LoraA(true));
        var repo = new FakeRepo("latent-consistency/lcm-lora-tiny-xl");
        repo.AddCommit(new() { ["pytorch_lora_weights.safetensors"] = xl, ["README.md"] = "xl\n"u8.ToArray() });
        _env.Server.Add(repo);
        using var pipe = StableDiffusionXLPipeline.FromPretrained(Golden.Path("tiny-sdxl"));
        var r = pipe.LoadLoraWeights("latent-consistency/lcm-lora-tiny-xl", Options());
        using var local = StableDiffusionXLPipeline.FromPretrained(Golden.Path("tiny-sdxl"));
        Assert.Equal(local.LoadLoraWeights(LoraModelTests.LoraA(true)).LayersPatched, r.LayersPatched);
        Assert.True(r.TotalLayers > 0);
    }
}
