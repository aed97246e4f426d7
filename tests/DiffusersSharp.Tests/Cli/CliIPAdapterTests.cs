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

    /// <summary>
    /// SDXL runs (txt2img, img2img, inpainting, ControlNet) with an SDXL-width adapter from a folder that holds it beside
    /// image_encoder/, as h94's sdxl_models/: the real diffusers 0.25.1 runs of the golden folder (tiny-sdxl, "a photo of a
    /// cat" with the empty negative prompt's zeros, the embeds those runs were given).
    /// </summary>
    [Theory]
    [InlineData("sdxl_basic", "ip-adapter-sdxl-basic.bin", "--steps 3 --width 64 --height 64", "ImageProjection, scale 1")]
    [InlineData("sdxl_plus_scale_0.7_n2", "ip-adapter-sdxl-plus.safetensors", "--steps 3 --width 64 --height 64 --batch 2 --ip-adapter-scale 0.7", "Resampler, scale 0.7")]
    [InlineData("sdxl_img2img_basic", "ip-adapter-sdxl-basic.safetensors", "--steps 4 --init-image INIT --strength 0.6", "ImageProjection, scale 1")]
    [InlineData("sdxl_inpaint_plus", "ip-adapter-sdxl-plus.bin", "--steps 3 --width 64 --height 64 --init-image INIT --mask MASK --strength 1.0 --guidance 5", "Resampler, scale 1")]
    [InlineData("sdxl_controlnet_basic", "ip-adapter-sdxl-basic.bin", "--steps 3 --width 64 --height 64 --controlnet CONTROLNET --control-image EDGES", "ImageProjection, scale 1")]
    public void SdxlRunsGiveDiffusersImages(string run, string file, string extra, string note)
    {
        using var dir = new TempDir();
        string adapter = SdxlAdapterFolder(dir, file);
        var files = new Dictionary<string, string>
        {
            ["INIT"] = Golden.Path("img2img-init.png"),
            ["MASK"] = Golden.Path("inpaint-mask.png"),
            ["EDGES"] = Golden.Path("controlnet-edges.png"),
            ["CONTROLNET"] = Golden.Path("sdxl-controlnet-img2img", "controlnet"),
        };
        string output = dir.File("o.npy");
        var (code, stdout, stderr) = CliRun.Run(["generate", "-m", Golden.Path("tiny-sdxl"), "--prompt", "a photo of a cat", "--seed", "0",
            "-o", output, "--ip-adapter", adapter, "--ip-adapter-image", IPImage, .. extra.Split(' ').Select(a => files.GetValueOrDefault(a, a))]);
        Assert.True(code == 0, stderr);
        Assert.Contains($"ip-adapter: {adapter} ({note}), image {IPImage}", stdout);
        AssertGolden(output, run);
    }

    /// <summary>Where diffusers 0.25.1's SDXL pipeline has no ip_adapter_image, or the run's second pipeline has no adapter.</summary>
    [Theory]
    [InlineData("--controlnet CONTROLNET --control-image EDGES --init-image INIT", "--ip-adapter is not available with StableDiffusionXLControlNetImg2ImgPipeline (diffusers 0.25.1's SDXL ControlNet img2img and inpaint pipelines have no ip_adapter_image)")]
    [InlineData("--controlnet CONTROLNET --control-image EDGES --init-image INIT --mask MASK", "--ip-adapter is not available with StableDiffusionXLControlNetInpaintPipeline (diffusers 0.25.1's SDXL ControlNet img2img and inpaint pipelines have no ip_adapter_image)")]
    [InlineData("--refiner REFINER", "--ip-adapter is not available with --refiner (the refiner's UNet has no IP-Adapter; run the base alone, or the refiner as an --init-image run)")]
    public void SdxlRunsWithoutIpAdapterImageRefuseIt(string extra, string message)
    {
        using var dir = new TempDir();
        string adapter = SdxlAdapterFolder(dir, "ip-adapter-sdxl-basic.bin");
        var files = new Dictionary<string, string>
        {
            ["INIT"] = Golden.Path("img2img-init.png"),
            ["MASK"] = Golden.Path("inpaint-mask.png"),
            ["EDGES"] = Golden.Path("controlnet-edges.png"),
            ["CONTROLNET"] = Golden.Path("sdxl-controlnet-img2img", "controlnet"),
            ["REFINER"] = Golden.Path("tiny-sdxl-refiner"),
        };
        string output = dir.File("o.png");
        var (code, _, stderr) = CliRun.Run(["generate", "-m", Golden.Path("tiny-sdxl"), "--prompt", "a photo of a cat", "--steps", "2",
            "-o", output, "--ip-adapter", adapter, "--ip-adapter-image", IPImage, .. extra.Split(' ').Select(a => files.GetValueOrDefault(a, a))]);
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains(message, stderr);
        Assert.DoesNotContain("   at ", stderr);
        Assert.False(File.Exists(output));
    }

    /// <summary>InstructPix2Pix (--init-image is the image to edit) with an image prompt: the real diffusers run's image.</summary>
    [Fact]
    public void InstructPix2PixGivesTheDiffusersImage()
    {
        using var dir = new TempDir();
        string output = dir.File("o.npy");
        var (code, _, stderr) = CliRun.Run(["generate", "-m", Golden.Path("tiny-sd-instruct-pix2pix"), "--prompt", "a photo of a cat",
            "--init-image", Golden.Path("img2img-init.png"), "--steps", "3", "--seed", "0", "-o", output,
            "--ip-adapter", Golden.Path("ip-adapter", "ip-adapter-basic.bin"), "--ip-adapter-image", IPImage]);
        Assert.True(code == 0, stderr);
        AssertGolden(output, "pix2pix_basic");
    }

    /// <summary>A folder in <paramref name="dir"/> with the SDXL adapter <paramref name="file"/> beside image_encoder/; the file's path.</summary>
    private static string SdxlAdapterFolder(TempDir dir, string file)
    {
        string folder = Path.Combine(dir.Path, "sdxl_models");
        Directory.CreateDirectory(Path.Combine(folder, "image_encoder"));
        foreach (var f in Directory.GetFiles(Golden.Path("ip-adapter", "image_encoder")))
            File.Copy(f, Path.Combine(folder, "image_encoder", Path.GetFileName(f)));
        File.Copy(Golden.Path("ip-adapter", "sdxl", file), Path.Combine(folder, file));
        return Path.Combine(folder, file);
    }
}
