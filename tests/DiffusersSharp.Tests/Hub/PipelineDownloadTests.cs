using System.Text;
using System.Text.Json.Nodes;
using DiffusersSharp.Hub;
using DiffusersSharp.Loading;
using DiffusersSharp.Pipelines;

namespace DiffusersSharp.Tests.Hub;

/// <summary>diffusers' DiffusionPipeline.download file selection, through the fake Hub, on a Stable-Diffusion-shaped repo.</summary>
public sealed class PipelineDownloadTests : IDisposable
{
    private readonly HubTestEnv _env = new();

    public void Dispose() => _env.Dispose();

    private static byte[] Bytes(int n, byte seed) => Enumerable.Range(0, n).Select(i => (byte)(i * 31 + seed)).ToArray();

    private string AddSdLikeRepo()
    {
        const string index = """
            {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.25.1",
             "feature_extractor": [null, null], "safety_checker": [null, null],
             "scheduler": ["diffusers", "PNDMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
             "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"]}
            """;
        var files = new Dictionary<string, byte[]>
        {
            ["model_index.json"] = Encoding.UTF8.GetBytes(index),
            ["README.md"] = "# tiny"u8.ToArray(),
            ["v1-5-pruned.ckpt"] = Bytes(5000, 1),
            ["scheduler/scheduler_config.json"] = "{}"u8.ToArray(),
            ["text_encoder/config.json"] = "{\"a\": 1}"u8.ToArray(),
            ["text_encoder/pytorch_model.bin"] = Bytes(150_000, 2),
            ["text_encoder/model.safetensors"] = Bytes(150_000, 3),
            ["tokenizer/vocab.json"] = "{}"u8.ToArray(),
            ["tokenizer/merges.txt"] = "#"u8.ToArray(),
            ["unet/config.json"] = "{\"b\": 2}"u8.ToArray(),
            ["unet/diffusion_pytorch_model.bin"] = Bytes(200_000, 4),
            ["unet/diffusion_pytorch_model.safetensors"] = Bytes(200_000, 5),
            ["unet/diffusion_pytorch_model.fp16.bin"] = Bytes(100_000, 6),
            ["unet/diffusion_pytorch_model.fp16.safetensors"] = Bytes(100_000, 7),
        };
        var repo = new FakeRepo("org/sd-like");
        string commit = repo.AddCommit(files);
        _env.Server.Add(repo);
        return commit;
    }

    private static List<string> FilesUnder(string folder) =>
        Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
                 .Select(f => Path.GetRelativePath(folder, f).Replace('\\', '/')).Order(StringComparer.Ordinal).ToList();

    [Fact]
    public async Task VariantFp16DownloadsConfigsAndFp16SafetensorsOnlyInParallel()
    {
        string commit = AddSdLikeRepo();
        _env.Server.ChunkDelayMs = 10; // ~100 ms per weight file: parallel downloads overlap
        using var client = _env.Client();
        string snapshot = await client.DownloadPipelineAsync("org/sd-like", variant: "fp16");
        Assert.EndsWith(commit, snapshot);
        Assert.Equal(
            ["model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json", "text_encoder/model.safetensors",
             "tokenizer/merges.txt", "tokenizer/vocab.json", "unet/config.json", "unet/diffusion_pytorch_model.fp16.safetensors"],
            FilesUnder(snapshot));
        Assert.Equal(Bytes(100_000, 7), File.ReadAllBytes(Path.Combine(snapshot, "unet", "diffusion_pytorch_model.fp16.safetensors")));
        Assert.True(_env.Server.MaxConcurrentCdn >= 2, $"max concurrent CDN downloads: {_env.Server.MaxConcurrentCdn}");
    }

