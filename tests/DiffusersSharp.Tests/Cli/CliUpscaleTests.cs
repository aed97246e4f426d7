using DiffusersSharp.Cli;
using DiffusersSharp.Imaging;
using DiffusersSharp.Tests.Support;

namespace DiffusersSharp.Tests.Cli;

/// <summary>
/// <c>diffusers generate</c> on a StableDiffusionUpscalePipeline folder (tests/golden/tiny-sd-upscale): <c>--image</c>
/// upscaled 4x as diffusers upscales it, <c>--image</c> required there, <c>--image</c> / <c>--noise-level</c> refused
/// on the other pipelines, and the options the upscaler does not take refused.
/// </summary>
public class CliUpscaleTests
{
    private static string Model => Golden.Path("tiny-sd-upscale");
    private static string LowRes => Golden.Path("upscale", "low-res-16x16.png");

    /// <summary>
    /// The golden "ddim" case of tests/golden/upscale (4 DDIM steps, guidance 9, noise level 20, seed 0): diffusers' images
    /// from the real transformers' embeddings of "a photo of a cat" and "", here from our text encoder's.
    /// </summary>
    [Fact]
    public void GenerateUpscalesTheImageAsDiffusersDoes()
    {
        using var dir = new TempDir();
        var (code, stdout, stderr) = CliRun.Run(["generate", "-m", Model, "--image", LowRes, "--prompt", "a photo of a cat",
            "--steps", "4", "--seed", "0", "-o", dir.File("up.npy")]);
        Assert.True(code == 0, stderr);
        Assert.Contains("StableDiffusionUpscalePipeline · DDIMScheduler · 4 steps · batch 1 · guidance 9 · noise level 20 · seed 0", stdout);
        using var actual = NpyFile.Read(dir.File("up.npy"));
        using var expected = Golden.Tensor("upscale/upscale-expected.safetensors", "ddim/images");
        Tol.Close(actual, expected, 1e-4, "ddim/images");
    }

    [Theory]
    [InlineData("--noise-level", "5", "--noise-level applies to Stable Diffusion upscale models (StableDiffusionUpscalePipeline); {sd} is a StableDiffusionPipeline")]
    [InlineData("--image", "IMAGE", "--image applies to upscale models (StableDiffusionUpscalePipeline, LDMSuperResolutionPipeline, StableDiffusionLatentUpscalePipeline); {sd} is a StableDiffusionPipeline")]
    public void UpscaleOptionsAreRefusedOnOtherPipelines(string option, string value, string message)
    {
        using var dir = new TempDir();
        string sd = Golden.Path("tiny-sd");
        var (code, _, stderr) = CliRun.Run(["generate", "-m", sd, "--prompt", "a cat", option, value == "IMAGE" ? LowRes : value,
            "--steps", "1", "-o", dir.File("o.png")]);
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains(message.Replace("{sd}", sd), stderr);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Theory]
    [InlineData("", "StableDiffusionUpscalePipeline needs --image (the low-resolution image to upscale)")]
    [InlineData("--image IMAGE --width 64", "StableDiffusionUpscalePipeline takes no --width: it upscales --image 4x (diffusers 0.25.1's StableDiffusionUpscalePipeline has no such argument)")]
    [InlineData("--image IMAGE --init-image IMAGE", "StableDiffusionUpscalePipeline takes no --init-image: it upscales --image 4x")]
    [InlineData("--image IMAGE --noise-level 351", "--noise-level must be at most the model's max_noise_level 350, got 351")]
    [InlineData("--image IMAGE --noise-level -1", "--noise-level must be ≥ 0, got -1")]
    [InlineData("--image IMAGE --preview-every 1", "StableDiffusionUpscalePipeline takes no --preview-every")]
    public void TheUpscalerRefusesWhatItCannotTake(string options, string message)
    {
        using var dir = new TempDir();
        var extra = options.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(a => a == "IMAGE" ? LowRes : a);
        var (code, _, stderr) = CliRun.Run(["generate", "-m", Model, "--prompt", "a cat", "--steps", "1", .. extra, "-o", dir.File("o.png")]);
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains(message, stderr);
        Assert.DoesNotContain("   at ", stderr);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }
}
