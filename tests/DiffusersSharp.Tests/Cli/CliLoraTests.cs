using DiffusersSharp.Cli;
using DiffusersSharp.Imaging;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Cli;

/// <summary><c>diffusers generate --lora file[:scale] [--fuse-lora] [--lora-ignore-unknown]</c> against golden README section G.</summary>
public class CliLoraTests(ITestOutputHelper log)
{
    private static string Model => Golden.Path("tiny-sd");
    private static string LoraA => Golden.Path("tiny-sd-lora", "diffusers", "pytorch_lora_weights.safetensors");
    private static string LoraB => Golden.Path("tiny-sd-lora", "kohya.safetensors");

    private static (int Code, string Out, string Err) Generate(string output, params string[] extra) =>
        CliRun.Run(["generate", "-m", Model, "--prompt", "a photo of a cat", "--negative-prompt", "", "--steps", "4", "--width", "64",
            "--height", "64", "--seed", "0", "-o", output, .. extra]);

    private void CheckAllWithin(string npy, string key, string file = "tiny-sd-lora-expected.safetensors")
    {
        using var actual = NpyFile.Read(npy);
        using var expected = Golden.Tensor(file, key);
        Assert.Equal(expected.shape, actual.shape);
        using var within = ((actual - expected).abs() <= 1.0 / 255).to(ScalarType.Float64).mean();
        log.WriteLine($"{key} via the CLI: max abs error {Tol.MaxAbsDiff(actual, expected):E3}, within 1/255 {within.item<double>():P3}");
        Assert.Equal(1.0, within.item<double>());
    }

    [Fact]
    public void LoraOptionAppliesAKohyaFile()
    {
        using var dir = new TempDir();
        var (code, stdout, stderr) = Generate(dir.File("b.npy"), "--lora", LoraB);
        Assert.True(code == 0, stderr);
        Assert.Contains($"lora: {LoraB} (scale 1): 17 unet layers, 30 text_encoder layers", stdout);
        CheckAllWithin(dir.File("b.npy"), "pipeline/lora_b_kohya_scale1/images");
    }

    [Fact]
    public void LoraOptionAppliesAKohyaFileToAnSdxlModel()
    {
        using var dir = new TempDir();
        string lora = Golden.Path("tiny-sdxl-lora", "kohya.safetensors");
        var (code, stdout, stderr) = CliRun.Run(["generate", "-m", Golden.Path("tiny-sdxl"), "--prompt", "a photo of a cat",
            "--negative-prompt", "", "--steps", "4", "--width", "64", "--height", "64", "--seed", "0", "-o", dir.File("xl.npy"),
            "--lora", lora]);
        Assert.True(code == 0, stderr);
        Assert.Contains($"lora: {lora} (scale 1): ", stdout);
        Assert.Contains("text_encoder_2 layers", stdout);
        CheckAllWithin(dir.File("xl.npy"), "pipeline/lora_b_kohya_scale1/images", "tiny-sdxl-lora-expected.safetensors");
    }

    [Fact]
    public void FuseLoraWithAScaleGivesTheFusedRun()
    {
        using var dir = new TempDir();
        var (code, stdout, stderr) = Generate(dir.File("f.npy"), "--lora", LoraA + ":0.7", "--fuse-lora");
        Assert.True(code == 0, stderr);
        Assert.Contains("lora: fused into 68 layers", stdout);
        CheckAllWithin(dir.File("f.npy"), "pipeline/lora_a_fused0.7/images");
    }

    [Fact]
    public void BadLoraOptionsAreUserErrors()
    {
        using var dir = new TempDir();
        string o = dir.File("o.png");
        var (code, _, stderr) = CliRun.Run("generate", "-m", Golden.Path("tiny-ddpm"), "--lora", LoraA, "-o", o);
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains("DDPMPipeline takes no --lora; LoRAs are for Stable Diffusion models", stderr);
        (code, _, stderr) = Generate(o, "--fuse-lora");
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains("--fuse-lora needs --lora", stderr);
        (code, _, stderr) = Generate(o, "--lora", dir.File("none.safetensors") + ":0.5");
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains($"--lora '{dir.File("none.safetensors")}:0.5': file not found, and not a Hugging Face Hub id (expected a file, a folder, "
                        + "a Hugging Face Hub id org/name or a file in one, org/name/file (either with @revision after the id), each optionally followed by :scale)", stderr);
        (code, _, stderr) = Generate(o, "--lora", LoraA + ":strong");
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains("the scale 'strong' is not a number", stderr);
        string sdxl = Golden.Path("tiny-sdxl-lora", "diffusers", "pytorch_lora_weights.safetensors");
        (code, _, stderr) = Generate(o, "--lora", sdxl);
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains($"--lora {sdxl}: LoRA file {sdxl} does not fit this model (a LoRA for another architecture?)", stderr);
        Assert.False(File.Exists(o));
        Assert.Equal((LoraA, 0.25), LoraOptions.ParseLora(LoraA + ":0.25"));
    }

