using DiffusersSharp.Cli;
using DiffusersSharp.Imaging;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Support;
using Image = DiffusersSharp.Imaging.Image;

namespace DiffusersSharp.Tests.Cli;

/// <summary>The `diffusers` command line, run in-process on tests/golden/tiny-ddpm.</summary>
public class CliTests
{
    private static string Model => Golden.Path("tiny-ddpm");

    private static (int code, string stdout, string stderr) Run(params string[] args) => CliRun.Run(args);

    [Fact]
    public void GenerateWritesAPngOfTheModelSize()
    {
        using var dir = new TempDir();
        var (code, stdout, stderr) = Run("generate", "--model", Model, "--steps", "2", "--seed", "0", "--output", dir.File("out.png"));
        Assert.True(code == 0, stderr);
        Assert.Contains("step 1/2  t=500", stdout);
        Assert.Contains("step 2/2  t=0", stdout);
        var img = Image.Load(dir.File("out.png"));
        Assert.Equal((32, 32, 3), (img.Width, img.Height, img.Channels));
        Assert.Equal([dir.File("out.png")], Directory.GetFiles(dir.Path));
        // the same pixels as the library call
        using var pipe = DDPMPipeline.FromPretrained(Model);
        using var expected = pipe.Generate(numInferenceSteps: 2, seed: 0);
        Assert.Equal(expected.Images[0].Pixels, img.Pixels);
    }

    [Fact]
    public void NpyOutputEqualsThePipelinesNpOutput()
    {
        using var dir = new TempDir();
        var (code, _, stderr) = Run("generate", "-m", Model, "-n", "2", "-s", "0", "-b", "2", "-o", dir.File("x.npy"));
        Assert.True(code == 0, stderr);
        using var written = NpyFile.Read(dir.File("x.npy"));
        using var pipe = DDPMPipeline.FromPretrained(Model);
        using var expected = pipe.Generate(batchSize: 2, numInferenceSteps: 2, seed: 0, outputType: OutputType.Np);
        Assert.Equal(new long[] { 2, 32, 32, 3 }, written.shape);
        Assert.Equal(0.0, Tol.MaxAbsDiff(written, expected.Array!));
    }

    [Fact]
    public void BatchPngIsAGrid()
    {
        using var dir = new TempDir();
        var (code, _, stderr) = Run("generate", "-m", Model, "-n", "1", "-s", "3", "-b", "3", "-o", dir.File("g.png"));
        Assert.True(code == 0, stderr);
        var grid = Image.Load(dir.File("g.png"));
        Assert.Equal((64, 64), (grid.Width, grid.Height)); // 2 x 2 cells of 32, the fourth empty
    }

    [Fact]
    public void DdimSchedulerWithEtaAndConfigOverrides()
    {
        using var dir = new TempDir();
        var (code, stdout, stderr) = Run("generate", "-m", Model, "-n", "3", "-s", "0", "--scheduler", "ddim", "--eta", "0.5",
            "--scheduler-config", "timestep_spacing=trailing", "--scheduler-config", "clip_sample_range=inf", "-o", dir.File("d.npy"));
        Assert.True(code == 0, stderr);
        Assert.Contains("DDIMPipeline · DDIMScheduler · 3 steps", stdout);
        Assert.Contains("step 1/3  t=999", stdout); // trailing spacing: 999, 666, 333
        using var x = NpyFile.Read(dir.File("d.npy"));
        Assert.Equal(new long[] { 1, 32, 32, 3 }, x.shape);
    }

