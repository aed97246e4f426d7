using DiffusersSharp.Cli;
using DiffusersSharp.Imaging;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Cli;

/// <summary><c>diffusers generate --vae …</c> and <c>--embedding path[:token]</c> against golden README sections I and J.</summary>
public class CliComponentOptionsTests(ITestOutputHelper log)
{
    private static string Model => Golden.Path("tiny-sd");

    private void CheckAllWithin(string npy, string goldenFile, string key)
    {
        using var actual = NpyFile.Read(npy);
        using var expected = Golden.Tensor(goldenFile, key);
        Assert.Equal(expected.shape, actual.shape);
        using var within = ((actual - expected).abs() <= 1.0 / 255).to(ScalarType.Float64).mean();
        log.WriteLine($"{key} via the CLI: max abs error {Tol.MaxAbsDiff(actual, expected):E3}, within 1/255 {within.item<double>():P3}");
        Assert.Equal(1.0, within.item<double>());
    }

    [Fact]
    public void VaeOptionDecodesWithTheTinyVae()
    {
        using var dir = new TempDir();
        var (code, stdout, stderr) = CliRun.Run("generate", "-m", Model, "--prompt", "a photo of a cat", "--negative-prompt", "",
            "--steps", "4", "--width", "64", "--height", "64", "--seed", "0", "--vae", Golden.Path("tiny-taesd"), "-o", dir.File("t.npy"));
        Assert.True(code == 0, stderr);
        Assert.Contains("vae: AutoencoderTiny from", stdout);
        CheckAllWithin(dir.File("t.npy"), "tiny-taesd-expected.safetensors", "pipeline/txt2img_taesd/images");
    }

    [Fact]
    public void EmbeddingOptionsLoadTextualInversion()
    {
        using var dir = new TempDir();
        string ti = Golden.Path("tiny-sd-textual-inversion");
        var (code, stdout, stderr) = CliRun.Run("generate", "-m", Model, "--prompt", "a photo of <cat-toy> in the style of <style3>",
            "--negative-prompt", "", "--steps", "2", "--width", "64", "--height", "64", "--seed", "0",
            "--embedding", Path.Combine(ti, "learned_embeds.safetensors"), "--embedding", Path.Combine(ti, "style3.pt") + ":<style3>",
            "-o", dir.File("ti.npy"));
        Assert.True(code == 0, stderr);
        Assert.Contains("textual inversion: <cat-toy>, <style3>, <style3>_1, <style3>_2", stdout);
        CheckAllWithin(dir.File("ti.npy"), "tiny-sd-textual-inversion-expected.safetensors", "pipeline/ti/images");
    }

