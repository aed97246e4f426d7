using DiffusersSharp.Cli;
using DiffusersSharp.Imaging;
using DiffusersSharp.Tests.Hub;
using DiffusersSharp.Tests.Support;

namespace DiffusersSharp.Tests.Cli;

/// <summary>
/// <c>generate --ip-adapter FILE --ip-adapter-image IMG [--ip-adapter-scale S]</c> on tiny-sd against the real diffusers
/// 0.25.1 pipeline runs of tests/golden/ip-adapter (prompt "a photo of a cat", negative "", PNDM, 3 steps, 64x64, seed 0:
/// the prompt embeddings the golden runs were given come from real transformers on that prompt), and the same file from
/// the loopback fake Hub as <c>org/name/subfolder/file</c>, with the encoder of <c>subfolder/image_encoder</c>.
/// </summary>
[Collection(EnvironmentCollection.Name)]
public sealed class CliIPAdapterTests : IDisposable
{
    private const string Expected = "ip-adapter/ip-adapter-expected.safetensors";
    private const string HubId = "someone/ip-adapter-tiny";

    /// <summary>A whole pipeline run (decoded images in [0, 1]), the text encoder's output included.</summary>
    private const double Trajectory = 1e-4;

    private static string IPImage => Golden.Path("ip-adapter", "ip-image.png");

    private readonly HubTestEnv _hub = new();
    private readonly EnvironmentScope _env;

    public CliIPAdapterTests()
    {
        _env = new EnvironmentScope(new Dictionary<string, string?>
        {
            ["HF_ENDPOINT"] = _hub.Server.Endpoint,
            ["HF_HUB_CACHE"] = _hub.CacheDir,
            ["HF_HOME"] = _hub.Temp.File("hf-home"),
        });
        // h94/IP-Adapter's layout: models/<weights> beside models/image_encoder/
        var repo = new FakeRepo(HubId);
        var files = new Dictionary<string, byte[]> { ["README.md"] = "# tiny IP-Adapter\n"u8.ToArray() };
        files["models/ip-adapter-basic.bin"] = File.ReadAllBytes(Golden.Path("ip-adapter", "ip-adapter-basic.bin"));
        foreach (var f in new[] { "config.json", "model.safetensors", "preprocessor_config.json" })
            files["models/image_encoder/" + f] = File.ReadAllBytes(Golden.Path("ip-adapter", "image_encoder", f));
        repo.AddCommit(files);
        _hub.Server.Add(repo);
    }

    public void Dispose()
    {
        _env.Dispose();
        _hub.Dispose();
    }

    private static (int Code, string Out, string Err) Generate(string output, params string[] extra) =>
        CliRun.Run(["generate", "-m", Golden.Path("tiny-sd"), "--prompt", "a photo of a cat", "--steps", "3", "--width", "64", "--height", "64",
            "--seed", "0", "-o", output, .. extra]);

    private static void AssertGolden(string output, string run)
    {
        using var actual = NpyFile.Read(output);
        Tol.Close(actual, Golden.Tensor(Expected, $"pipeline/{run}/images"), Trajectory, run);
    }

    [Theory]
    [InlineData("basic", "ip-adapter-basic.bin", null, 1, "ImageProjection, scale 1")]
    [InlineData("basic_scale_0.6_n2", "ip-adapter-basic.safetensors", "0.6", 2, "ImageProjection, scale 0.6")]
    [InlineData("plus", "ip-adapter-plus.safetensors", null, 1, "Resampler, scale 1")]
    public void AnImagePromptGivesDiffusersImages(string run, string file, string? scale, int batch, string note)
    {
        using var dir = new TempDir();
        string adapter = Golden.Path("ip-adapter", file);
        var args = new List<string> { "--ip-adapter", adapter, "--ip-adapter-image", IPImage, "--batch", batch.ToString() };
        if (scale is not null) args.AddRange(["--ip-adapter-scale", scale]);
        var (code, stdout, stderr) = Generate(dir.File("o.npy"), [.. args]);
        Assert.True(code == 0, stderr);
        Assert.Contains($"ip-adapter: {adapter} ({note}), image {IPImage}", stdout);
        AssertGolden(dir.File("o.npy"), run);
    }

