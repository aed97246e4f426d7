using DiffusersSharp.Loading;
using DiffusersSharp.Tests.Support;

namespace DiffusersSharp.Tests.Loading;

/// <summary>Files that are not weights at all.</summary>
public class NotWeightsTests
{
    private const string LfsPointer = "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a2148e0f8d6bd1f1a8b6a2b0a3b5c4d9f0e1a2b3c4d5e6f708192a3b4c5d6\nsize 454867965\n";

    [Theory]
    [InlineData("diffusion_pytorch_model.safetensors")]
    [InlineData("diffusion_pytorch_model.bin")]
    public void GitLfsPointerSaysSo(string name)
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File(name), LfsPointer);
        var e = Assert.Throws<WeightsException>(() => WeightLoader.ReadFolder(dir.Path));
        Assert.Equal($"{dir.File(name)} is a Git LFS pointer, not the weights: the repository was cloned without git-lfs. Run `git lfs install` and `git lfs pull` in its folder.", e.Message);
    }

    [Fact]
    public void TruncatedBinIsAClearError()
    {
        using var dir = new TempDir();
        var bytes = File.ReadAllBytes(Golden.Path("tiny-ddpm", "unet", "diffusion_pytorch_model.bin"));
        string p = dir.File("diffusion_pytorch_model.bin");
        File.WriteAllBytes(p, bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<WeightsException>(() => WeightLoader.ReadFolder(dir.Path));
        Assert.StartsWith($"{p}: not a PyTorch zip checkpoint (truncated, corrupt, or saved in the pre-1.6 legacy format", e.Message);
    }

    [Fact]
    public void TruncatedSafetensorsIsAClearError()
    {
        using var dir = new TempDir();
        var bytes = File.ReadAllBytes(Golden.Path("tiny-ddpm", "unet", "diffusion_pytorch_model.safetensors"));
        string p = dir.File("diffusion_pytorch_model.safetensors");
        File.WriteAllBytes(p, bytes[..(bytes.Length - 100)]);
        var e = Assert.Throws<WeightsException>(() => WeightLoader.ReadFolder(dir.Path));
        Assert.Contains("the file is truncated", e.Message);
        Assert.StartsWith($"{p}: corrupt safetensors header for tensor '", e.Message);
        Assert.NotNull(e.Key);
    }
}