    /// <summary>A copy of <paramref name="folder"/> whose safetensors weights hold one more tensor, <c>extra</c> [2].</summary>
    private static string WithExtraTensor(string folder, string copy, string weights)
    {
        foreach (var f in Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories))
        {
            string to = Path.Combine(copy, Path.GetRelativePath(folder, f));
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Copy(f, to);
        }
        string file = Path.Combine(copy, weights);
        Dictionary<string, Tensor> w;
        using (var st = DiffusersSharp.Loading.SafetensorsFile.Open(file)) w = st.LoadAll();
        w["extra"] = torch.zeros(2);
        DiffusersSharp.Loading.SafetensorsFile.Save(file, w);
        return copy;
    }

    [Fact]
    public void WarningsOfTheComponentLoadsGoToTheCliErrorWriter()
    {
        // a tensor the model does not have is a warning of the load (LoadOptions.Log): the --vae and --preview-vae loads and an
        // unconditional pipeline's were given no Log, so it went to Console.Error, past the CLI's error writer
        using var dir = new TempDir();
        string vae = WithExtraTensor(Golden.Path("tiny-taesd"), dir.File("taesd"), "diffusion_pytorch_model.safetensors");
        var (code, _, stderr) = CliRun.Run("generate", "-m", Model, "--prompt", "a cat", "--steps", "1", "--width", "32", "--height", "32",
            "--vae", vae, "--preview-every", "1", "--preview-vae", vae, "-o", dir.File("o.png"));
        Assert.True(code == 0, stderr);
        string warning = $"warning: {Path.Combine(vae, "diffusion_pytorch_model.safetensors")}: 1 weight(s) of the file are not in AutoencoderTiny and were not loaded: extra [2]";
        Assert.Equal(2, stderr.Split('\n').Count(l => l.TrimEnd() == warning)); // --vae, then --preview-vae

        string ddpm = WithExtraTensor(Golden.Path("tiny-ddpm"), dir.File("ddpm"), Path.Combine("unet", "diffusion_pytorch_model.safetensors"));
        (code, _, stderr) = CliRun.Run("generate", "-m", ddpm, "--steps", "1", "-o", dir.File("d.png"));
        Assert.True(code == 0, stderr);
        Assert.Contains($"warning: {Path.Combine(ddpm, "unet", "diffusion_pytorch_model.safetensors")}: 1 weight(s) of the file are not in UNet2DModel and were not loaded: extra [2]", stderr);
    }

    [Fact]
    public void BadComponentOptionsAreUserErrors()
    {
        using var dir = new TempDir();
        var (code, _, stderr) = CliRun.Run("generate", "-m", Model, "--prompt", "x", "--embedding", dir.File("none.pt") + ":<t>", "-o", dir.File("o.png"));
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains($"--embedding '{dir.File("none.pt")}:<t>': file not found", stderr);
        (code, _, stderr) = CliRun.Run("generate", "-m", Golden.Path("tiny-ddpm"), "--vae", "tiny", "-o", dir.File("o.png"));
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains("DDPMPipeline takes no --vae", stderr);
        string ti = Golden.Path("tiny-sd-textual-inversion", "learned_embeds.safetensors");
        (code, _, stderr) = CliRun.Run("generate", "-m", Model, "--prompt", "x", "--steps", "1", "--embedding", ti, "--embedding", ti, "-o", dir.File("o.png"));
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains("You have passed a list of tokens that contains duplicates: ['<cat-toy>', '<cat-toy>']", stderr);
        Assert.False(File.Exists(dir.File("o.png")));
        Assert.Equal((ti, (string?)"<tok>"), ComponentOptions.ParseEmbedding(ti + ":<tok>"));
        Assert.Equal((ti, (string?)null), ComponentOptions.ParseEmbedding(ti));
    }

    [Fact]
    public void VaeLoaderPicksTheClassFromTheConfig()
    {
        using (var tiny = VaeLoader.FromPretrained(Golden.Path("tiny-taesd"))) Assert.IsType<AutoencoderTiny>(tiny);
        using (var kl = VaeLoader.FromPretrained(Model)) Assert.IsType<AutoencoderKL>(kl); // a pipeline folder: its vae/
        using var dir = new TempDir();
        File.WriteAllText(dir.File("config.json"), """{"_class_name": "VQModel"}""");
        var e = Assert.Throws<ConfigException>(() => VaeLoader.FromPretrained(dir.Path));
        Assert.Equal("_class_name", e.Key);
        Assert.Contains("'VQModel', not a VAE class DiffusersSharp knows (AutoencoderKL, AutoencoderTiny)", e.Message);
    }

    [Fact]
    public void AHubFileTakesATokenAfterTheLastColon()
    {
        // org/name/file:token is the file with that token (it was read as a Hub file named 'learned_embeds.bin:<tok>')
        Assert.Equal(("sd-concepts-library/cat-toy/learned_embeds.bin", (string?)"<tok>"),
                     ComponentOptions.ParseEmbedding("sd-concepts-library/cat-toy/learned_embeds.bin:<tok>"));
        Assert.Equal(("sd-concepts-library/cat-toy", (string?)"<tok>"), ComponentOptions.ParseEmbedding("sd-concepts-library/cat-toy:<tok>"));
        Assert.Equal(("sd-concepts-library/cat-toy/learned_embeds.bin", (string?)null),
                     ComponentOptions.ParseEmbedding("sd-concepts-library/cat-toy/learned_embeds.bin"));
    }
}
