using DiffusersSharp.Cli;
using DiffusersSharp.Imaging;
using DiffusersSharp.Tests.Pipelines;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Cli;

/// <summary><c>diffusers generate --controlnet … --control-image …</c>: the .npy output equals diffusers' recorded images; bad combinations are user errors.</summary>
public class CliControlNetTests(ITestOutputHelper log)
{
    private static string Model => Golden.Path("tiny-sd");
    private static string Net => Golden.Path("tiny-sd-controlnet");
    private static string Edges => Golden.Path("controlnet-edges.png");
    private static string Scribble => Golden.Path("controlnet-scribble.png");

    private void CheckNpy(string npy, string key)
    {
        using var actual = NpyFile.Read(npy);
        using var expected = Golden.Tensor("tiny-sd-controlnet-expected.safetensors", key);
        Assert.Equal(expected.shape, actual.shape);
        using var within = ((actual - expected).abs() <= 1.0 / 255).to(ScalarType.Float64).mean();
        log.WriteLine($"{key} via the CLI: max abs error {Tol.MaxAbsDiff(actual, expected):E3}, within 1/255 {within.item<double>():P3}");
        Assert.True(within.item<double>() >= 0.999);
    }

    [Fact]
    public void TwoNetsWithPerNetScalesAndWindowsMatchDiffusers()
    {
        using var dir = new TempDir();
        var (code, stdout, stderr) = CliRun.Run("generate", "-m", Model, "--prompt", "a photo of a cat", "--negative-prompt", "",
            "--controlnet", Net, "--control-image", Edges, "--controlnet", Net, "--control-image", Scribble,
            "--control-scale", "1.0", "--control-scale", "0.6", "--control-start", "0", "--control-start", "0.4",
            "--control-end", "0.6", "--control-end", "1", "--steps", "4", "--seed", "0", "-o", dir.File("m.npy"));
        Assert.True(code == 0, stderr);
        Assert.Contains("StableDiffusionControlNetPipeline · 2 ControlNet(s) · PNDMScheduler · 4 steps", stdout);
        CheckNpy(dir.File("m.npy"), "pipeline/multi_cn_same_net_twice/images");
    }

    [Fact]
    public void GuessModeAndImg2ImgMatchDiffusers()
    {
        using var dir = new TempDir();
        var (code, stdout, stderr) = CliRun.Run("generate", "-m", Model, "--prompt", "a photo of a cat", "--negative-prompt", "",
            "--controlnet", Net, "--control-image", Edges, "--guess-mode", "--steps", "4", "--seed", "0", "-o", dir.File("g.npy"));
        Assert.True(code == 0, stderr);
        CheckNpy(dir.File("g.npy"), "pipeline/cn_guess_mode/images");

        (code, stdout, stderr) = CliRun.Run("generate", "-m", Model, "--prompt", "a photo of a cat", "--negative-prompt", "",
            "--init-image", Golden.Path("img2img-init.png"), "--strength", "0.6", "--controlnet", Net, "--control-image", Scribble,
            "--steps", "5", "--seed", "2", "-o", dir.File("i.npy"));
        Assert.True(code == 0, stderr);
        Assert.Contains("StableDiffusionControlNetImg2ImgPipeline", stdout);
        CheckNpy(dir.File("i.npy"), "pipeline/cn_img2img_default_scale/images");
    }

    [Fact]
    public void PreviewEveryWritesTheTaesdDecodeOfEachStepsLatents()
    {
        // the ControlNet path did not read --preview-every: no preview was written, and nothing said so. PNDM's 2 steps are
        // 3 UNet calls, each a step of the loop
        using var dir = new TempDir();
        CliPreviews.AssertEachStepIsPreviewed(dir, ["generate", "-m", Model, "--prompt", "a photo of a cat", "--controlnet", Net,
                "--control-image", Edges, "--steps", "2", "--seed", "0", "--preview-every", "1", "--preview-vae", CliPreviews.Taesd],
            CliPreviews.Taesd, steps: 3, onStepEnd =>
            {
                using var pipe = DiffusersSharp.Pipelines.StableDiffusionControlNetPipeline.FromPretrained(Model,
                    DiffusersSharp.Models.ControlNetModel.FromPretrained(Net));
                using var _ = pipe.Generate("a photo of a cat", [Image.LoadImage(Edges)], numInferenceSteps: 2, seed: 0,
                    outputType: DiffusersSharp.Pipelines.OutputType.Latent, callbackOnStepEnd: onStepEnd);
            });
    }