    [Fact]
    public async Task NoVariantPrefersSafetensorsAndBinWhenSafetensorsAreIncomplete()
    {
        AddSdLikeRepo();
        using var client = _env.Client();
        string snapshot = await client.DownloadPipelineAsync("org/sd-like");
        Assert.Equal(
            ["model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json", "text_encoder/model.safetensors",
             "tokenizer/merges.txt", "tokenizer/vocab.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors"],
            FilesUnder(snapshot));

        // a repo where one component has only .bin weights: diffusers falls back to .bin for all
        var binRepo = new FakeRepo("org/bin-only");
        binRepo.AddCommit(new()
        {
            ["model_index.json"] = """{"_class_name": "DDPMPipeline", "scheduler": ["diffusers", "DDPMScheduler"], "unet": ["diffusers", "UNet2DModel"], "vqvae": ["diffusers", "VQModel"]}"""u8.ToArray(),
            ["scheduler/scheduler_config.json"] = "{}"u8.ToArray(),
            ["unet/config.json"] = "{}"u8.ToArray(),
            ["unet/diffusion_pytorch_model.safetensors"] = Bytes(1000, 1),
            ["unet/diffusion_pytorch_model.bin"] = Bytes(1000, 2),
            ["vqvae/config.json"] = "{}"u8.ToArray(),
            ["vqvae/diffusion_pytorch_model.bin"] = Bytes(1000, 3),
        });
        _env.Server.Add(binRepo);
        string binSnapshot = await client.DownloadPipelineAsync("org/bin-only", variant: "fp16"); // no fp16 files: non-variant ones
        Assert.Equal(
            ["model_index.json", "scheduler/scheduler_config.json", "unet/config.json", "unet/diffusion_pytorch_model.bin",
             "vqvae/config.json", "vqvae/diffusion_pytorch_model.bin"],
            FilesUnder(binSnapshot));
    }

    [Fact]
    public async Task SnapshotDownloadWithAllowAndIgnorePatterns()
    {
        AddSdLikeRepo();
        using var client = _env.Client();
        string snapshot = await client.SnapshotDownloadAsync("org/sd-like", allowPatterns: ["unet/*", "*.md"], ignorePatterns: ["*.bin"]);
        Assert.Equal(["README.md", "unet/config.json", "unet/diffusion_pytorch_model.fp16.safetensors", "unet/diffusion_pytorch_model.safetensors"],
                     FilesUnder(snapshot));
    }

    [Fact]
    public void VariantCompatibleSiblingsMatchesDiffusers()
    {
        string[] files =
        [
            "unet/diffusion_pytorch_model.bin", "unet/diffusion_pytorch_model.fp16.bin",
            "text_encoder/model.fp16-00001-of-00002.safetensors", "text_encoder/model.fp16-00002-of-00002.safetensors",
            "text_encoder/model.safetensors.index.fp16.json", "text_encoder/model-00001-of-00002.safetensors",
            "text_encoder/model-00002-of-00002.safetensors", "text_encoder/model.safetensors.index.json", "vae/diffusion_flax_model.msgpack",
        ];
        var (usable, variant) = PipelineFileSelection.VariantCompatibleSiblings(files, "fp16");
        Assert.Equal(["text_encoder/model.fp16-00001-of-00002.safetensors", "text_encoder/model.fp16-00002-of-00002.safetensors",
                      "text_encoder/model.safetensors.index.fp16.json", "unet/diffusion_pytorch_model.fp16.bin"], variant.Order(StringComparer.Ordinal));
        Assert.Equal([.. variant.Order(StringComparer.Ordinal), "vae/diffusion_flax_model.msgpack"], usable.Order(StringComparer.Ordinal));
        Assert.True(PipelineFileSelection.IsSafetensorsCompatible(["a/pytorch_model.bin", "a/model.safetensors"]));
        Assert.False(PipelineFileSelection.IsSafetensorsCompatible(["a/pytorch_model.bin", "a/pytorch_model.safetensors"]));
    }