    [Fact]
    public void AHubFileTakesAScaleAfterTheLastColon()
    {
        // org/name/file:scale is the file at that scale (it was read as a Hub file named 'file.safetensors:0.5', scale 1)
        Assert.Equal(("someone/two-loras/b.safetensors", 0.5), LoraOptions.ParseLora("someone/two-loras/b.safetensors:0.5"));
        Assert.Equal(("someone/two-loras/sub/b.safetensors", 2.0), LoraOptions.ParseLora("someone/two-loras/sub/b.safetensors:2"));
        Assert.Equal(("someone/two-loras", 0.5), LoraOptions.ParseLora("someone/two-loras:0.5"));
        Assert.Equal(("someone/two-loras/b.safetensors", 1.0), LoraOptions.ParseLora("someone/two-loras/b.safetensors"));
        var e = Assert.Throws<UserException>(() => LoraOptions.ParseLora("someone/two-loras/b.safetensors:strong"));
        Assert.Contains("the scale 'strong' is not a number", e.Message);
    }

    [Fact]
    public void ARevisionAfterTheIdIsParsedAndPathsWithAnAtSignStayPaths()
    {
        static (string, string?, string?) Src(string pathOrId, string? weightName, string? revision) => (pathOrId, weightName, revision);
        // org/name@rev[/file][:scale], as huggingface_hub's HfFileSystem paths name a revision (hf://org/name@rev/file)
        Assert.Equal(("someone/two-loras@v1.0", 0.5), LoraOptions.ParseLora("someone/two-loras@v1.0:0.5"));
        Assert.Equal(Src("someone/two-loras", null, "v1.0"), WeightSource.Of("someone/two-loras@v1.0"));
        Assert.Equal(("someone/two-loras@v1.0/sub/b.safetensors", 2.0), LoraOptions.ParseLora("someone/two-loras@v1.0/sub/b.safetensors:2"));
        Assert.Equal(Src("someone/two-loras", "sub/b.safetensors", "v1.0"), WeightSource.Of("someone/two-loras@v1.0/sub/b.safetensors"));
        string sha = "0123456789abcdef0123456789abcdef01234567";
        Assert.Equal(Src("someone/two-loras", null, sha), WeightSource.Of($"someone/two-loras@{sha}"));
        // refs/pr/N and refs/convert/… keep their slashes (SPECIAL_REFS_REVISION_REGEX); other names with '/' are URL-quoted
        Assert.Equal(Src("someone/two-loras", "b.safetensors", "refs/pr/3"), WeightSource.Of("someone/two-loras@refs/pr/3/b.safetensors"));
        Assert.Equal(Src("someone/two-loras", null, "refs/pr/3"), WeightSource.Of("someone/two-loras@refs/pr/3"));
        Assert.Equal(Src("someone/two-loras", null, "feature/x"), WeightSource.Of("someone/two-loras@feature%2Fx"));
        Assert.Equal(("someone/two-loras@feature%2Fx", 0.25), LoraOptions.ParseLora("someone/two-loras@feature%2Fx:0.25"));
        Assert.Equal(("latent-consistency/lcm-lora-sdv1-5@v2", (string?)"<tok>"), ComponentOptions.ParseEmbedding("latent-consistency/lcm-lora-sdv1-5@v2:<tok>"));
        // an '@' after the id is part of the file's name, as before
        Assert.Equal(Src("someone/two-loras", "sub/b@2x.safetensors", null), WeightSource.Of("someone/two-loras/sub/b@2x.safetensors"));
        Assert.Equal(("someone/two-loras/sub/b@2x.safetensors", 0.5), LoraOptions.ParseLora("someone/two-loras/sub/b@2x.safetensors:0.5"));
        Assert.Equal(Src("someone/two-loras", "b@2x.safetensors", "v1"), WeightSource.Of("someone/two-loras@v1/b@2x.safetensors"));
        // no revision, a bad revision or a bad file is no source
        foreach (var bad in new[] { "someone/two-loras@", "someone/two-loras@:0.5", "someone/two-loras@v1/../b.safetensors", "someone/two-loras@v1//b" })
            Assert.Contains("file not found, and not a Hugging Face Hub id", Assert.Throws<UserException>(() => LoraOptions.ParseLora(bad)).Message);

        // an existing path with '@' in it is that path, with or without a suffix
        using var dir = new TempDir();
        string folder = dir.File("v1@2");
        Directory.CreateDirectory(folder);
        string file = Path.Combine(folder, "my@lora.safetensors");
        File.Copy(LoraA, file);
        Assert.Equal((file, 0.5), LoraOptions.ParseLora(file + ":0.5"));
        Assert.Equal((file, 1.0), LoraOptions.ParseLora(file));
        Assert.Equal((folder, 2.0), LoraOptions.ParseLora(folder + ":2"));
        Assert.Equal(Src(file, null, null), WeightSource.Of(file));
        // a Windows path is never an id with a revision (its drive and backslashes are no repo id); here, where it does not
        // exist, it is refused as a missing file
        var windows = Assert.Throws<UserException>(() => LoraOptions.ParseLora(@"C:\loras\style@v2.safetensors:0.5"));
        Assert.StartsWith(@"--lora 'C:\loras\style@v2.safetensors:0.5': file not found, and not a Hugging Face Hub id", windows.Message);
        Assert.Equal(Src(@"C:\loras\style@v2.safetensors", null, null), WeightSource.Of(@"C:\loras\style@v2.safetensors"));
        Assert.Null(WeightSource.SplitSuffix("./loras@v2/x.safetensors"));
    }
}