    [Fact]
    public void LoraAppliesToAControlNetRunAsTheLibraryLoadsIt()
    {
        // the ControlNet path did not read --lora: the run was the one without it, and nothing said so (README: the LoRA
        // options apply to every Stable Diffusion pipeline, ControlNet included)
        using var dir = new TempDir();
        string lora = Golden.Path("tiny-sd-lora", "diffusers", "pytorch_lora_weights.safetensors");
        var (code, stdout, stderr) = CliRun.Run("generate", "-m", Model, "--prompt", "a photo of a cat", "--controlnet", Net,
            "--control-image", Edges, "--lora", lora + ":0.5", "--steps", "2", "--seed", "0", "-o", dir.File("l.npy"));
        Assert.True(code == 0, stderr);
        Assert.Contains($"lora: {lora} (scale 0.5): ", stdout);
        using var actual = NpyFile.Read(dir.File("l.npy"));
        using var pipe = DiffusersSharp.Pipelines.StableDiffusionControlNetPipeline.FromPretrained(Model,
            DiffusersSharp.Models.ControlNetModel.FromPretrained(Net));
        using var without = pipe.Generate("a photo of a cat", [Image.LoadImage(Edges)], numInferenceSteps: 2, seed: 0,
            outputType: DiffusersSharp.Pipelines.OutputType.Np);
        pipe.LoadLoraWeights(lora, scale: 0.5);
        using var expected = pipe.Generate("a photo of a cat", [Image.LoadImage(Edges)], numInferenceSteps: 2, seed: 0,
            outputType: DiffusersSharp.Pipelines.OutputType.Np);
        double diff = Tol.MaxAbsDiff(actual, expected.Array!), change = Tol.MaxAbsDiff(expected.Array!, without.Array!);
        log.WriteLine($"CLI vs library with the LoRA: max abs diff {diff:E3}; the LoRA changes the image by {change:E3}");
        Assert.True(change >= 1 / 255.0, $"the LoRA changed the library's image by {change:E3} only");
        Assert.True(diff <= 1e-6, $"max abs diff {diff:E3}");
    }

    [Fact]
    public void AControlImageIsTurnedUprightByItsExifOrientation()
    {
        // photo-6.jpg: stored 32x16 with EXIF orientation 6; photo-6-upright.png: diffusers' load_image of it (16x32). The
        // run takes its size from the control image, as diffusers does: 16 wide, 32 high, the same run for both files
        using var dir = new TempDir();
        foreach (var (file, name) in new[] { ("photo-6.jpg", "oriented"), ("photo-6-upright.png", "upright") })
        {
            var (code, _, stderr) = CliRun.Run("generate", "-m", Model, "--prompt", "a photo of a cat", "--controlnet", Net,
                "--control-image", Golden.Path("exif-orientation", file), "--steps", "2", "--seed", "0", "-o", dir.File($"{name}.npy"));
            Assert.True(code == 0, stderr);
        }
        using var oriented = NpyFile.Read(dir.File("oriented.npy"));
        using var upright = NpyFile.Read(dir.File("upright.npy"));
        Assert.Equal(new long[] { 1, 32, 16, 3 }, upright.shape);
        Assert.Equal(upright.shape, oriented.shape);
        Assert.Equal(0.0, Tol.MaxAbsDiff(oriented, upright));
    }

