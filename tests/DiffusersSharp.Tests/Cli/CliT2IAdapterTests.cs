using DiffusersSharp.Cli;
using DiffusersSharp.Imaging;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Models;
using DiffusersSharp.Tests.Pipelines;
using DiffusersSharp.Tests.Support;
using Xunit.Abstractions;

namespace DiffusersSharp.Tests.Cli;

/// <summary>
/// <c>diffusers generate --adapter … --adapter-image … [--adapter-scale …]</c> on a Stable Diffusion folder (tiny-sd with
/// the SD-order UNet of tests/golden/tiny-t2i-adapter) and on tiny-sdxl: the CLI writes what the library's adapter
/// pipeline draws with the same arguments, and refuses what does not apply.
/// </summary>
public class CliT2IAdapterTests(ITestOutputHelper log)
{
    private static string Edges => Golden.Path("controlnet-edges.png");

    private static TempDir SdFolder()
    {
        var dir = new TempDir();
        string source = StableDiffusionPipelineTests.Model;
        foreach (var f in Directory.GetFiles(source, "*", SearchOption.AllDirectories))
        {
            string to = Path.Combine(dir.Path, Path.GetRelativePath(source, f));
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Copy(f, to);
        }
        T2IAdapterPipelineTests.AddAdapter(dir.Path, sdxl: false);   // the SD-order UNet (and an unused adapter folder)
        return dir;
    }

    [Fact]
    public void AStableDiffusionRunWithTwoAdaptersWritesTheLibrarysImage()
    {
        using var dir = SdFolder();
        string output = dir.File("o.npy");
        var (code, stdout, stderr) = CliRun.Run("generate", "-m", dir.Path, "--prompt", "a photo of a cat", "--steps", "2", "--width", "32",
            "--height", "32", "--seed", "0", "--adapter", T2IAdapterGoldenTests.Folder("sd-full"), "--adapter-image", Edges,
            "--adapter", T2IAdapterGoldenTests.Folder("sd-full-gray"), "--adapter-image", Edges, "--adapter-scale", "0.7", "--adapter-scale", "0.3", "-o", output);
        Assert.True(code == 0, stderr);
        Assert.Contains("StableDiffusionAdapterPipeline · 2 T2I-Adapter(s)", stdout);
        using var actual = NpyFile.Read(output);
        using var pipe = StableDiffusionAdapterPipeline.FromPretrained(dir.Path,
            new MultiAdapter([T2IAdapterGoldenTests.Load("sd-full"), T2IAdapterGoldenTests.Load("sd-full-gray")]));
        // the one-channel adapter reads its image greyscale
        using var expected = pipe.Generate("a photo of a cat", [Image.LoadImage(Edges), Image.LoadImage(Edges, grayscale: true)], 32, 32, 2,
            seed: 0, outputType: OutputType.Np, adapterConditioningScale: [0.7, 0.3]);
        double diff = Tol.MaxAbsDiff(actual, expected.Array!);
        log.WriteLine($"CLI vs library: max abs diff {diff:E3}");
        Assert.True(diff <= 1e-6, $"max abs diff {diff:E3}");
    }

    [Fact]
    public void AnSdxlRunWritesTheLibrarysImage()
    {
        using var dir = new TempDir();
        string output = dir.File("o.npy");
        var (code, stdout, stderr) = CliRun.Run("generate", "-m", Golden.Path("tiny-sdxl"), "--prompt", "a photo of a cat", "--steps", "2",
            "--width", "32", "--height", "32", "--seed", "0", "--adapter", T2IAdapterGoldenTests.Folder("sdxl-full"), "--adapter-image", Edges,
            "--adapter-scale", "0.8", "-o", output);
        Assert.True(code == 0, stderr);
        Assert.Contains("StableDiffusionXLAdapterPipeline · 1 T2I-Adapter(s)", stdout);
        using var actual = NpyFile.Read(output);
        using var pipe = StableDiffusionXLAdapterPipeline.FromPretrained(Golden.Path("tiny-sdxl"), T2IAdapterGoldenTests.Load("sdxl-full"));
        using var expected = pipe.Generate("a photo of a cat", [Image.LoadImage(Edges)], height: 32, width: 32, numInferenceSteps: 2,
            seed: 0, outputType: OutputType.Np, adapterConditioningScale: [0.8]);
        double diff = Tol.MaxAbsDiff(actual, expected.Array!);
        log.WriteLine($"CLI vs library: max abs diff {diff:E3}");
        Assert.True(diff <= 1e-6, $"max abs diff {diff:E3}");
    }

    [Theory]
    [InlineData("tiny-ddpm", "", "DDPMPipeline takes no --adapter: T2I-Adapters guide text-conditioned (Stable Diffusion) models, and DDPMPipeline is unconditional")]
    [InlineData("tiny-sd-upscale", "", "--adapter runs on a text-to-image base folder (StableDiffusionPipeline or StableDiffusionXLPipeline); " +
        "{FOLDER} is a StableDiffusionUpscalePipeline")]
    [InlineData("tiny-sd-instruct-pix2pix", "", "--adapter runs on a text-to-image base folder (StableDiffusionPipeline or StableDiffusionXLPipeline); " +
        "{FOLDER} is a StableDiffusionInstructPix2PixPipeline")]
    [InlineData("tiny-sdxl", "--init-image EDGES", "--init-image is not available with --adapter (diffusers' T2I-Adapter pipelines are text to image only)")]
    [InlineData("tiny-sd", "--guidance-rescale 0.5", "--guidance-rescale is not available with --adapter on Stable Diffusion models (diffusers' StableDiffusionAdapterPipeline has no guidance_rescale)")]
    [InlineData("tiny-sd", "--adapter-scale 0.5 --adapter-scale 0.5", "--adapter-scale: 2 values for 1 --adapter(s); give one value, or one per adapter")]
    [InlineData("tiny-sd", "--adapter-image EDGES", "--adapter-image: 2 control image(s) for 1 --adapter(s); give one per adapter, in the same order")]
    [InlineData("tiny-sd", "", "--adapter: StableDiffusionAdapterPipeline: adapter 0 (full_adapter_xl, channels [8, 16, 16, 16]) gives states of [8, 16, 16, 16] channels, but the UNet's down blocks have block_out_channels [32, 64]: the adapter was made for another model")]
    public void AdapterOptionsAreRefusedWhereTheyCannotApply(string model, string extra, string message)
    {
        using var dir = new TempDir();
        string adapter = T2IAdapterGoldenTests.Folder(model == "tiny-sd" && extra == "" ? "sdxl-full" : model == "tiny-sdxl" ? "sdxl-full" : "sd-full");
        var args = new List<string> { "generate", "-m", Golden.Path(model), "--steps", "1", "--adapter", adapter, "--adapter-image", Edges };
        if (model != "tiny-ddpm") args.AddRange(["--prompt", "x"]);
        args.AddRange(extra.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(a => a == "EDGES" ? Edges : a));
        args.AddRange(["-o", dir.File("o.png")]);
        var (code, _, stderr) = CliRun.Run([.. args]);
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains(message.Replace("{FOLDER}", Golden.Path(model)), stderr);
        Assert.DoesNotContain("   at ", stderr);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }
}
