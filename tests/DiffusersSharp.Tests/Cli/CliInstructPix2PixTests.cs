using DiffusersSharp.Cli;
using DiffusersSharp.Imaging;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Pipelines;
using DiffusersSharp.Tests.Support;

namespace DiffusersSharp.Tests.Cli;

/// <summary>
/// <c>diffusers generate</c> on an InstructPix2Pix folder (tests/golden/tiny-sd-instruct-pix2pix): the pipeline chosen from
/// model_index.json, <c>--init-image</c> the image to edit, <c>--image-guidance-scale</c>; the options it cannot apply refused.
/// </summary>
public class CliInstructPix2PixTests
{
    private static string Model => Golden.Path("tiny-sd-instruct-pix2pix");
    private static string Init => Golden.Path("img2img-init.png");

    private static (int Code, string Stdout, string Stderr) Generate(TempDir dir, string name, params string[] extra) =>
        CliRun.Run([.. new[] { "generate", "-m", Model, "--prompt", "make it snowy", "--init-image", Init, "--steps", "2",
            "--seed", "0", "-o", dir.File(name) }, .. extra]);

    [Fact]
    public void GenerateEditsTheImageAsThePipelineDoesWithTheImageGuidanceScaleGiven()
    {
        using var dir = new TempDir();
        var (code, stdout, stderr) = Generate(dir, "e.npy", "--image-guidance-scale", "2.5", "--guidance", "5", "--batch", "2");
        Assert.True(code == 0, stderr);
        Assert.Contains("StableDiffusionInstructPix2PixPipeline · EulerAncestralDiscreteScheduler · 2 steps · batch 2 · guidance 5 · image guidance 2.5", stdout);
        using var cli = NpyFile.Read(dir.File("e.npy"));
        using var pipe = StableDiffusionInstructPix2PixPipeline.FromPretrained(Model);
        using var lib = pipe.Generate("make it snowy", Image.Load(Init), numInferenceSteps: 2, guidanceScale: 5, imageGuidanceScale: 2.5,
            numImagesPerPrompt: 2, seed: 0, outputType: OutputType.Np);
        Assert.Equal(new long[] { 2, 64, 64, 3 }, cli.shape);
        Assert.Equal(lib.Array!.data<float>().ToArray(), cli.data<float>().ToArray());
        using var defaults = pipe.Generate("make it snowy", Image.Load(Init), numInferenceSteps: 2, guidanceScale: 5, numImagesPerPrompt: 2,
            seed: 0, outputType: OutputType.Np);
        Assert.NotEqual(defaults.Array!.data<float>().ToArray(), cli.data<float>().ToArray());
    }

    [Theory]
    [InlineData("tiny-sd", "--prompt a --init-image INIT --image-guidance-scale 2",
        "--image-guidance-scale applies to InstructPix2Pix models (StableDiffusionInstructPix2PixPipeline); ")]
    [InlineData("tiny-ddpm", "--image-guidance-scale 2", "--image-guidance-scale applies to InstructPix2Pix models (StableDiffusionInstructPix2PixPipeline); ")]
    [InlineData("tiny-sd-instruct-pix2pix", "--prompt a", "is an InstructPix2Pix model (StableDiffusionInstructPix2PixPipeline): give the image to edit with --init-image")]
    [InlineData("tiny-sd-instruct-pix2pix", "--init-image INIT", "StableDiffusionInstructPix2PixPipeline needs --prompt (the edit instruction)")]
    [InlineData("tiny-sd-instruct-pix2pix", "--prompt a --init-image INIT --strength 0.5",
        "StableDiffusionInstructPix2PixPipeline takes no --strength (diffusers 0.25.1's StableDiffusionInstructPix2PixPipeline has no such argument")]
    [InlineData("tiny-sd-instruct-pix2pix", "--prompt a --init-image INIT --clip-skip 1", "StableDiffusionInstructPix2PixPipeline takes no --clip-skip")]
    [InlineData("tiny-sd-instruct-pix2pix", "--prompt a --init-image INIT --image-guidance-scale -1", "--image-guidance-scale must be a number between 0 and 1000, got -1")]
    public void OptionsThePipelineCannotApplyAreRefused(string model, string options, string message)
    {
        using var dir = new TempDir();
        var args = options.Split(' ').Select(a => a == "INIT" ? Init : a);
        var (code, _, stderr) = CliRun.Run([.. new[] { "generate", "-m", Golden.Path(model), "--steps", "1", "-o", dir.File("o.png") }, .. args]);
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains(message, stderr);
        Assert.DoesNotContain("   at ", stderr);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    /// <summary>
    /// An SDXL InstructPix2Pix folder: the library runs it (StableDiffusionXLInstructPix2PixPipelineTests), 'generate' has no
    /// route for it yet and says so, instead of refusing --prompt as if the folder were an unconditional model.
    /// </summary>
    [Fact]
    public void AnSdxlInstructPix2PixFolderIsNamedAsNotRunByGenerateYet()
    {
        using var model = StableDiffusionXLInstructPix2PixPipelineTests.Folder();
        using var dir = new TempDir();
        var (code, _, stderr) = CliRun.Run(["generate", "-m", model.Path, "--prompt", "make it snowy", "--init-image", Init, "--steps", "1",
            "-o", dir.File("o.png")]);
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains("'generate' does not run StableDiffusionXLInstructPix2PixPipeline folders yet; the library loads and runs them " +
            "(StableDiffusionXLInstructPix2PixPipeline.FromPretrained, DiffusionPipeline.FromPretrained)", stderr);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }
}