    [Theory]
    [InlineData(new[] { "--control-image", "E" }, "--control-image needs --controlnet <folder|id>")]
    [InlineData(new[] { "--controlnet", "N" }, "--control-image: 0 control image(s) for 1 --controlnet(s); give one per net, in the same order")]
    [InlineData(new[] { "--controlnet", "N", "--control-image", "E", "--control-image", "E" }, "--control-image: 2 control image(s) for 1 --controlnet(s)")]
    [InlineData(new[] { "--controlnet", "N", "--control-image", "E", "--controlnet", "N", "--control-image", "E", "--control-scale", "1", "--control-scale", "2", "--control-scale", "3" },
        "--control-scale: 3 values for 2 --controlnet(s); give one value, or one per net")]
    [InlineData(new[] { "--controlnet", "N", "--control-image", "E", "--control-start", "0.8", "--control-end", "0.5" },
        "--control-start / --control-end: net 1 acts from 0.8 to 0.5; need 0 ≤ start < end ≤ 1")]
    [InlineData(new[] { "--controlnet", "N", "--control-image", "missing.png" }, "--control-image: file not found: missing.png")]
    [InlineData(new[] { "--guess-mode" }, "--guess-mode needs --controlnet <folder|id>")]
    public void BadControlNetOptionsAreUserErrors(string[] options, string message)
    {
        using var dir = new TempDir();
        var args = new[] { "generate", "-m", Model, "--prompt", "x", "-o", dir.File("o.png") }
            .Concat(options.Select(o => o == "N" ? Net : o == "E" ? Edges : o)).ToArray();
        var (code, _, stderr) = CliRun.Run(args);
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains(message, stderr);
        Assert.False(File.Exists(dir.File("o.png")));
    }

    [Fact]
    public void PaddingMaskCropIsRefusedOnControlNetInpainting()
    {
        // diffusers 0.25.1's StableDiffusionControlNetInpaintPipeline has no padding_mask_crop (0.26.0 added it)
        using var dir = new TempDir();
        var (code, _, stderr) = CliRun.Run("generate", "-m", Model, "--prompt", "x", "--controlnet", Net, "--control-image", Edges,
            "--init-image", Golden.Path("img2img-init.png"), "--mask", Golden.Path("inpaint-mask.png"), "--padding-mask-crop", "4", "-o", dir.File("o.png"));
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains("--padding-mask-crop applies to Stable Diffusion inpainting (StableDiffusionInpaintPipeline) only; diffusers 0.25.1's StableDiffusionControlNetInpaintPipeline has no padding_mask_crop", stderr);
        Assert.False(File.Exists(dir.File("o.png")));
    }

    [Fact]
    public void ControlNetOnAnUnconditionalModelIsRefused()
    {
        using var dir = new TempDir();
        var (code, _, stderr) = CliRun.Run("generate", "-m", Golden.Path("tiny-ddpm"), "--controlnet", Net, "--control-image", Edges, "-o", dir.File("o.png"));
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains("DDPMPipeline takes no --controlnet: ControlNet guides text-conditioned (Stable Diffusion) models, and DDPMPipeline is unconditional", stderr);
        Assert.False(File.Exists(dir.File("o.png")));
    }

    [Fact]
    public void AControlNetForAnotherModelIsRefusedNamingTheKey()
    {
        using var dir = new TempDir();
        using var net = Models.ControlNetModelGoldenTests.LoadTiny();
        using var other = DiffusersSharp.Models.ControlNetModel.FromConfig(net.Config with { CrossAttentionDim = 16 });
        other.SavePretrained(dir.File("other"));
        var (code, _, stderr) = CliRun.Run("generate", "-m", Model, "--prompt", "x", "--controlnet", dir.File("other"),
            "--control-image", Edges, "--steps", "1", "-o", dir.File("o.png"));
        Assert.NotEqual(0, code);
        Assert.Contains("ControlNet 0 has cross_attention_dim 16, but the UNet's is [32]", stderr);
        Assert.False(File.Exists(dir.File("o.png")));
    }

    [Fact]
    public void ControlNetOnASingleFileCheckpointIsRefused()
    {
        using var dir = new TempDir();
        var (code, _, stderr) = CliRun.Run("generate", "-m", Golden.Path("single-file", "tiny-sd15-layout.safetensors"), "--prompt", "x",
            "--controlnet", Net, "--control-image", Edges, "-o", dir.File("o.png"));
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains("--controlnet runs on a diffusers pipeline folder or Hub id, not a single-file checkpoint", stderr);
        Assert.False(File.Exists(dir.File("o.png")));
    }
}