    [Fact]
    public void VariantAndDtypeReachTheModel()
    {
        using var folder = Pipelines.PipelineLoadOptionsTests.FolderOf(DDPMPipeline.Name); // weights only as *.fp16.*
        using var dir = new TempDir();
        var (bare, _, bareErr) = Run("generate", "-m", folder.Path, "-n", "1", "-o", dir.File("a.png"));
        Assert.Equal(1, bare);
        Assert.StartsWith($"error: No weights found in {Path.Combine(folder.Path, "unet")}", bareErr);
        var (code, stdout, stderr) = Run("generate", "-m", folder.Path, "-n", "1", "--variant", "fp16", "--dtype", "bf16", "-o", dir.File("b.png"));
        Assert.True(code == 0, stderr);
        Assert.Contains("DDPMPipeline · DDPMScheduler · 1 steps · batch 1 · seed random · BFloat16", stdout);
    }

    [Theory]
    [InlineData("--scheduler-config", "no_such_key=1", "error: --scheduler-config: unknown key 'no_such_key' for DDPMScheduler; its keys: ")]
    [InlineData("--scheduler-config", "nokeyvalue", "error: --scheduler-config 'nokeyvalue': expected key=value, e.g. timestep_spacing=trailing")]
    [InlineData("--scheduler", "warp-drive", "error: --scheduler: unknown scheduler 'warp-drive'; use a class (")]
    [InlineData("--eta", "0.3", "error: --eta applies to DDIMScheduler only; the scheduler is DDPMScheduler (add --scheduler ddim)")]
    [InlineData("--steps", "0", "error: --steps must be at least 1, got 0")]
    [InlineData("--batch", "0", "error: --batch must be at least 1, got 0")]
    [InlineData("--steps", "1001", "error: DDPMPipeline: num_inference_steps must be between 1 and num_train_timesteps = 1000 of the DDPMScheduler, got 1001")]
    public void BadOptionsGiveAClearMessageAndExitCode1(string option, string value, string expectedStart)
    {
        using var dir = new TempDir();
        var (code, _, stderr) = Run("generate", "-m", Model, option, value, "-o", dir.File("out.png"));
        Assert.Equal(1, code);
        Assert.StartsWith(expectedStart, stderr);
        Assert.DoesNotContain("   at ", stderr); // no stack trace
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path)); // nothing written
    }

    [Fact]
    public void IllTypedSchedulerConfigValueNamesTheKey()
    {
        using var dir = new TempDir();
        var (code, _, stderr) = Run("generate", "-m", Model, "--scheduler-config", "num_train_timesteps=lots", "-o", dir.File("o.png"));
        Assert.Equal(1, code);
        Assert.Equal("error: --scheduler-config num_train_timesteps=lots: DDPMScheduler expects an integer for 'num_train_timesteps'", stderr.TrimEnd());
        var (code2, _, stderr2) = Run("generate", "-m", Model, "--scheduler-config", "clip_sample=maybe", "-o", dir.File("o.png"));
        Assert.Equal(1, code2);
        Assert.Equal("error: --scheduler-config clip_sample=maybe: DDPMScheduler expects true or false for 'clip_sample'", stderr2.TrimEnd());
        var (code3, _, stderr3) = Run("generate", "-m", Model, "--scheduler", "ddim", "--scheduler-config", "beta_end=big", "-o", dir.File("o.png"));
        Assert.Equal(1, code3);
        Assert.Equal("error: --scheduler-config beta_end=big: DDIMScheduler expects a number (or \"inf\", \"-inf\", \"nan\") for 'beta_end'", stderr3.TrimEnd());
        // a well-typed value the scheduler refuses keeps the scheduler's own message
        var (code4, _, stderr4) = Run("generate", "-m", Model, "--scheduler-config", "beta_schedule=cosine", "-o", dir.File("o.png"));
        Assert.Equal(1, code4);
        Assert.StartsWith("error: --scheduler-config (DDPMScheduler): DDPMScheduler: ", stderr4);
        Assert.Contains("\"cosine\"", stderr4);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public void UnwritableOutputFailsBeforeAnyWork()
    {
        using var dir = new TempDir();
        string missing = Path.Combine(dir.Path, "no-such-dir", "out.png");
        var (code, stdout, stderr) = Run("generate", "-m", Model, "-n", "2", "-o", missing);
        Assert.Equal(1, code);
        Assert.StartsWith($"error: --output: Cannot write '{missing}': the folder '{Path.GetDirectoryName(missing)}' does not exist", stderr);
        Assert.DoesNotContain("step 1/", stdout); // failed before loading or running
        var (code2, _, stderr2) = Run("generate", "-m", Model, "-n", "2", "-o", dir.Path + "/");
        Assert.Equal(1, code2);
        Assert.StartsWith("error: --output", stderr2);
        var (code3, _, stderr3) = Run("generate", "-m", Model, "-n", "2", "-o", dir.File("out.gif"));
        Assert.Equal(1, code3);
        Assert.Equal($"error: --output '{dir.File("out.gif")}': unknown extension '.gif'; use .png, .jpg, .jpeg, .webp or .npy", stderr3.TrimEnd());
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public void ExistingOutputIsReplacedOnlyOnSuccess()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("keep.png"), "previous");
        var (code, _, _) = Run("generate", "-m", Model, "--steps", "5000", "-o", dir.File("keep.png"));
        Assert.Equal(1, code);
        Assert.Equal("previous", File.ReadAllText(dir.File("keep.png")));
        Assert.Single(Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public void MissingModelFolderIsAUserError()
    {
        using var dir = new TempDir();
        string missing = Path.Combine(dir.Path, "no-such-model");
        var (code, _, stderr) = Run("generate", "-m", missing, "-o", dir.File("never.png"));
        Assert.Equal(1, code);
        Assert.StartsWith($"error: '{missing}' is neither an existing folder nor a valid Hugging Face Hub id", stderr);
        Assert.DoesNotContain("   at ", stderr);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public void InfoListsComponentsParametersDtypesAndConfigs()
    {
        var (code, stdout, stderr) = Run("info", Model);
        Assert.True(code == 0, stderr);
        Assert.StartsWith("DDPMPipeline", stdout);
        Assert.Contains("unet: UNet2DModel (diffusers)", stdout);
        Assert.Contains("scheduler: DDPMScheduler (diffusers)", stdout);
        using var unet = UNet2DModel.FromPretrained(Model, subfolder: "unet");
        long n = unet.NumParameters();
        Assert.Contains($"{n:N0} parameters", stdout, StringComparison.Ordinal);
        Assert.Contains("dtypes F32", stdout);
        Assert.Contains("    block_out_channels: [", stdout);
        Assert.Contains("    beta_schedule: \"linear\"", stdout);
    }

    [Fact]
    public void InfoDescribesAModelFolder()
    {
        // a folder with config.json (no model_index.json): what the single-file error offers ("a model or pipeline folder")
        string unetFolder = Golden.Path("tiny-sd", "unet");
        var (code, stdout, stderr) = Run("info", unetFolder);
        Assert.True(code == 0, stderr);
        var lines = stdout.Replace("\r\n", "\n").Split('\n');
        Assert.Equal($"UNet2DConditionModel  ({Path.GetFullPath(unetFolder)})", lines[0]);
        using var unet = UNet2DConditionModel.FromPretrained(unetFolder);
        Assert.Equal($"  weights: diffusion_pytorch_model.safetensors: {unet.state_dict().Count} tensors, {unet.NumParameters():N0} parameters", lines[1][..lines[1].IndexOf(" (", StringComparison.Ordinal)]);
        Assert.Equal("  config.json:", lines[2]);
        Assert.Equal("    _class_name: \"UNet2DConditionModel\"", lines[3]);
    }

    [Fact]
    public void InfoCountsParametersOfAPickleOnlyModel()
    {
        using var dir = new TempDir();
        foreach (var f in Directory.GetFiles(Model, "*", SearchOption.AllDirectories))
        {
            if (f.EndsWith(".safetensors", StringComparison.Ordinal)) continue;
            string dst = Path.Combine(dir.Path, Path.GetRelativePath(Model, f));
            Directory.CreateDirectory(Path.GetDirectoryName(dst)!);
            File.Copy(f, dst);
        }
        var (code, stdout, stderr) = Run("info", dir.Path);
        Assert.True(code == 0, stderr);
        using var unet = UNet2DModel.FromPretrained(Model, subfolder: "unet");
        Assert.Contains($"  weights: diffusion_pytorch_model.bin: {unet.state_dict().Count} tensors, {unet.NumParameters():N0} parameters", stdout);
    }

    [Theory]
    [InlineData(new[] { "dataset", "cats", "--count", "abc", "--out", "x" }, "error: --count: 'abc' is not an integer (up to 2147483647) (see 'diffusers dataset cats --help')")]
    [InlineData(new[] { "cache", "list", "extra" }, "error: Unrecognized command or argument 'extra'. (see 'diffusers cache list --help')")]
    [InlineData(new[] { "generate", "--steps", "abc" }, "error: --steps: 'abc' is not an integer (up to 2147483647) (see 'diffusers generate --help')")]
    [InlineData(new[] { "--nope" }, "error: Required command was not provided. (see 'diffusers --help')")]
    public void ParseErrorsPointAtTheFullCommandsHelp(string[] args, string message)
    {
        var (code, stdout, stderr) = Run(args);
        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        Assert.Equal(message + "\n", stderr.Replace("\r\n", "\n"));
    }

    [Theory]
    [InlineData(true, true, false, false)] // dir=$(diffusers download …): stdout redirected, stderr a terminal: live bars
    [InlineData(false, true, true, true)] // diffusers download … 2> log: plain lines, no escape codes in the log
    [InlineData(true, true, true, true)]
    [InlineData(false, true, false, false)]
    [InlineData(true, false, false, true)] // an in-process writer: as the caller asks
    [InlineData(false, false, true, false)]
    public void DownloadProgressIsPlainWhenStderrIsRedirected(bool plainProgress, bool stderrIsConsole, bool stderrRedirected, bool plain)
    {
        Assert.Equal(plain, DownloadProgressDisplay.UsesPlainLines(plainProgress, stderrIsConsole, stderrRedirected));
    }

    [Fact]
    public void SchedulersListsClassesAliasesAndKeys()
    {
        var (code, stdout, stderr) = Run("schedulers");
        Assert.True(code == 0, stderr);
        Assert.Contains("DDPMScheduler  (aliases: ddpm)", stdout);
        Assert.Contains("DDIMScheduler  (aliases: ddim)", stdout);
        Assert.Contains("  beta_start = 0.0001", stdout);
        Assert.Contains("  timestep_spacing = \"leading\"", stdout);
    }

    [Fact]
    public void SchedulersListsTheIpndmInverseAndConsistencyModelClassesWithDiffusersDefaults()
    {
        var (code, stdout, stderr) = Run("schedulers");
        Assert.True(code == 0, stderr);
        string n = Environment.NewLine;
        Assert.Contains($"IPNDMScheduler{n}  num_train_timesteps = 1000{n}  trained_betas = null{n}", stdout);
        Assert.Contains($"DDIMInverseScheduler{n}  num_train_timesteps = 1000{n}", stdout);
        Assert.Contains($"DPMSolverMultistepInverseScheduler{n}  num_train_timesteps = 1000{n}", stdout);
        Assert.Contains($"CMStochasticIterativeScheduler{n}  num_train_timesteps = 40{n}  sigma_min = 0.002{n}  sigma_max = 80.0{n}  sigma_data = 0.5{n}" +
                        $"  s_noise = 1.0{n}  rho = 7.0{n}  clip_denoised = true{n}", stdout);
    }

    [Fact]
    public void UnknownCommandOrOptionIsAUserError()
    {
        var (code, _, stderr) = Run("generate", "--model", Model, "--frobnicate");
        Assert.Equal(1, code);
        Assert.Contains("--frobnicate", stderr);
    }
}
