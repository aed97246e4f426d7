using DiffusersSharp.Cli;
using DiffusersSharp.Imaging;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Cli;

/// <summary><c>diffusers generate</c> on Stable Diffusion XL folders (tiny-sdxl, tiny-sdxl-refiner).</summary>
public class CliStableDiffusionXLTests(ITestOutputHelper log)
{
    private static string Base => Golden.Path("tiny-sdxl");
    private static string Refiner => Golden.Path("tiny-sdxl-refiner");

    private static (int code, string stdout, string stderr) Run(params string[] args) => CliRun.Run(args);

    /// <summary>Runs a 1-step 32x32 txt2img on tiny-sdxl with <paramref name="extra"/> options; returns the .npy output.</summary>
    private static Tensor Small(TempDir dir, string name, params string[] extra)
    {
        var (code, _, stderr) = Run([.. new[] { "generate", "-m", Base, "--prompt", "a photo of a cat", "--steps", "1", "--width", "32",
            "--height", "32", "--seed", "0", "-o", dir.File(name) }, .. extra]);
        Assert.True(code == 0, stderr);
        return NpyFile.Read(dir.File(name));
    }

    [Fact]
    public void Txt2ImgNpyMatchesDiffusers()
    {
        using var dir = new TempDir();
        var (code, stdout, stderr) = Run("generate", "-m", Base, "--prompt", "a photo of a cat", "--guidance", "5", "--steps", "4",
            "--width", "64", "--height", "64", "--seed", "0", "-o", dir.File("t.npy"));
        Assert.True(code == 0, stderr);
        Assert.Contains("StableDiffusionXLPipeline · EulerDiscreteScheduler · 4 steps", stdout);
        using var actual = NpyFile.Read(dir.File("t.npy"));
        using var expected = Golden.Tensor("tiny-sdxl-expected.safetensors", "pipeline/txt2img_default/images");
        double err = Tol.MaxAbsDiff(actual, expected);
        log.WriteLine($"txt2img_default via the CLI: max abs error {err:E3}");
        Assert.True(err <= 1.0 / 255, $"max abs error {err:E3}");
    }

    [Fact]
    public void PromptTwoAndMicroConditioningChangeTheImage()
    {
        using var dir = new TempDir();
        using var plain = Small(dir, "a.npy");
        using var again = Small(dir, "b.npy");
        Assert.Equal(0.0, Tol.MaxAbsDiff(plain, again));
        foreach (var (name, extra) in new[]
                 {
                     ("p2.npy", new[] { "--prompt-2", "studio lighting" }),
                     ("n2.npy", new[] { "--negative-prompt", "blurry", "--negative-prompt-2", "low quality" }),
                     ("os.npy", new[] { "--original-size", "128,96" }),
                     ("cr.npy", new[] { "--crop", "16,8" }),
                     ("ts.npy", new[] { "--target-size", "32,48" }),
                     ("fu.npy", new[] { "--freeu", "0.6,0.4,1.1,1.2" }),
                 })
        {
            using var changed = Small(dir, name, extra);
            double diff = Tol.MaxAbsDiff(changed, plain);
            log.WriteLine($"{string.Join(" ", extra)}: max abs change {diff:E3}");
            Assert.True(diff > 1e-4, $"{extra[0]} did not change the image");
        }
    }

    [Fact]
    public void BaseWithRefinerRunsBothAndDiffersFromTheBaseAlone()
    {
        using var dir = new TempDir();
        var (code0, _, stderr0) = Run("generate", "-m", Base, "--prompt", "a photo of a cat", "--steps", "2", "--width", "32",
            "--height", "32", "--seed", "0", "-o", dir.File("alone.npy"));
        Assert.True(code0 == 0, stderr0);
        using var alone = NpyFile.Read(dir.File("alone.npy"));
        var (code, stdout, stderr) = Run("generate", "-m", Base, "--prompt", "a photo of a cat", "--steps", "2", "--width", "32",
            "--height", "32", "--seed", "0", "--refiner", Refiner, "--high-noise-frac", "0.5", "-o", dir.File("r.npy"));
        Assert.True(code == 0, stderr);
        Assert.Contains("refiner: StableDiffusionXLImg2ImgPipeline", stdout);
        Assert.Contains("step 1/1", stdout);
        using var refined = NpyFile.Read(dir.File("r.npy"));
        Assert.Equal(alone.shape, refined.shape);
        Assert.True(Tol.MaxAbsDiff(refined, alone) > 1e-4);
    }

