using DiffusersSharp.Cli;
using DiffusersSharp.Imaging;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Support;

namespace DiffusersSharp.Tests.Cli;

/// <summary>
/// <c>diffusers generate --freeu S1,S2,B1,B2</c>: the pipeline's <c>EnableFreeU</c> with those factors (the image the
/// library gives), diffusers' reading of a zero factor (FreeU off), and malformed values refused before anything loads.
/// SDXL's effect is in CliStableDiffusionXLTests, the other Stable Diffusion kinds' in CliOptionMatrixTests.
/// </summary>
public class CliFreeUTests
{
    private static string Sd => Golden.Path("tiny-sd");

    private static float[] Generate(TempDir dir, string name, params string[] extra)
    {
        var (code, _, stderr) = CliRun.Run([.. new[] { "generate", "-m", Sd, "--prompt", "a cat", "--steps", "2", "--width", "32",
            "--height", "32", "--seed", "0", "-o", dir.File(name) }, .. extra]);
        Assert.True(code == 0, stderr);
        using var t = NpyFile.Read(dir.File(name));
        return t.data<float>().ToArray();
    }

    [Fact]
    public void FreeUGivesTheImageOfThePipelinesEnableFreeU()
    {
        using var dir = new TempDir();
        var cli = Generate(dir, "f.npy", "--freeu", "0.9,0.2,1.2,1.4");
        using var pipe = StableDiffusionPipeline.FromPretrained(Sd);
        pipe.EnableFreeU(0.9, 0.2, 1.2, 1.4);
        using var lib = pipe.Generate("a cat", numInferenceSteps: 2, height: 32, width: 32, seed: 0, outputType: OutputType.Np);
        Assert.Equal(lib.Array!.data<float>().ToArray(), cli);
        Assert.NotEqual(Generate(dir, "plain.npy"), cli);
    }

    [Fact]
    public void AZeroFactorLeavesFreeUOffAsInDiffusers()
    {
        using var dir = new TempDir();
        Assert.Equal(Generate(dir, "plain.npy"), Generate(dir, "zero.npy", "--freeu", " 0.9, 0.2, 1.2, 0"));
    }

    [Fact]
    public void FreeUReachesTheControlNetPipelinesOfStableDiffusionAndSdxl()
    {
        using var dir = new TempDir();
        string sdxlNet = dir.File("sdxl-controlnet");
        using (var unet = UNet2DConditionModel.FromPretrained(Golden.Path("tiny-sdxl"), "unet"))
        using (var cn = ControlNetModel.FromUnet(unet, conditioningEmbeddingOutChannels: [16, 32]))
            cn.SavePretrained(sdxlNet);
        foreach (var (model, net, freeU) in new[]
                 {
                     (Sd, Golden.Path("tiny-sd-controlnet"), "0.9,0.2,1.2,1.4"),
                     (Golden.Path("tiny-sdxl"), sdxlNet, "0.6,0.4,1.1,1.2"),
                 })
        {
            string[] run = ["generate", "-m", model, "--prompt", "a cat", "--steps", "2", "--width", "32", "--height", "32", "--seed", "0",
                "--controlnet", net, "--control-image", Golden.Path("controlnet-edges.png")];
            var (code, stdout, stderr) = CliRun.Run([.. run, "-o", dir.File("plain.npy")]);
            Assert.True(code == 0, stderr);
            Assert.Contains("ControlNet(s)", stdout);
            (code, _, stderr) = CliRun.Run([.. run, "--freeu", freeU, "-o", dir.File("freeu.npy")]);
            Assert.True(code == 0, stderr);
            using var plain = NpyFile.Read(dir.File("plain.npy"));
            using var withFreeU = NpyFile.Read(dir.File("freeu.npy"));
            Assert.True(Tol.MaxAbsDiff(withFreeU, plain) > 1e-3, $"--freeu left {model}'s ControlNet image unchanged");
        }
    }

    [Theory]
    [InlineData("0.9,0.2,1.2", "--freeu '0.9,0.2,1.2': expected four numbers S1,S2,B1,B2 separated by commas (e.g. 0.9,0.2,1.2,1.4), got 3 values")]
    [InlineData("1.1", "--freeu '1.1': expected four numbers S1,S2,B1,B2 separated by commas (e.g. 0.9,0.2,1.2,1.4), got 1 value")]
    [InlineData("0.9,0.2,1.2,1.4,1", "--freeu '0.9,0.2,1.2,1.4,1': expected four numbers S1,S2,B1,B2 separated by commas (e.g. 0.9,0.2,1.2,1.4), got 5 values")]
    [InlineData("0.9,0.2,x,1.4", "--freeu '0.9,0.2,x,1.4': B1 'x' is not a finite number")]
    [InlineData("0.9,,1.2,1.4", "--freeu '0.9,,1.2,1.4': S2 '' is not a finite number")]
    [InlineData("0.9,0.2,1.2,NaN", "--freeu '0.9,0.2,1.2,NaN': B2 'NaN' is not a finite number")]
    [InlineData("Infinity,0.2,1.2,1.4", "--freeu 'Infinity,0.2,1.2,1.4': S1 'Infinity' is not a finite number")]
    [InlineData("0,9;0,2;1,2;1,4", "--freeu '0,9;0,2;1,2;1,4': expected four numbers S1,S2,B1,B2 separated by commas (e.g. 0.9,0.2,1.2,1.4), got 5 values")]
    public void MalformedFactorsAreRefusedQuotingThem(string value, string message)
    {
        using var dir = new TempDir();
        var (code, _, stderr) = CliRun.Run("generate", "-m", Sd, "--prompt", "a cat", "--freeu", value, "-o", dir.File("o.png"));
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains(message, stderr);
        Assert.DoesNotContain("   at ", stderr);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }
}
