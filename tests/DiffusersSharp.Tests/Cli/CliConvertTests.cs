using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Tests.Pipelines.SingleFile;
using DiffusersSharp.Tests.Support;

namespace DiffusersSharp.Tests.Cli;

/// <summary><c>diffusers convert</c> both ways and <c>diffusers generate --model file.safetensors</c>.</summary>
public class CliConvertTests
{
    private static (int code, string stdout, string stderr) Run(params string[] args) => CliRun.Run(args);

    [Fact]
    public void ConvertsTheGoldenFileToAFolderAndBack()
    {
        using var dir = new TempDir();
        string folder = dir.File("tiny"), back = dir.File("back.safetensors");
        var (code, stdout, stderr) = Run("convert", SingleFileGoldenTests.File, "--output", folder, "--config", SingleFileGoldenTests.Folder);
        Assert.True(code == 0, stderr);
        Assert.Equal($"wrote {folder} (StableDiffusionPipeline)\n", stdout.Replace("\r\n", "\n"));
        foreach (var c in new[] { "unet", "vae", "text_encoder", "tokenizer", "scheduler" }) Assert.True(Directory.Exists(Path.Combine(folder, c)), c);
        Assert.Equal("StableDiffusionPipeline", PipelineIndex.Read(folder).ClassName);

        (code, stdout, stderr) = Run("convert", folder, "--to-original", "--half", "-o", back);
        Assert.True(code == 0, stderr);
        Assert.Equal($"wrote {back} (978 tensors, original layout, float16)\n", stdout.Replace("\r\n", "\n"));
        SingleFileGoldenTests.SameFile(SingleFileGoldenTests.File, back);
    }

    [Fact]
    public void GenerateFromASingleFileEqualsGenerateFromItsFolder()
    {
        using var dir = new TempDir();
        string folder = dir.File("sd1"), file = dir.File("sd1.safetensors");
        SyntheticPipelines.Write(folder, sd2: false);
        var (code, _, stderr) = Run("convert", folder, "-o", file);
        Assert.True(code == 0, stderr);
        string[] common = ["--prompt", "a photo of a cat", "--steps", "2", "--width", "32", "--height", "32", "--seed", "0"];
        (code, var fromFolder, stderr) = Run(["generate", "-m", folder, .. common, "-o", dir.File("a.npy")]);
        Assert.True(code == 0, stderr);
        (code, var fromFile, stderr) = Run(["generate", "-m", file, .. common, "-o", dir.File("b.npy")]);
        Assert.True(code == 0, stderr);
        Assert.Contains("StableDiffusionPipeline · PNDMScheduler · 2 steps", fromFile);
        using var x = NpyFile.Read(dir.File("a.npy"));
        using var y = NpyFile.Read(dir.File("b.npy"));
        Assert.True(SingleFileGoldenTests.Same(x, y), "the single file and its folder give different images");
    }

    [Fact]
    public void BadConvertCommandsAreOneLineErrors()
    {
        using var dir = new TempDir();
        var (code, _, stderr) = Run("convert", SingleFileGoldenTests.File, "--to-original", "-o", dir.File("x.safetensors"));
        Assert.Equal(1, code);
        Assert.Equal($"error: --to-original converts a diffusers folder; {SingleFileGoldenTests.File} is a file (without --to-original it becomes a diffusers folder)\n",
            stderr.Replace("\r\n", "\n"));
        (code, _, stderr) = Run("convert", SingleFileGoldenTests.Folder, "-o", dir.File("x.ckpt"));
        Assert.Equal(1, code);
        Assert.Contains("the original layout is written as a .safetensors file", stderr);
        Directory.CreateDirectory(dir.File("full"));
        File.WriteAllText(dir.File(Path.Combine("full", "x")), "");
        (code, _, stderr) = Run("convert", SingleFileGoldenTests.File, "-o", dir.File("full"), "--config", SingleFileGoldenTests.Folder);
        Assert.Equal(1, code);
        Assert.Equal($"error: {dir.File("full")} already exists and is not empty; give a new folder\n", stderr.Replace("\r\n", "\n"));
        (code, _, stderr) = Run("convert", SingleFileGoldenTests.File, "-o", dir.File("tiny"));
        Assert.Equal(1, code);
        Assert.Contains("its number of attention heads cannot be inferred; pass the text encoder, or a diffusers folder whose configs to use", stderr);
        Assert.False(Directory.Exists(dir.File("tiny")));
        string xl = dir.File("xl.safetensors");
        (code, _, stderr) = Run("convert", Golden.Path("tiny-sdxl"), "-o", xl);
        Assert.True(code == 0, stderr);
        (code, _, stderr) = Run("generate", "-m", xl, "--prompt", "x", "-o", dir.File("o.png"));
        Assert.Equal(1, code);
        // generate takes SDXL single files now (FromSingleFile); this tiny one's heads cannot be inferred from its shapes
        Assert.Contains("the text encoder is 16 wide ('conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight')", stderr);
    }
}
