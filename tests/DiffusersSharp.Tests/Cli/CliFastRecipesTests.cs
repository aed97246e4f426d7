using DiffusersSharp.Cli;
using DiffusersSharp.Runtime;
using DiffusersSharp.Tests.Support;
using Image = DiffusersSharp.Imaging.Image;

namespace DiffusersSharp.Tests.Cli;

/// <summary>
/// The few-step command lines of the README's "Fast on a CPU" section, on tiny-sd with the tiny TAESD: SD-Turbo style
/// (Euler ancestral, trailing spacing, one step, guidance 0) and LCM (four steps, guidance 1), with <c>--preview-every</c>
/// previews and <c>--dtype auto</c>.
/// </summary>
public class CliFastRecipesTests
{
    private static string Sd => Golden.Path("tiny-sd");
    private static string Taesd => Golden.Path("tiny-taesd");

    private static void AssertImage(string path, int width, int height)
    {
        Assert.True(File.Exists(path), $"{path} was not written");
        var image = Image.Load(path);
        Assert.Equal((width, height), (image.Width, image.Height));
    }

    [Fact]
    public void TurboRecipeRunsOneStepWithoutGuidanceAndWritesPreviews()
    {
        using var dir = new TempDir();
        var (code, stdout, stderr) = CliRun.Run("generate", "-m", Sd, "--prompt", "a cat", "--scheduler", "euler-a",
            "--scheduler-config", "timestep_spacing=trailing", "--guidance", "0", "--steps", "1", "--width", "64", "--height", "64",
            "--vae", Taesd, "--preview-every", "1", "--seed", "0", "-o", dir.File("turbo.png"));
        Assert.True(code == 0, stderr);
        Assert.Contains("EulerAncestralDiscreteScheduler · 1 steps · batch 1 · guidance 0", stdout);
        Assert.Contains("previews: every 1 step(s) with the pipeline's tiny VAE", stdout);
        AssertImage(dir.File("turbo.png"), 64, 64);
        AssertImage(dir.File("turbo.step1.png"), 64, 64);
    }

    [Fact]
    public void LcmRecipeRunsFourStepsAndPreviewsEverySecondStep()
    {
        using var dir = new TempDir();
        var (code, stdout, stderr) = CliRun.Run("generate", "-m", Sd, "--prompt", "a cat", "--scheduler", "lcm", "--guidance", "1",
            "--steps", "4", "--width", "32", "--height", "32", "--preview-every", "2", "--preview-vae", Taesd, "--seed", "0",
            "-o", dir.File("lcm.png"));
        Assert.True(code == 0, stderr);
        Assert.Contains("LCMScheduler · 4 steps · batch 1 · guidance 1", stdout);
        AssertImage(dir.File("lcm.png"), 32, 32);
        AssertImage(dir.File("lcm.step2.png"), 32, 32);
        AssertImage(dir.File("lcm.step4.png"), 32, 32);
        Assert.False(File.Exists(dir.File("lcm.step1.png")));
        Assert.False(File.Exists(dir.File("lcm.step3.png")));
    }

    [Theory]
    [InlineData("ddpm")]
    [InlineData("txt2img")]
    public void DtypeAutoIsBf16OnlyWhereTheCpuHasNativeBf16(string kind)
    {
        using var dir = new TempDir();
        string[] model = kind == "ddpm"
            ? ["-m", Golden.Path("tiny-ddpm"), "--steps", "1"]
            : ["-m", Sd, "--prompt", "a cat", "--steps", "1", "--width", "32", "--height", "32"];
        var (code, stdout, stderr) = CliRun.Run(["generate", .. model, "--dtype", "auto", "-o", dir.File("a.png")]);
        Assert.True(code == 0, stderr);
        bool bf16 = CpuFeatures.HasNativeBFloat16;
        Assert.Contains(bf16 ? "--dtype auto: bf16 (the CPU has " : "--dtype auto: fp32 (no native bf16 on this CPU)", stdout);
        Assert.Contains(bf16 ? "· BFloat16" : "· Float32", stdout);
        AssertImage(dir.File("a.png"), 32, 32);
    }

    [Fact]
    public void BadPreviewOptionsAreUserErrors()
    {
        using var dir = new TempDir();
        string[] sd = ["generate", "-m", Sd, "--prompt", "a cat", "--steps", "1", "--width", "32", "--height", "32", "-o", dir.File("o.png")];
        var (code, _, stderr) = CliRun.Run([.. sd, "--preview-every", "0"]);
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains("--preview-every must be at least 1, got 0", stderr);
        (code, _, stderr) = CliRun.Run([.. sd, "--preview-vae", Taesd]);
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains("--preview-vae needs --preview-every", stderr);
        (code, _, stderr) = CliRun.Run([.. sd, "--preview-every", "1", "--preview-vae", Sd]);
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains($"--preview-vae {Sd}: holds an AutoencoderKL, not an AutoencoderTiny", stderr);
        (code, _, stderr) = CliRun.Run("generate", "-m", Golden.Path("tiny-ddpm"), "--preview-every", "1", "-o", dir.File("d.png"));
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains("DDPMPipeline takes no --preview-every; it is for Stable Diffusion models", stderr);
        Assert.Empty(Directory.GetFiles(dir.Path));
    }
}
