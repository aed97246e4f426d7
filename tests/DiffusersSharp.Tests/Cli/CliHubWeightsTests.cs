using DiffusersSharp.Cli;
using DiffusersSharp.Imaging;
using DiffusersSharp.Tests.Hub;
using DiffusersSharp.Tests.Lora;
using DiffusersSharp.Tests.Support;

namespace DiffusersSharp.Tests.Cli;

/// <summary>
/// <c>generate --lora ID[:scale]</c> and <c>--embedding ID[:token]</c> through the loopback fake Hub (HF_ENDPOINT) and a
/// temporary cache (HF_HUB_CACHE), on the tiny-sd pipeline of <see cref="CliLoraTests"/>: the same image as the local files.
/// </summary>
[Collection(EnvironmentCollection.Name)]
public sealed class CliHubWeightsTests : IDisposable
{
    private const string LoraId = "latent-consistency/lcm-lora-tiny";
    private const string TiId = "sd-concepts-library/cat-toy";
    private static string Ti => Golden.Path("tiny-sd-textual-inversion", "learned_embeds.bin");

    private readonly HubTestEnv _hub = new();
    private readonly EnvironmentScope _env;

    public CliHubWeightsTests()
    {
        _env = new EnvironmentScope(new Dictionary<string, string?>
        {
            ["HF_ENDPOINT"] = _hub.Server.Endpoint,
            ["HF_HUB_CACHE"] = _hub.CacheDir,
            ["HF_HOME"] = _hub.Temp.File("hf-home"),
        });
        var lora = new FakeRepo(LoraId);
        lora.AddCommit(new()
        {
            ["README.md"] = "# LCM-LoRA (tiny)\n"u8.ToArray(),
            ["pytorch_lora_weights.safetensors"] = File.ReadAllBytes(LoraModelTests.LoraA(false)),
        });
        _hub.Server.Add(lora);
        var ti = new FakeRepo(TiId);
        ti.AddCommit(new() { ["learned_embeds.bin"] = File.ReadAllBytes(Ti), ["token_identifier.txt"] = "<cat-toy>"u8.ToArray() });
        _hub.Server.Add(ti);
        var two = new FakeRepo("someone/two-loras");
        two.AddCommit(new()
        {
            ["a.safetensors"] = File.ReadAllBytes(LoraModelTests.LoraA(false)),
            ["b.safetensors"] = File.ReadAllBytes(LoraModelTests.LoraB(false)),
        });
        _hub.Server.Add(two);
    }

    public void Dispose()
    {
        _env.Dispose();
        _hub.Dispose();
    }

    private static (int Code, string Out, string Err) Generate(string output, params string[] extra) =>
        CliRun.Run(["generate", "-m", Golden.Path("tiny-sd"), "--prompt", "a photo of <cat-toy>", "--negative-prompt", "", "--steps", "1",
            "--width", "32", "--height", "32", "--seed", "0", "-o", output, .. extra]);

    [Fact]
    public void HubIdsGiveTheSameImageAsTheLocalFiles()
    {
        using var dir = new TempDir();
        var hub = Generate(dir.File("hub.npy"), "--lora", LoraId + ":0.5", "--embedding", TiId);
        Assert.True(hub.Code == 0, hub.Err);
        string commit = _hub.Server.Repos[LoraId].Branches["main"];
        string cached = Path.Combine(_hub.RepoFolder(LoraId), "snapshots", commit, "pytorch_lora_weights.safetensors");
        Assert.Contains($"lora: {LoraId} ({cached}, scale 0.5): 48 unet layers, 20 text_encoder layers", hub.Out);
        Assert.Contains("textual inversion: <cat-toy>", hub.Out);
        Assert.DoesNotContain(_hub.Server.Requests, q => q.Path.Contains("README") || q.Path.Contains("token_identifier"));

        var local = Generate(dir.File("local.npy"), "--lora", LoraModelTests.LoraA(false) + ":0.5", "--embedding", Ti);
        Assert.True(local.Code == 0, local.Err);
        using var a = NpyFile.Read(dir.File("hub.npy"));
        using var b = NpyFile.Read(dir.File("local.npy"));
        Assert.True(a.allclose(b, rtol: 0, atol: 0), "the Hub id's image differs from the local file's");

        // the second run offline comes from the cache
        _env.Set("HF_HUB_OFFLINE", "1");
        int requests = _hub.Server.Requests.Count;
        var offline = Generate(dir.File("offline.npy"), "--lora", LoraId + ":0.5", "--embedding", TiId + ":<cat-toy>");
        Assert.True(offline.Code == 0, offline.Err);
        Assert.Equal(requests, _hub.Server.Requests.Count);
        using var c = NpyFile.Read(dir.File("offline.npy"));
        Assert.True(c.allclose(b, rtol: 0, atol: 0), "the offline run's image differs");
    }

