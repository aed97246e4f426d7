using DiffusersSharp.Cli;
using DiffusersSharp.Imaging;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Support;
using Xunit.Abstractions;

namespace DiffusersSharp.Tests.Cli;

/// <summary><c>diffusers generate --controlnet</c> on an SDXL base folder (tiny-sdxl with a ControlNet made from its UNet).</summary>
public class CliStableDiffusionXLControlNetTests(ITestOutputHelper log)
{
    /// <summary>A ControlNet made from tiny-sdxl's UNet, saved under <paramref name="dir"/>; its folder.</summary>
    private static string SaveNet(TempDir dir)
    {
        string net = dir.File("controlnet");
        using (var unet = UNet2DConditionModel.FromPretrained(Golden.Path("tiny-sdxl"), "unet"))
        using (var cn = ControlNetModel.FromUnet(unet, conditioningEmbeddingOutChannels: [16, 32]))
            cn.SavePretrained(net);
        return net;
    }

    [Fact]
    public void AnSdxlFolderRunsTheSdxlControlNetPipeline()
    {
        using var dir = new TempDir();
        string net = SaveNet(dir);
        string control = Golden.Path("controlnet-edges.png");
        string output = dir.File("o.npy");
        // the zero convolutions of a fresh ControlNet add nothing: the image is diffusers' txt2img_default
        var (code, stdout, stderr) = CliRun.Run("generate", "-m", Golden.Path("tiny-sdxl"), "--prompt", "a photo of a cat", "--steps", "4",
            "--width", "64", "--height", "64", "--seed", "0", "--controlnet", net, "--control-image", control, "-o", output);
        Assert.True(code == 0, stderr);
        Assert.Contains("StableDiffusionXLControlNetPipeline · 1 ControlNet(s)", stdout);
        using var actual = NpyFile.Read(output);
        using var expected = Golden.Tensor("tiny-sdxl-expected.safetensors", "pipeline/txt2img_default/images");
        double diff = Tol.MaxAbsDiff(actual, expected);
        log.WriteLine($"txt2img_default via the SDXL ControlNet CLI: max abs error {diff:E3}");
        Assert.True(diff <= 1.0 / 255, $"max abs error {diff:E3}");

        (code, _, stderr) = CliRun.Run("generate", "-m", Golden.Path("tiny-sdxl"), "--prompt", "x", "--controlnet", net,
            "--control-image", control, "--refiner", Golden.Path("tiny-sdxl-refiner"), "-o", output);
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains("--refiner is not available with --controlnet on SDXL models", stderr);
    }

    [Fact]
    public void AnInitImageRunsTheSdxlControlNetImg2ImgPipeline()
    {
        // diffusers' "default" run of tests/golden/sdxl-controlnet-img2img (strength 0.8, scale 0.8, guidance 5), from the prompt
        using var dir = new TempDir();
        string output = dir.File("o.npy");
        var (code, stdout, stderr) = CliRun.Run("generate", "-m", Golden.Path("tiny-sdxl"), "--prompt", "a photo of a cat", "--steps", "5",
            "--seed", "0", "--controlnet", Golden.Path("sdxl-controlnet-img2img", "controlnet"),
            "--control-image", Golden.Path("controlnet-edges.png"), "--init-image", Golden.Path("img2img-init.png"), "-o", output);
        Assert.True(code == 0, stderr);
        Assert.Contains("StableDiffusionXLControlNetImg2ImgPipeline · 1 ControlNet(s)", stdout);
        using var actual = NpyFile.Read(output);
        using var expected = Golden.Tensor("sdxl-controlnet-img2img/sdxl-controlnet-img2img-expected.safetensors", "pipeline/default/image");
        double diff = Tol.MaxAbsDiff(actual, expected);
        log.WriteLine($"sdxl-controlnet-img2img default via the CLI: max abs error {diff:E3}");
        Assert.True(diff <= 1.0 / 255, $"max abs error {diff:E3}");
    }

    [Fact]
    public void AnInitImageAndAMaskRunTheSdxlControlNetInpaintPipeline()
    {
        // diffusers' "default" run of tests/golden/sdxl-controlnet-inpaint (strength 0.9999, scale 1, guidance 5), from the prompt
        using var dir = new TempDir();
        string output = dir.File("o.npy");
        var (code, stdout, stderr) = CliRun.Run("generate", "-m", Golden.Path("tiny-sdxl"), "--prompt", "a photo of a cat", "--steps", "5",
            "--seed", "0", "--controlnet", Golden.Path("sdxl-controlnet-img2img", "controlnet"),
            "--control-image", Golden.Path("controlnet-edges.png"), "--init-image", Golden.Path("img2img-init.png"),
            "--mask", Golden.Path("inpaint-mask.png"), "-o", output);
        Assert.True(code == 0, stderr);
        Assert.Contains("StableDiffusionXLControlNetInpaintPipeline · 1 ControlNet(s)", stdout);
        using var actual = NpyFile.Read(output);
        using var expected = Golden.Tensor("sdxl-controlnet-inpaint/sdxl-controlnet-inpaint-expected.safetensors", "pipeline/default/image");
        double diff = Tol.MaxAbsDiff(actual, expected);
        log.WriteLine($"sdxl-controlnet-inpaint default via the CLI: max abs error {diff:E3}");
        Assert.True(diff <= 1.0 / 255, $"max abs error {diff:E3}");
    }

    [Fact]
    public void PreviewEveryWritesTheTaesdDecodeOfEachStepsLatents()
    {
        // the SDXL ControlNet path did not read --preview-every (ignored, then refused)
        using var dir = new TempDir();
        string net = SaveNet(dir);
        string control = Golden.Path("controlnet-edges.png");
        CliPreviews.AssertEachStepIsPreviewed(dir, ["generate", "-m", Golden.Path("tiny-sdxl"), "--prompt", "a photo of a cat", "--steps", "2",
                "--width", "64", "--height", "64", "--seed", "0", "--controlnet", net, "--control-image", control, "--preview-every", "1",
                "--preview-vae", CliPreviews.Taesd], CliPreviews.Taesd, steps: 2, onStepEnd =>
            {
                using var pipe = StableDiffusionXLControlNetPipeline.FromPretrained(Golden.Path("tiny-sdxl"), ControlNetModel.FromPretrained(net));
                using var _ = pipe.Generate("a photo of a cat", [Image.LoadImage(control)], height: 64, width: 64, numInferenceSteps: 2,
                    guidanceScale: 5.0, seed: 0, outputType: OutputType.Latent, callbackOnStepEnd: onStepEnd);
            });
    }
}
