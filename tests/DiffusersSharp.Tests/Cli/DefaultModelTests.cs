using DiffusersSharp.Cli;
using DiffusersSharp.Imaging;
using DiffusersSharp.Tests.Support;
using Image = DiffusersSharp.Imaging.Image;

namespace DiffusersSharp.Tests.Cli;

/// <summary>
/// `diffusers generate` without --model: the bundled models/ddpm-cats-32 (trained by `diffusers train
/// unconditional`), checked against what Python diffusers generates from the same folder.
/// </summary>
public class DefaultModelTests
{
    private static (int code, string stdout, string stderr) Run(params string[] args) => CliRun.Run(args);

    [Fact]
    public void TheBundledModelIsCopiedNextToTheProgram()
    {
        Assert.True(File.Exists(Path.Combine(DefaultModel.Path, "model_index.json")), DefaultModel.Path);
        Assert.True(File.Exists(Path.Combine(DefaultModel.Path, "unet", "diffusion_pytorch_model.safetensors")));
        Assert.True(new FileInfo(Path.Combine(DefaultModel.Path, "unet", "diffusion_pytorch_model.safetensors")).Length < 10_000_000);
        // the scheduler config holds diffusers' keys only (it carried our stray "TrainTimesteps" until 2026-12-06)
        Assert.Equal(ConfigKeys.Scheduler("DDPMScheduler"),
            ConfigKeys.TopLevel(Path.Combine(DefaultModel.Path, "scheduler", "scheduler_config.json")));
    }

    /// <summary>
    /// tests/golden/ddpm-cats-32/python-seed0-steps50-batch4.npy: Python diffusers' DDPMPipeline.from_pretrained on
    /// models/ddpm-cats-32, generator torch.Generator("cpu").manual_seed(0), 50 steps, batch 4, output_type "np".
    /// </summary>
    [Fact]
    public void GenerateWithoutModelMatchesPythonDiffusersOnTheBundledCats()
    {
        using var dir = new TempDir();
        var (code, stdout, stderr) = Run("generate", "--steps", "50", "--seed", "0", "--batch", "4", "--output", dir.File("cats.npy"));
        Assert.True(code == 0, stderr);
        Assert.Contains("DDPMPipeline · DDPMScheduler · 50 steps · batch 4 · seed 0", stdout);
        using var ours = NpyFile.Read(dir.File("cats.npy"));
        using var python = NpyFile.Read(Golden.Path("ddpm-cats-32", "python-seed0-steps50-batch4.npy"));
        Assert.Equal(python.shape, ours.shape);
        using var diff = (ours - python).abs();
        double within = diff.le(1.0 / 255).to(TorchSharp.torch.ScalarType.Float64).mean().item<double>();
        Assert.True(within >= 0.999, $"only {within:P3} of values within 1/255 of Python diffusers (max {Tol.MaxAbsDiff(ours, python):G3})");
    }

    [Fact]
    public void UpscaleEnlargesWithNearestNeighbour()
    {
        using var dir = new TempDir();
        var (c1, _, e1) = Run("generate", "-n", "2", "-s", "1", "-o", dir.File("one.png"));
        var (c4, _, e4) = Run("generate", "-n", "2", "-s", "1", "--upscale", "4", "-o", dir.File("four.png"));
        Assert.True(c1 == 0, e1);
        Assert.True(c4 == 0, e4);
        var one = Image.Load(dir.File("one.png"));
        var four = Image.Load(dir.File("four.png"));
        Assert.Equal((32, 32), (one.Width, one.Height));
        Assert.Equal((128, 128), (four.Width, four.Height));
        for (int y = 0; y < 128; y++)
            for (int x = 0; x < 128; x++)
                for (int ch = 0; ch < 3; ch++)
                    Assert.Equal(one[x / 4, y / 4, ch], four[x, y, ch]);
    }

    [Theory]
    [InlineData("0", "out.png", "error: --upscale must be between 1 and 64, got 0")]
    [InlineData("2", "out.npy", "error: --upscale applies to image outputs, not .npy")]
    public void BadUpscaleIsRefusedBeforeAnythingRuns(string factor, string file, string expected)
    {
        using var dir = new TempDir();
        var (code, stdout, stderr) = Run("generate", "--upscale", factor, "-o", dir.File(file));
        Assert.NotEqual(0, code);
        Assert.Equal(expected, stderr.TrimEnd());
        Assert.Empty(Directory.GetFiles(dir.Path));
        Assert.DoesNotContain("DDPMPipeline", stdout);
    }
}
