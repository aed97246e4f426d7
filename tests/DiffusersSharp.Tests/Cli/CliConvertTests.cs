using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Tests.Pipelines.SingleFile;
using DiffusersSharp.Tests.Support;
using TorchSharp;

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

    [Theory]
    [InlineData("single-file/tiny-sd15-layout")]
    [InlineData("tiny-sdxl")]
    [InlineData("tiny-sdxl-refiner")]
    public void AConvertedFoldersModelIndexIsTheOneDiffusersWrites(string model)
    {
        // every module diffusers 0.25.1 registers for the class (image_encoder and the SDXL feature_extractor as
        // [null, null], which were missing until 2026-12-06), keys sorted: byte for byte the golden folder's file
        using var dir = new TempDir();
        string golden = Golden.Path(model.Split('/')), file = dir.File("m.safetensors"), back = dir.File("back");
        var (code, _, stderr) = Run("convert", golden, "--to-original", "-o", file);
        Assert.True(code == 0, stderr);
        (code, _, stderr) = Run("convert", file, "--config", golden, "-o", back);
        Assert.True(code == 0, stderr);
        Assert.Equal(File.ReadAllText(Path.Combine(golden, "model_index.json")), File.ReadAllText(Path.Combine(back, "model_index.json")));
    }

    [Fact]
    public void GenerateFromASingleFileEqualsGenerateFromItsFolder()
    {
        using var dir = new TempDir();
        string folder = dir.File("sd1"), file = dir.File("sd1.safetensors");
        SyntheticPipelines.Write(folder, sd2: false);
        var (code, _, stderr) = Run("convert", folder, "-o", file);
        Assert.True(code == 0, stderr);
        string fromFile = SameImages(dir, ["-m", folder], ["-m", file], ["--width", "32", "--height", "32"]);
        Assert.Contains("StableDiffusionPipeline · PNDMScheduler · 2 steps", fromFile);
    }

    /// <summary>
    /// Runs <c>generate</c> with the <paramref name="reference"/> and the <paramref name="tried"/> model options (the same
    /// prompt, 2 steps, seed 0 and <paramref name="more"/>), asserts the two .npy images are the same bits and returns the
    /// second run's output.
    /// </summary>
    private static string SameImages(TempDir dir, string[] reference, string[] tried, string[] more)
    {
        string[] common = ["--prompt", "a photo of a cat", "--steps", "2", "--seed", "0", .. more];
        var (code, _, stderr) = Run(["generate", .. reference, .. common, "-o", dir.File("reference.npy")]);
        Assert.True(code == 0, stderr);
        (code, var stdout, stderr) = Run(["generate", .. tried, .. common, "-o", dir.File("tried.npy")]);
        Assert.True(code == 0, stderr);
        using var x = NpyFile.Read(dir.File("reference.npy"));
        using var y = NpyFile.Read(dir.File("tried.npy"));
        Assert.True(SingleFileGoldenTests.Same(x, y), $"generate {string.Join(' ', tried)} does not give generate {string.Join(' ', reference)}'s image");
        return stdout;
    }

    [Fact]
    public void GenerateFromTheGoldenFileWithAConfigFolderMatchesFromSingleFile()
    {
        // diffusers' from_single_file with the folder's configs (the golden run passes the same configs as YAML, image
        // size and text encoder): the file's float16 weights, the folder's tokenizer, text encoder config and scheduler
        using var dir = new TempDir();
        var (code, stdout, stderr) = Run("generate", "-m", SingleFileGoldenTests.File, "--config", SingleFileGoldenTests.Folder,
            "--prompt", "a photo of a cat", "--negative-prompt", "", "--guidance", "7.5", "--steps", "2", "--width", "64", "--height", "64",
            "--seed", "0", "-o", dir.File("k.npy"));
        Assert.True(code == 0, stderr);
        Assert.Contains("StableDiffusionPipeline · PNDMScheduler · 2 steps", stdout);
        using var actual = NpyFile.Read(dir.File("k.npy"));
        using var expected = Golden.Tensor(SingleFileGoldenTests.Expected, "pipeline/single_file/images");
        Assert.Equal(expected.shape, actual.shape);
        using var within = ((actual - expected).abs() <= 1.0 / 255).all();
        Assert.True(within.item<bool>(), $"not every value is within 1/255 of diffusers' (max {Tol.MaxAbsDiff(actual, expected):E3})");
    }

    [Fact]
    public void GenerateFromAnSdxlFileWithItsFolderAsConfigEqualsTheFolder()
    {
        // the tiny SDXL's heads cannot be inferred from its shapes (BadConvertCommandsAreOneLineErrors); its folder's configs say them
        using var dir = new TempDir();
        string xl = dir.File("xl.safetensors");
        var (code, _, stderr) = Run("convert", Golden.Path("tiny-sdxl"), "-o", xl);
        Assert.True(code == 0, stderr);
        string fromFile = SameImages(dir, ["-m", Golden.Path("tiny-sdxl")], ["-m", xl, "--config", Golden.Path("tiny-sdxl")], []);
        Assert.Contains("StableDiffusionXLPipeline", fromFile);
    }

    [Fact]
    public void ConfigOnAPipelineFolderIsRefused()
    {
        using var dir = new TempDir();
        var (code, _, stderr) = Run("generate", "-m", SingleFileGoldenTests.Folder, "--config", SingleFileGoldenTests.Yaml, "--prompt", "x",
            "-o", dir.File("o.png"));
        Assert.Equal(1, code);
        Assert.Equal($"error: --config applies to a single-file checkpoint (.safetensors/.ckpt); {SingleFileGoldenTests.Folder} is a pipeline folder or Hub id, whose own configs are used\n",
            stderr.Replace("\r\n", "\n"));
        Assert.False(File.Exists(dir.File("o.png")));
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

    [Fact]
    public void ToOriginalRefusesAnExistingFileAFolderOrAPathInsideTheInputBeforeLoading()
    {
        using var dir = new TempDir();
        string copy = dir.File("copy"), unet = Path.Combine(copy, "unet", "diffusion_pytorch_model.safetensors");
        SyntheticPipelines.Write(copy, sd2: false);
        byte[] weights = File.ReadAllBytes(unet);
        var (code, stdout, stderr) = Run("convert", copy, "-o", unet);
        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        Assert.Equal($"error: --output '{unet}' already exists; remove it or choose another --output\n", stderr.Replace("\r\n", "\n"));
        Assert.Equal(weights, File.ReadAllBytes(unet));

        string inside = Path.Combine(copy, "unet", "new.safetensors");
        (code, _, stderr) = Run("convert", copy + Path.DirectorySeparatorChar, "-o", inside);
        Assert.Equal(1, code);
        Assert.Equal($"error: --output '{inside}' is inside the input folder {copy}{Path.DirectorySeparatorChar}; write the single file elsewhere\n",
            stderr.Replace("\r\n", "\n"));
        Assert.False(File.Exists(inside));

        string precious = dir.File("exist.safetensors");
        File.WriteAllText(precious, "precious\n");
        (code, _, stderr) = Run("convert", Golden.Path("tiny-sd"), "-o", precious);
        Assert.Equal(1, code);
        Assert.Equal($"error: --output '{precious}' already exists; remove it or choose another --output\n", stderr.Replace("\r\n", "\n"));
        Assert.Equal("precious\n", File.ReadAllText(precious));

        // a folder named like the file: refused before converting (was IOException "Is a directory" after the work)
        string folderNamedFile = dir.File("dir.safetensors");
        Directory.CreateDirectory(folderNamedFile);
        (code, _, stderr) = Run("convert", Golden.Path("tiny-sd"), "-o", folderNamedFile);
        Assert.Equal(1, code);
        Assert.Equal($"error: --output '{folderNamedFile}' is an existing folder; give the .safetensors file to write\n", stderr.Replace("\r\n", "\n"));
        Assert.Empty(Directory.EnumerateFileSystemEntries(folderNamedFile));
    }

    [Fact]
    public void ToDiffusersTakesAnOutputFolderWithTrailingSeparators()
    {
        using var dir = new TempDir();
        string output = dir.File("out");
        var (code, stdout, stderr) = Run("convert", SingleFileGoldenTests.File, "--config", SingleFileGoldenTests.Folder,
            "-o", output + Path.DirectorySeparatorChar + Path.DirectorySeparatorChar);
        Assert.True(code == 0, stderr);
        Assert.StartsWith($"wrote {output}", stdout);
        Assert.Equal("StableDiffusionPipeline", PipelineIndex.Read(output).ClassName);
        Assert.Equal(["out"], Directory.GetFileSystemEntries(dir.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void AMissingInputPathIsReportedAsNotFound()
    {
        using var dir = new TempDir();
        string typo = dir.File("typo.safetensors"), nested = Path.Combine(dir.Path, "no", "such", "folder");
        foreach (var (input, output) in new[] { (typo, dir.File("outdir")), (nested, dir.File("x.safetensors")), ("typo.ckpt", dir.File("outdir")) })
        {
            var (code, stdout, stderr) = Run("convert", input, "-o", output);
            Assert.Equal(1, code);
            Assert.Equal("", stdout);
            Assert.Equal($"error: input '{input}' not found: no such file or folder\n", stderr.Replace("\r\n", "\n"));
        }
        Assert.Empty(Directory.EnumerateFileSystemEntries(dir.Path));
    }

    [Fact]
    public void ConvertStopsAtCtrlCAndLeavesNothing()
    {
        using var dir = new TempDir();
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        string[][] runs =
        [
            ["convert", SingleFileGoldenTests.File, "--config", SingleFileGoldenTests.Folder, "-o", dir.File("folder")],
            ["convert", SingleFileGoldenTests.Folder, "-o", dir.File("single.safetensors")],
        ];
        foreach (var args in runs)
        {
            using var o = new StringWriter();
            using var e = new StringWriter();
            int code = DiffusersSharp.Cli.CliApp.Run(args, o, e, plainProgress: true, cts.Token);
            Assert.Equal(1, code);
            Assert.Equal("", o.ToString());
            Assert.Equal("cancelled\n", e.ToString().Replace("\r\n", "\n"));
        }
        Assert.Empty(Directory.EnumerateFileSystemEntries(dir.Path)); // no output, no temporary folder or file
    }

    [Fact]
    public void SchedulerTypeBuildsTheFoldersSchedulerAndIsRefusedWhereItWouldBeIgnored()
    {
        using var dir = new TempDir();
        string synthetic = dir.File("sd1"), single = dir.File("sd1.safetensors");
        SyntheticPipelines.Write(synthetic, sd2: false);
        var (code, stdout, stderr) = Run("convert", synthetic, "-o", single);
        Assert.True(code == 0, stderr);

        // file -> folder: the scheduler diffusers' scheduler_type names
        string folder = dir.File("ddim");
        (code, _, stderr) = Run("convert", single, "--scheduler-type", "ddim", "-o", folder);
        Assert.True(code == 0, stderr);
        Assert.Contains("\"_class_name\": \"DDIMScheduler\"", File.ReadAllText(Path.Combine(folder, "scheduler", "scheduler_config.json")));

        // with a diffusers folder as --config, that folder's scheduler and configs are used whole: refused, not ignored
        string other = dir.File("other");
        (code, _, stderr) = Run("convert", single, "--config", synthetic, "--scheduler-type", "ddim", "-o", other);
        Assert.Equal(1, code);
        Assert.Equal($"error: --scheduler-type cannot be combined with --config {synthetic}: the configs and scheduler of that diffusers folder "
                     + "are used as they are (change them there, or pass an original YAML as --config)\n", stderr.Replace("\r\n", "\n"));
        Assert.False(Directory.Exists(other));

        // folder -> file: the original layout has no scheduler (convert_diffusers_to_original_stable_diffusion.py takes
        // none); the option was ignored silently, now it is refused before anything is read or written
        string file = dir.File("x.safetensors");
        (code, stdout, stderr) = Run("convert", folder, "--scheduler-type", "ddim", "-o", file);
        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        Assert.Equal($"error: --scheduler-type applies only when converting a single file into a folder; {folder} is a diffusers folder or Hub id, "
                     + "converted to the original layout\n", stderr.Replace("\r\n", "\n"));
        (code, _, stderr) = Run("convert", folder, "--scheduler-type", "pndm", "--image-size", "64", "--to-original", "-o", file);
        Assert.Equal(1, code);
        Assert.StartsWith("error: --image-size, --scheduler-type apply only when converting a single file into a folder;", stderr);
        Assert.False(File.Exists(file));
    }
}