    [Fact]
    public async Task ComponentsNoPipelineLoadsAreNeitherDownloadedNorRequiredInTheCache()
    {
        // tiny-sd with the safety checker and feature extractor a diffusers repo has; the checker only as .bin
        var files = FakeRepo.FromFolder("org/sd-checker", Support.Golden.Path("tiny-sd"), out _).Commits.Values.Single();
        var index = JsonNode.Parse(files["model_index.json"])!.AsObject();
        index["safety_checker"] = new JsonArray("stable_diffusion", "StableDiffusionSafetyChecker");
        index["feature_extractor"] = new JsonArray("transformers", "CLIPImageProcessor");
        files["model_index.json"] = Encoding.UTF8.GetBytes(index.ToJsonString());
        files["safety_checker/config.json"] = "{}"u8.ToArray();
        files["safety_checker/pytorch_model.bin"] = Bytes(300_000, 9);
        files["feature_extractor/preprocessor_config.json"] = "{}"u8.ToArray();
        var repo = new FakeRepo("org/sd-checker");
        string commit = repo.AddCommit(files);
        _env.Server.Add(repo);

        // what diffusers' from_pretrained(id, safety_checker=None, feature_extractor=None) leaves in the cache
        using var client = _env.Client();
        string snapshot = await client.SnapshotDownloadAsync("org/sd-checker", allowPatterns: ["*.json", "*.txt", "*/*.safetensors"],
                                                             ignorePatterns: ["safety_checker/*", "feature_extractor/*"]);
        Assert.False(Directory.Exists(Path.Combine(snapshot, "safety_checker")));
        int requests = _env.Server.Requests.Count;
        var offline = new LoadOptions { Hub = _env.Settings(offline: true), Log = _ => { } };
        Assert.Equal(snapshot, PretrainedLocator.Resolve("org/sd-checker", options: offline));
        using (var pipe = StableDiffusionPipeline.FromPretrained("org/sd-checker", offline))
            Assert.Equal("StableDiffusionPipeline", pipe.ClassName);
        Assert.Equal(requests, _env.Server.Requests.Count);

        // a fresh download takes neither, and the .bin-only checker does not turn the rest to .bin
        using var fresh = new HubClient(_env.Settings() with { CacheDir = _env.Temp.File("fresh-cache") }, HubTestEnv.FastOptions);
        string downloaded = await fresh.DownloadPipelineAsync("org/sd-checker");
        Assert.EndsWith(commit, downloaded);
        Assert.Equal(FilesUnder(snapshot), FilesUnder(downloaded));
        Assert.DoesNotContain(_env.Server.Requests, r => r.Path.Contains("/safety_checker/", StringComparison.Ordinal)
                                                         || r.Path.Contains("/feature_extractor/", StringComparison.Ordinal));
        var selection = PipelineFileSelection.Select(index.ToJsonString(), files.Keys, variant: null);
        Assert.Equal(["*.bin", "*.msgpack", "*.onnx", "*.pb", "*.bin.index.*json", "*.msgpack.index.*json", "*.onnx.index.*json", "*.pb.index.*json"],
                     selection.IgnorePatterns);
        Assert.DoesNotContain(selection.AllowPatterns, p => p.StartsWith("safety_checker/", StringComparison.Ordinal) || p.StartsWith("feature_extractor/", StringComparison.Ordinal));
    }

    /// <summary>
    /// A repository saved by diffusers after load_ip_adapter lists image_encoder: the download takes it (the pipeline
    /// loads it as its ImageEncoder), and a cache without it is not complete.
    /// </summary>
    [Fact]
    public async Task AnImageEncoderIsDownloadedAndLoaded()
    {
        var files = FakeRepo.FromFolder("org/sd-ip", Support.Golden.Path("tiny-sd"), out _).Commits.Values.Single();
        var index = JsonNode.Parse(files["model_index.json"])!.AsObject();
        index["image_encoder"] = new JsonArray("transformers", "CLIPVisionModelWithProjection");
        files["model_index.json"] = Encoding.UTF8.GetBytes(index.ToJsonString());
        foreach (var f in new[] { "config.json", "model.safetensors" })
            files["image_encoder/" + f] = File.ReadAllBytes(Support.Golden.Path("ip-adapter", "image_encoder", f));
        var repo = new FakeRepo("org/sd-ip");
        repo.AddCommit(files);
        _env.Server.Add(repo);

        var selection = PipelineFileSelection.Select(index.ToJsonString(), files.Keys, variant: null);
        Assert.Contains("image_encoder/model.safetensors", selection.AllowPatterns);
        using var client = _env.Client();
        string downloaded = await client.DownloadPipelineAsync("org/sd-ip");
        Assert.True(File.Exists(Path.Combine(downloaded, "image_encoder", "model.safetensors")));
        using var pipe = StableDiffusionPipeline.FromPretrained("org/sd-ip", new LoadOptions { Hub = _env.Settings(offline: true), Log = _ => { } });
        Assert.Equal(32, pipe.ImageEncoder!.Config.ImageSize);
    }
}