    [Fact]
    public void RefinerFolderRunsImg2ImgWithAnInitImage()
    {
        using var dir = new TempDir();
        var (code, stdout, stderr) = Run("generate", "-m", Refiner, "--prompt", "a photo of a cat", "--init-image",
            Golden.Path("img2img-init.png"), "--steps", "4", "--strength", "0.5", "--seed", "0", "-o", dir.File("i.png"));
        Assert.True(code == 0, stderr);
        Assert.Contains("StableDiffusionXLImg2ImgPipeline", stdout);
        Assert.True(File.Exists(dir.File("i.png")));
    }

    [Fact]
    public void GuidanceRescaleReachesSdxlImageToImageAsInTheLibrary()
    {
        // diffusers' SDXL img2img and inpaint pipelines take guidance_rescale (SD 1.x/2.x's do not, and are refused)
        using var dir = new TempDir();
        var (code, _, stderr) = Run("generate", "-m", Refiner, "--prompt", "a photo of a cat", "--init-image", Golden.Path("img2img-init.png"),
            "--steps", "4", "--strength", "0.5", "--guidance-rescale", "0.7", "--seed", "0", "-o", dir.File("r.npy"));
        Assert.True(code == 0, stderr);
        using var cli = NpyFile.Read(dir.File("r.npy"));
        using var pipe = DiffusersSharp.Pipelines.StableDiffusionXLImg2ImgPipeline.FromPretrained(Refiner);
        var init = Image.Load(Golden.Path("img2img-init.png"));
        using var rescaled = pipe.Generate("a photo of a cat", init, strength: 0.5, numInferenceSteps: 4, seed: 0, guidanceRescale: 0.7,
            outputType: DiffusersSharp.Pipelines.OutputType.Np);
        using var plain = pipe.Generate("a photo of a cat", init, strength: 0.5, numInferenceSteps: 4, seed: 0, outputType: DiffusersSharp.Pipelines.OutputType.Np);
        Assert.Equal(0.0, Tol.MaxAbsDiff(cli, rescaled.Array!));
        Assert.True(Tol.MaxAbsDiff(cli, plain.Array!) > 1e-4, "--guidance-rescale did not change the image");
    }

    [Fact]
    public void VaeOptionSwapsTheSdxlVae()
    {
        using var dir = new TempDir();
        var (code, stdout, stderr) = Run("generate", "-m", Base, "--prompt", "a cat", "--vae", Golden.Path("tiny-taesd"), "--steps", "1",
            "--width", "32", "--height", "32", "--seed", "0", "-o", dir.File("v.png"));
        Assert.True(code == 0, stderr);
        Assert.Contains($"vae: AutoencoderTiny from {Golden.Path("tiny-taesd")}", stdout);
        Assert.True(File.Exists(dir.File("v.png")));
    }

