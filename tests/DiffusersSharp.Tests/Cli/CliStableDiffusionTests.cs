using DiffusersSharp.Cli;
using DiffusersSharp.Imaging;
using DiffusersSharp.Tests.Pipelines;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Cli;

/// <summary><c>diffusers generate</c> on Stable Diffusion folders: the .npy output equals diffusers' recorded images.</summary>
public class CliStableDiffusionTests(ITestOutputHelper log)
{
    private static string Model => Golden.Path("tiny-sd");

    private static (int code, string stdout, string stderr) Run(params string[] args) => CliRun.Run(args);

    private void CheckNpy(string npy, string goldenFile, string key)
    {
        using var actual = NpyFile.Read(npy);
        using var expected = Golden.Tensor(goldenFile, key);
        Assert.Equal(expected.shape, actual.shape);
        double maxErr = Tol.MaxAbsDiff(actual, expected);
        using var within = ((actual - expected).abs() <= 1.0 / 255).to(ScalarType.Float64).mean();
        log.WriteLine($"{key} via the CLI: max abs error {maxErr:E3}, within 1/255 {within.item<double>():P3}");
        Assert.True(within.item<double>() >= 0.999);
    }

    [Fact]
    public void Txt2ImgNpyMatchesDiffusers()
    {
        using var dir = new TempDir();
        var (code, stdout, stderr) = Run("generate", "-m", Model, "--prompt", "a photo of a cat", "--negative-prompt", "",
            "--guidance", "7.5", "--steps", "5", "--width", "64", "--height", "64", "--seed", "0", "-o", dir.File("t.npy"));
        Assert.True(code == 0, stderr);
        Assert.Contains("StableDiffusionPipeline · PNDMScheduler · 5 steps", stdout);
        Assert.Contains("step 6/6", stdout);
        CheckNpy(dir.File("t.npy"), "tiny-sd-expected.safetensors", "pipeline/pndm_default/images");
    }

    [Fact]
    public void Img2ImgAndInpaintNpyMatchDiffusers()
    {
        using var dir = new TempDir();
        var (code, stdout, stderr) = Run("generate", "-m", Model, "--prompt", "a photo of a cat", "--negative-prompt", "",
            "--init-image", Golden.Path("img2img-init.png"), "--strength", "0.6", "--steps", "5", "--seed", "0", "-o", dir.File("i.npy"));
        Assert.True(code == 0, stderr);
        Assert.Contains("StableDiffusionImg2ImgPipeline", stdout);
        CheckNpy(dir.File("i.npy"), "tiny-sd-img2img-expected.safetensors", "pipeline/pndm_default/images");

        using var folder = StableDiffusionImg2ImgInpaintTests.AssembleInpaintFolder();
        (code, stdout, stderr) = Run("generate", "-m", folder.Path, "--prompt", "a red ball", "--init-image", Golden.Path("img2img-init.png"),
            "--mask", Golden.Path("inpaint-mask.png"), "--steps", "5", "--seed", "0", "-o", dir.File("m.npy"));
        Assert.True(code == 0, stderr);
        Assert.Contains("StableDiffusionInpaintPipeline", stdout);
        CheckNpy(dir.File("m.npy"), "tiny-sd-inpaint-expected.safetensors", "pipeline/pndm_default_strength1/images");
    }

    [Fact]
    public void PaddingMaskCropOnANineChannelInpaintingModelIsRefusedAsDiffusers025Does()
    {
        using var dir = new TempDir();
        using var folder = StableDiffusionImg2ImgInpaintTests.AssembleInpaintFolder();
        var (code, _, stderr) = Run("generate", "-m", folder.Path, "--prompt", "a red ball", "--init-image", Golden.Path("img2img-init.png"),
            "--mask", Golden.Path("inpaint-mask.png"), "--padding-mask-crop", "4", "--steps", "2", "-o", dir.File("o.png"));
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains("StableDiffusionInpaintPipeline: The UNet should have 4 input channels for inpainting mask crop, but has 9 input channels.", stderr);
        Assert.False(File.Exists(dir.File("o.png")));
    }

