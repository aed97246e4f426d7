using DiffusersSharp.Cli;
using DiffusersSharp.Imaging;
using DiffusersSharp.Tests.Support;

namespace DiffusersSharp.Tests.Cli;

/// <summary>
/// <c>diffusers generate</c> on a DiTPipeline folder (tests/golden/tiny-dit): <c>--class-label</c> by id or name gives
/// diffusers' images (tests/golden/dit), is required there and refused elsewhere, and the options DiT does not take are
/// refused naming them.
/// </summary>
public class CliDiTTests
{
    private static string Model => Golden.Path("tiny-dit");

    /// <summary>The golden "ddim-cfg" case: classes 207 ("golden retriever", given by name) and 1, 12 DDIM steps, guidance 4, seed 0.</summary>
    [Fact]
    public void GenerateWithClassLabelsByNameAndIdGivesDiffusersImages()
    {
        using var dir = new TempDir();
        var (code, stdout, stderr) = CliRun.Run(["generate", "-m", Model, "--class-label", "golden retriever", "--class-label", "1",
            "--steps", "12", "--seed", "0", "-o", dir.File("dit.npy")]);
        Assert.True(code == 0, stderr);
        Assert.Contains("DiTPipeline · DDIMScheduler · 12 steps · classes 207, 1 · guidance 4 · seed 0 · Float32", stdout);
        using var actual = NpyFile.Read(dir.File("dit.npy"));
        using var expected = Golden.Tensor("dit/dit-expected.safetensors", "ddim-cfg/images");
        Tol.Close(actual, expected, 1e-4, "ddim-cfg/images");
    }

    [Theory]
    [InlineData("--class-label 1 --prompt cat", "DiTPipeline takes no --prompt: it generates ImageNet classes (--class-label), not from a prompt or an image")]
    [InlineData("--class-label 1 --batch 2", "DiTPipeline takes no --batch: it generates one image per --class-label")]
    [InlineData("--class-label 1 --eta 0.5", "DiTPipeline takes no --eta: diffusers' DiTPipeline passes no eta to the scheduler")]
    [InlineData("--class-label 1 --adapter {adapter} --adapter-image {image}", "DiTPipeline takes no --adapter")]
    [InlineData("--steps 1", "DiTPipeline needs --class-label (a class id or a label name; repeatable, one image each)")]
    [InlineData("--class-label unicorn", "--class-label \"unicorn\" is neither a class id nor a label of {model}'s id2label (25 labels, e.g. \"Ailurus fulgens\", \"Alopex lagopus\", \"Carassius auratus\")")]
    [InlineData("--class-label 1001", "--class-label 1001 is outside the model's classes 0 to 999 (1000: the null class)")]
    public void OptionsDiTDoesNotTakeAreRefusedNamingThem(string args, string message)
    {
        using var dir = new TempDir();
        string[] parts = [.. args.Split(' ').Select(a => a.Replace("{adapter}", Golden.Path("tiny-t2i-adapter", "sd-light"))
            .Replace("{image}", Golden.Path("upscale", "low-res-16x16.png")))];
        var (code, _, stderr) = CliRun.Run(["generate", "-m", Model, .. parts, "-o", dir.File("o.png")]);
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains(message.Replace("{model}", Model), stderr);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public void ClassLabelIsRefusedOnOtherPipelines()
    {
        using var dir = new TempDir();
        string ddpm = Golden.Path("tiny-ddpm");
        var (code, _, stderr) = CliRun.Run(["generate", "-m", ddpm, "--class-label", "1", "--steps", "1", "-o", dir.File("o.png")]);
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains($"--class-label applies to class-conditional models (DiTPipeline, ConsistencyModelPipeline); {ddpm} is a DDPMPipeline", stderr);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }
}