    [Fact]
    public void VaeOptionLoadsTheVaeInTheUNetsDtypeAsOnStableDiffusion()
    {
        // the folder's own VAE given as --vae: in the UNet's bf16, as the pipeline's own VAE and SD's --vae, so the image is
        // the one without --vae (a bf16 VAE with force_upcast decodes in bf16: diffusers' needs_upcasting is fp16 only)
        using var dir = new TempDir();
        string vae = Golden.Path("tiny-sdxl", "vae");
        var (code, stdout, stderr) = Run("generate", "-m", Base, "--prompt", "a photo of a cat", "--vae", vae, "--dtype", "bf16", "--steps", "1",
            "--width", "32", "--height", "32", "--seed", "0", "-o", dir.File("swapped.npy"));
        Assert.True(code == 0, stderr);
        Assert.Contains($"vae: AutoencoderKL from {vae} · BFloat16", stdout);
        using var swapped = NpyFile.Read(dir.File("swapped.npy"));
        using var own = Small(dir, "own.npy", "--dtype", "bf16");
        Assert.Equal(0.0, Tol.MaxAbsDiff(swapped, own));
    }

    [Theory]
    [InlineData("--high-noise-frac", "0.5", "--high-noise-frac needs --refiner")]
    [InlineData("--high-noise-frac", "1", "error: --high-noise-frac must be in (0, 1), got 1")]
    [InlineData("--crop", "8", "--crop '8': expected X,Y, two non-negative whole numbers")]
    [InlineData("--original-size", "0,64", "--original-size '0,64': expected W,H, two positive whole numbers")]
    [InlineData("--target-size", "a,b", "--target-size 'a,b': expected W,H")]
    public void BadSdxlOptionsAreUserErrors(string option, string value, string message)
    {
        using var dir = new TempDir();
        var (code, _, stderr) = Run("generate", "-m", Base, "--prompt", "x", option, value, "-o", dir.File("o.png"));
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains(message, stderr);
        Assert.False(File.Exists(dir.File("o.png")));
    }

    [Fact]
    public void PaddingMaskCropIsRefusedOnSdxlInpainting()
    {
        // diffusers 0.25.1's StableDiffusionXLInpaintPipeline has no padding_mask_crop (0.26.0 added it)
        using var dir = new TempDir();
        var (code, _, stderr) = Run("generate", "-m", Base, "--prompt", "x", "--init-image", Golden.Path("img2img-init.png"),
            "--mask", Golden.Path("inpaint-mask.png"), "--padding-mask-crop", "4", "-o", dir.File("o.png"));
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains("--padding-mask-crop applies to Stable Diffusion inpainting (StableDiffusionInpaintPipeline) only; diffusers 0.25.1's StableDiffusionXLInpaintPipeline has no padding_mask_crop", stderr);
        Assert.False(File.Exists(dir.File("o.png")));
    }