    [Fact]
    public void AmbiguousReposAndUnknownSourcesAreUserErrors()
    {
        using var dir = new TempDir();
        var two = Generate(dir.File("o.png"), "--lora", "someone/two-loras");
        Assert.Equal(CliApp.UserError, two.Code);
        Assert.Contains("holds more than one LoRA weights file in the .safetensors format: a.safetensors, b.safetensors.", two.Err);
        Assert.Contains("(on the command line: --lora ORG/NAME/FILE[:scale])", two.Err);
        var b = Generate(dir.File("b.npy"), "--lora", "someone/two-loras/b.safetensors");
        Assert.True(b.Code == 0, b.Err);
        Assert.Contains("b.safetensors, scale 1): 17 unet layers, 30 text_encoder layers", b.Out);

        var bad = Generate(dir.File("o.png"), "--embedding", "/no/such/dir/x.bin:<t>");
        Assert.Equal(CliApp.UserError, bad.Code);
        Assert.Contains("--embedding '/no/such/dir/x.bin:<t>': file not found, and not a Hugging Face Hub id (expected a file, a folder, "
                        + "a Hugging Face Hub id org/name or a file in one, org/name/file (either with @revision after the id), each optionally followed by :token)", bad.Err);
        Assert.False(File.Exists(dir.File("o.png")));
    }

    [Fact]
    public void AnAmbiguousRepoAtARevisionIsToldTheFormWithTheRevision()
    {
        // the hint named ORG/NAME/FILE, which takes main's file, not the one of the revision asked
        _hub.Server.Repos["someone/two-loras"].AddCommit(new()
        {
            ["a.safetensors"] = File.ReadAllBytes(LoraModelTests.LoraB(false)),
            ["b.safetensors"] = File.ReadAllBytes(LoraModelTests.LoraA(false)),
        }, "v2");
        using var dir = new TempDir();
        var two = Generate(dir.File("o.png"), "--lora", "someone/two-loras@v2");
        Assert.Equal(CliApp.UserError, two.Code);
        Assert.Contains("holds more than one LoRA weights file in the .safetensors format: a.safetensors, b.safetensors.", two.Err);
        Assert.Contains("(on the command line: --lora ORG/NAME@REV/FILE[:scale])", two.Err);
        var b = Generate(dir.File("b.npy"), "--lora", "someone/two-loras@v2/b.safetensors");
        Assert.True(b.Code == 0, b.Err);
        Assert.Contains("b.safetensors, scale 1): 48 unet layers, 20 text_encoder layers", b.Out); // LoRA A: v2's b, not main's
    }

    [Fact]
    public void SourcesAtARevisionComeFromThatRevisionIntoTheCacheDir()
    {
        // --lora ID@rev / --embedding ID@rev (load_lora_weights / load_textual_inversion(revision=)), --cache-dir for both
        var lora = _hub.Server.Repos[LoraId];
        string v2 = lora.AddCommit(new() { ["pytorch_lora_weights.safetensors"] = File.ReadAllBytes(LoraModelTests.LoraB(false)) }, "v2");
        string tiV2 = _hub.Server.Repos[TiId].AddCommit(new() { ["learned_embeds.bin"] = File.ReadAllBytes(Ti), ["README.md"] = "v2"u8.ToArray() }, "v2");
        using var dir = new TempDir();
        string cache = dir.File("run-cache");
        var r = Generate(dir.File("o.npy"), "--lora", LoraId + "@v2:0.5", "--embedding", TiId + "@v2", "--cache-dir", cache);
        Assert.True(r.Code == 0, r.Err);
        string file = Path.Combine(cache, "models--latent-consistency--lcm-lora-tiny", "snapshots", v2, "pytorch_lora_weights.safetensors");
        Assert.Contains($"lora: {LoraId}@v2 ({file}, scale 0.5): 17 unet layers, 30 text_encoder layers", r.Out); // LoRA B, main's is A
        Assert.Contains("textual inversion: <cat-toy>", r.Out);
        Assert.True(File.Exists(Path.Combine(cache, "models--sd-concepts-library--cat-toy", "snapshots", tiV2, "learned_embeds.bin")));
        Assert.Equal(v2, File.ReadAllText(Path.Combine(cache, "models--latent-consistency--lcm-lora-tiny", "refs", "v2")));
        Assert.False(Directory.Exists(_hub.CacheDir)); // HF_HUB_CACHE untouched

        // offline, a revision that is not cached: the hint's commands fetch that revision into that cache
        _env.Set("HF_HUB_OFFLINE", "1");
        var miss = Generate(dir.File("o.npy"), "--lora", LoraId + "@v3", "--cache-dir", cache);
        Assert.Equal(CliApp.UserError, miss.Code);
        Assert.Contains($"Download it first with `diffusers download {LoraId} --revision v3 --cache-dir {cache}` "
                        + $"(or `huggingface-cli download {LoraId} --revision v3 --cache-dir {cache}`), or pass a local file.", miss.Err);
    }
}