    /// <summary>img2img, inpainting and ControlNet runs with an image prompt give the real diffusers runs' images.</summary>
    [Theory]
    [InlineData("img2img_basic", "ip-adapter-basic.bin", "--init-image INIT --strength 0.6")]
    [InlineData("inpaint_plus", "ip-adapter-plus.bin", "--init-image INIT --mask MASK")]
    [InlineData("controlnet_basic", "ip-adapter-basic.safetensors", "--controlnet CONTROLNET --control-image EDGES")]
    [InlineData("controlnet_inpaint_plus", "ip-adapter-plus.safetensors", "--controlnet CONTROLNET --control-image EDGES --init-image INIT --mask MASK")]
    public void OtherPipelinesGiveDiffusersImages(string run, string file, string extra)
    {
        using var dir = new TempDir();
        var files = new Dictionary<string, string>
        {
            ["INIT"] = Golden.Path("img2img-init.png"),
            ["MASK"] = Golden.Path("inpaint-mask.png"),
            ["EDGES"] = Golden.Path("controlnet-edges.png"),
            ["CONTROLNET"] = Golden.Path("tiny-sd-controlnet"),
        };
        var args = extra.Split(' ').Select(a => files.GetValueOrDefault(a, a)).ToList();
        var all = new List<string> { "--ip-adapter", Golden.Path("ip-adapter", file), "--ip-adapter-image", IPImage };
        all.AddRange(args);
        var (code, _, stderr) = extra.Contains("--mask") || !extra.Contains("--init-image")
            ? Generate(dir.File("o.npy"), [.. all])
            : CliRun.Run(["generate", "-m", Golden.Path("tiny-sd"), "--prompt", "a photo of a cat", "--steps", "3", "--seed", "0", "-o", dir.File("o.npy"), .. all]);
        Assert.True(code == 0, stderr);
        AssertGolden(dir.File("o.npy"), run);
    }

    [Fact]
    public void AHubFileInASubfolderLoadsTheEncoderBesideIt()
    {
        using var dir = new TempDir();
        string arg = HubId + "/models/ip-adapter-basic.bin";
        var (code, stdout, stderr) = Generate(dir.File("o.npy"), "--ip-adapter", arg, "--ip-adapter-image", IPImage);
        Assert.True(code == 0, stderr);
        Assert.Contains($"ip-adapter: {arg} (ImageProjection, scale 1)", stdout);
        Assert.Contains(_hub.Server.Requests, q => q.Path.Contains("models/image_encoder/model.safetensors"));
        Assert.DoesNotContain(_hub.Server.Requests, q => q.Path.Contains("README"));
        AssertGolden(dir.File("o.npy"), "basic");
    }

    [Theory]
    [InlineData("h94/IP-Adapter/models/ip-adapter_sd15.bin", "h94/IP-Adapter", "models", "ip-adapter_sd15.bin", null)]
    [InlineData("h94/IP-Adapter/ip-adapter_sd15.bin", "h94/IP-Adapter", null, "ip-adapter_sd15.bin", null)]
    [InlineData("h94/IP-Adapter@v2/models/a/ip.safetensors", "h94/IP-Adapter", "models/a", "ip.safetensors", "v2")]
    public void HubFilesSplitIntoIdSubfolderAndWeightName(string arg, string id, string? subfolder, string weightName, string? revision) =>
        Assert.Equal((id, subfolder, weightName, revision), IPAdapterOptions.Source(arg));

    [Theory]
    [InlineData("h94/IP-Adapter", "--ip-adapter h94/IP-Adapter: names no weight file; give a file, or a file of a Hugging Face Hub repository org/name/[subfolder/]file (org/name@rev/… for a revision), e.g. h94/IP-Adapter/models/ip-adapter_sd15.safetensors (diffusers' load_ip_adapter has no default weight_name)")]
    [InlineData("no such thing", "--ip-adapter 'no such thing': file not found, and not a file, or a file of a Hugging Face Hub repository")]
    [InlineData("FOLDER", "--ip-adapter FOLDER: a folder; name the weight file in it (FOLDER/ip-adapter_sd15.bin): diffusers' load_ip_adapter has no default weight_name")]
    [InlineData(HubId + "/models/missing.bin", "--ip-adapter someone/ip-adapter-tiny/models/missing.bin: ")]
    public void SourcesThatNameNoWeightFileAreUserErrors(string arg, string message)
    {
        using var dir = new TempDir();
        string folder = Golden.Path("ip-adapter");
        var (code, _, stderr) = Generate(dir.File("o.npy"), "--ip-adapter", arg.Replace("FOLDER", folder), "--ip-adapter-image", IPImage);
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains(message.Replace("FOLDER", folder), stderr);
        Assert.DoesNotContain("   at ", stderr);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }
}