    [Theory]
    [InlineData("txt2img")]
    [InlineData("img2img")]
    [InlineData("inpaint")]
    [InlineData("refiner")]
    public void PreviewEveryWritesTheTaesdDecodeOfEachStepsLatents(string kind)
    {
        // the SDXL paths did not read --preview-every (ignored, then refused); the preview after step k is the tiny VAE's
        // decode of the latents after step k; with --refiner the refiner's steps go on from the base's
        using var dir = new TempDir();
        const string prompt = "a photo of a cat";
        string init = Golden.Path("img2img-init.png"), mask = Golden.Path("inpaint-mask.png");
        string[] common = ["generate", "-m", Base, "--prompt", prompt, "--seed", "0", "--preview-every", "1", "--preview-vae", CliPreviews.Taesd];
        string[] args = kind switch
        {
            "txt2img" => [.. common, "--steps", "2", "--width", "32", "--height", "32"],
            "img2img" => [.. common, "--init-image", init, "--strength", "0.5", "--steps", "4"],
            "inpaint" => [.. common, "--init-image", init, "--mask", mask, "--strength", "1", "--steps", "2", "--width", "32", "--height", "32"],
            _ => [.. common, "--steps", "2", "--width", "32", "--height", "32", "--refiner", Refiner, "--high-noise-frac", "0.5"],
        };
        CliPreviews.AssertEachStepIsPreviewed(dir, args, CliPreviews.Taesd, steps: 2, onStepEnd =>
        {
            switch (kind)
            {
                case "txt2img":
                {
                    using var pipe = StableDiffusionXLPipeline.FromPretrained(Base);
                    using var _ = pipe.Generate(prompt, height: 32, width: 32, numInferenceSteps: 2, guidanceScale: 5.0, seed: 0,
                        outputType: OutputType.Latent, callbackOnStepEnd: onStepEnd);
                    break;
                }
                case "img2img":
                {
                    using var pipe = StableDiffusionXLImg2ImgPipeline.FromPretrained(Base);
                    using var _ = pipe.Generate(prompt, Image.LoadImage(init), strength: 0.5, numInferenceSteps: 4, guidanceScale: 5.0,
                        seed: 0, outputType: OutputType.Latent, callbackOnStepEnd: onStepEnd);
                    break;
                }
                case "inpaint":
                {
                    using var pipe = StableDiffusionXLInpaintPipeline.FromPretrained(Base);
                    using var _ = pipe.Generate(prompt, Image.LoadImage(init), Image.LoadImage(mask), height: 32, width: 32, strength: 1.0,
                        numInferenceSteps: 2, guidanceScale: 7.5, seed: 0, outputType: OutputType.Latent, callbackOnStepEnd: onStepEnd);
                    break;
                }
                default:
                {
                    using var pipe = StableDiffusionXLPipeline.FromPretrained(Base);
                    using var refiner = StableDiffusionXLImg2ImgPipeline.FromPretrained(Refiner);
                    using var generator = new torch.Generator(0);
                    using var latents = pipe.Generate(prompt, height: 32, width: 32, numInferenceSteps: 2, denoisingEnd: 0.5, guidanceScale: 5.0,
                        generator: generator, outputType: OutputType.Latent, callbackOnStepEnd: onStepEnd);
                    using var _ = refiner.Generate(prompt, latents.Tensor!, numInferenceSteps: 2, denoisingStart: 0.5, guidanceScale: 5.0,
                        generator: generator, outputType: OutputType.Latent, callbackOnStepEnd: onStepEnd);
                    break;
                }
            }
        });
    }

    [Fact]
    public void OptionsThatDoNotApplyAreRefusedWithTheirNames()
    {
        using var dir = new TempDir();
        var (code, _, stderr) = Run("generate", "-m", Golden.Path("tiny-sd"), "--prompt", "x", "--prompt-2", "y", "-o", dir.File("o.png"));
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains("--prompt-2 applies to Stable Diffusion XL models;", stderr);
        Assert.Contains("is a StableDiffusionPipeline", stderr);

        (code, _, stderr) = Run("generate", "-m", Refiner, "--prompt", "x", "-o", dir.File("o.png"));
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains("is an SDXL image-to-image / refiner model (StableDiffusionXLImg2ImgPipeline): give --init-image", stderr);

        (code, _, stderr) = Run("generate", "-m", Refiner, "--prompt", "x", "--prompt-2", "y", "--init-image", Golden.Path("img2img-init.png"),
            "--steps", "2", "-o", dir.File("o.png"));
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains("--prompt-2 does not apply to", stderr);

        (code, _, stderr) = Run("generate", "-m", Refiner, "--prompt", "x", "--target-size", "64,64", "--init-image", Golden.Path("img2img-init.png"),
            "--steps", "2", "-o", dir.File("o.png"));
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains("--target-size does not apply to", stderr);

        (code, _, stderr) = Run("generate", "-m", Base, "--prompt", "x", "--refiner", Refiner, "--init-image", Golden.Path("img2img-init.png"),
            "-o", dir.File("o.png"));
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains("--refiner runs after SDXL text-to-image; it does not combine with --init-image", stderr);

        (code, _, stderr) = Run("generate", "-m", Refiner, "--prompt", "x", "--refiner", Refiner, "-o", dir.File("o.png"));
        Assert.Equal(CliApp.UserError, code);
        Assert.False(File.Exists(dir.File("o.png")));
    }
}