    [Fact]
    public void APhotosInitImageAndMaskAreTurnedUprightByTheirExifOrientation()
    {
        // tests/golden/exif-orientation: photo-6.jpg is stored 32x16 with EXIF orientation 6 (a phone photo held upright),
        // photo-6-upright.png is diffusers' load_image of it (PIL's exif_transpose: 16x32); photo-mask-8.png and its upright
        // twin likewise. The CLI reads the oriented files as diffusers' load_image does, so the runs are the same (img2img
        // runs at the image's size; diffusers' inpainting at the model's default size, hence the upright size given)
        string E(string file) => Golden.Path("exif-orientation", file);
        using var dir = new TempDir();
        using var folder = StableDiffusionImg2ImgInpaintTests.AssembleInpaintFolder();
        foreach (var (init, mask, name) in new[] { ("photo-6.jpg", "photo-mask-8.png", "oriented"), ("photo-6-upright.png", "photo-mask-8-upright.png", "upright") })
        {
            var (code, _, stderr) = Run("generate", "-m", Model, "--prompt", "a photo of a cat", "--init-image", E(init), "--strength", "0.6",
                "--steps", "3", "--seed", "0", "-o", dir.File($"i-{name}.npy"));
            Assert.True(code == 0, stderr);
            (code, _, stderr) = Run("generate", "-m", folder.Path, "--prompt", "a red ball", "--init-image", E(init), "--mask", E(mask),
                "--width", "16", "--height", "32", "--steps", "2", "--seed", "0", "-o", dir.File($"m-{name}.npy"));
            Assert.True(code == 0, stderr);
        }
        foreach (var run in new[] { "i", "m" })
        {
            using var oriented = NpyFile.Read(dir.File($"{run}-oriented.npy"));
            using var upright = NpyFile.Read(dir.File($"{run}-upright.npy"));
            Assert.Equal(new long[] { 1, 32, 16, 3 }, upright.shape);
            Assert.Equal(upright.shape, oriented.shape);
            Assert.Equal(0.0, Tol.MaxAbsDiff(oriented, upright));
        }
    }

    [Theory]
    [InlineData("--width", "60", "--width must be a multiple of 8 between 8 and 16384, got 60")]
    [InlineData("--height", "100", "--height must be a multiple of 8 between 8 and 16384, got 100")]
    [InlineData("--height", "16392", "--height must be a multiple of 8 between 8 and 16384, got 16392")]
    [InlineData("--guidance", "1e308", "--guidance must be a number between 0 and 1000, got 1E+308")]
    [InlineData("--strength", "1.5", "--strength must be in [0, 1], got 1.5")]
    [InlineData("--mask", "m.png", "--mask needs --init-image")]
    [InlineData("--guidance-rescale", "2", "--guidance-rescale must be in [0, 1], got 2")]
    public void BadStableDiffusionOptionsAreUserErrors(string option, string value, string message)
    {
        using var dir = new TempDir();
        var (code, _, stderr) = Run("generate", "-m", Model, "--prompt", "x", option, value, "-o", dir.File("o.png"));
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains(message, stderr);
        Assert.False(File.Exists(dir.File("o.png")));
    }

    [Fact]
    public void PromptOnAnUnconditionalModelOrNoPromptOnSdIsAnError()
    {
        using var dir = new TempDir();
        var (code, _, stderr) = Run("generate", "-m", Golden.Path("tiny-ddpm"), "--prompt", "a cat", "-o", dir.File("o.png"));
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains("DDPMPipeline takes no prompt, image or guidance options (--prompt)", stderr);
        (code, _, stderr) = Run("generate", "-m", Model, "-o", dir.File("o.png"));
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains("StableDiffusionPipeline needs --prompt", stderr);
        File.WriteAllText(dir.File("bad.png"), "not an image");
        (code, _, stderr) = Run("generate", "-m", Model, "--prompt", "x", "--init-image", dir.File("bad.png"), "-o", dir.File("o.png"));
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains("--init-image: " + dir.File("bad.png") + ": not a readable image", stderr);
    }
}
