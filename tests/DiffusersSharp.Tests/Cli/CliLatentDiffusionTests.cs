using DiffusersSharp.Imaging;
using DiffusersSharp.Tests.Pipelines;
using DiffusersSharp.Tests.Support;

namespace DiffusersSharp.Tests.Cli;

/// <summary>
/// <c>diffusers generate</c> on the latent diffusion folders of tests/golden/ldm: an LDMPipeline folder runs as DDPM
/// folders do (<c>--steps --batch --seed --eta</c>) and an LDMSuperResolutionPipeline folder upscales <c>--image</c>, both
/// giving diffusers 0.25.1's images of tests/golden/ldm within the library tests' tolerance; --image is required for
/// super-resolution (the options they do not take are rows of CliOptionMatrixTests).
/// </summary>
public class CliLatentDiffusionTests
{
    private const string Expected = "ldm/ldm-expected.safetensors";

    [Theory]
    [InlineData("ldm-eta0", "--batch 2 --steps 3 --seed 0", "LDMPipeline · DDIMScheduler · 3 steps · batch 2 · seed 0 · Float32")]
    [InlineData("ldm-eta1", "--steps 3 --seed 1 --eta 1", "LDMPipeline · DDIMScheduler · 3 steps · batch 1 · seed 1 · Float32")]
    public void AnLdmFolderGeneratesDiffusersImages(string run, string options, string header)
    {
        using var dir = new TempDir();
        var (code, stdout, stderr) = CliRun.Run(["generate", "-m", LDMPipelineTests.Model, .. options.Split(' '), "-o", dir.File("ldm.npy")]);
        Assert.True(code == 0, stderr);
        Assert.Contains(header, stdout);
        using var actual = NpyFile.Read(dir.File("ldm.npy"));
        Tol.Close(actual, Golden.Tensor(Expected, run + "/images"), 1e-4, run + "/images");
    }

    [Fact]
    public void ASuperResolutionFolderUpscalesTheImage()
    {
        using var dir = new TempDir();
        var (code, stdout, stderr) = CliRun.Run(["generate", "-m", LDMSuperResolutionPipelineTests.Model, "--image", LDMSuperResolutionPipelineTests.LowRes,
            "--steps", "3", "--eta", "1", "--seed", "9", "-o", dir.File("sr.npy")]);
        Assert.True(code == 0, stderr);
        Assert.Contains("LDMSuperResolutionPipeline · DDIMScheduler · 3 steps · --image 37x34 · seed 9 · Float32", stdout);
        using var actual = NpyFile.Read(dir.File("sr.npy"));
        Tol.Close(actual, Golden.Tensor(Expected, "sr-ddim-eta1/images"), 1e-4, "sr-ddim-eta1/images");
    }

    [Theory]
    [InlineData("ldm", "--timesteps 999,499", "--timesteps is not available for LDMPipeline: diffusers 0.25.1's LDMPipeline has no timesteps argument (use --steps)")]
    [InlineData("sr", "", "LDMSuperResolutionPipeline needs --image (the low-resolution image to upscale)")]
    public void OptionsTheyDoNotTakeAreRefused(string kind, string options, string message)
    {
        using var dir = new TempDir();
        string model = kind == "ldm" ? LDMPipelineTests.Model : LDMSuperResolutionPipelineTests.Model;
        var args = options.Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(a => a switch { "LOWRES" => LDMSuperResolutionPipelineTests.LowRes, "LORA" => LDMSuperResolutionPipelineTests.LowRes, _ => a });
        string output = dir.File("out.png");
        // --timesteps replaces --steps (the two cannot be combined)
        string[] steps = options.Contains("--timesteps") ? [] : ["--steps", "1"];
        var (code, _, stderr) = CliRun.Run(["generate", "-m", model, .. steps, "--seed", "0", .. args, "-o", output]);
        Assert.Equal(1, code);
        Assert.Contains(message.Replace("{MODEL}", model), stderr);
        Assert.False(File.Exists(output));
    }
}
