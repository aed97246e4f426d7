using System.Collections.Concurrent;
using DiffusersSharp.Cli;
using DiffusersSharp.Imaging;
using DiffusersSharp.Tests.Models;
using DiffusersSharp.Tests.Pipelines;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;
using Image = DiffusersSharp.Imaging.Image;

namespace DiffusersSharp.Tests.Cli;

/// <summary>
/// Every <c>diffusers generate</c> option on every pipeline kind it can meet: it has an effect on the output (compared
/// with the same command without it), or it is refused with a clear message, exit code 1 and nothing written. The kinds
/// are the pipelines the command runs: DDPMPipeline (tiny-ddpm), DDIMPipeline (tiny-ddpm with a DDIM scheduler),
/// Stable Diffusion txt2img, img2img (--init-image) and inpainting (--init-image --mask, 4-channel UNet) on tiny-sd, the
/// x4 upscaler (tiny-sd-upscale, an 8x8 --image), InstructPix2Pix (tiny-sd-instruct-pix2pix) and the Stable Diffusion
/// T2I-Adapter pipeline (--adapter on a tiny-sd copy with the UNet the tiny adapter fits), all at 32x32 with one or two steps,
/// and ConsistencyModelPipeline (tiny-consistency, 8x8, one step of class 3), StableDiffusionPanoramaPipeline (a tiny-sd copy
/// with the scale-8 VAE of tests/golden/panorama, 16x640: three windows, one DDIM step at t = 999), --panorama on tiny-sd (32x32),
/// and LDMPipeline and LDMSuperResolutionPipeline (tests/golden/ldm's tiny folders, two steps; the latter upscaling its 37x34 lowres.png);
/// the IP-Adapter options with the tiny adapter of tests/golden/ip-adapter.
/// </summary>
public class CliOptionMatrixTests(CliOptionMatrixTests.SmallImages images, ITestOutputHelper log) : IClassFixture<CliOptionMatrixTests.SmallImages>
{
    private static string Ddpm => Golden.Path("tiny-ddpm");
    private static string Sd => Golden.Path("tiny-sd");
    private static string Upscaler => Golden.Path("tiny-sd-upscale");
    private static string Pix2Pix => Golden.Path("tiny-sd-instruct-pix2pix");
    private static string ControlNet => Golden.Path("tiny-sd-controlnet");
    private static string Consistency => Golden.Path("tiny-consistency");
    private static string Ldm => LDMPipelineTests.Model;
    private static string LdmSuperResolution => LDMSuperResolutionPipelineTests.Model;
    private static string SdAdapter => T2IAdapterGoldenTests.Folder("sd-full");
    private string Init => images.Init;
    private string Mask => images.Mask;
    private string LowRes => images.LowRes;

    /// <summary>
    /// The command of each kind without the option under test: seed 0, two DDPM/DDIM steps; Stable Diffusion at 32x32
    /// with one Euler step at t = 999 (trailing spacing: one UNet call from σ_max to 0, so every conditioning option
    /// shows in the image) and img2img at strength 1.
    /// </summary>
    private string[] Base(string kind) => kind switch
    {
        "ddpm" => ["-m", Ddpm, "--steps", "2", "--seed", "0"],
        "ddim" => ["-m", Ddpm, "--scheduler", "ddim", "--steps", "2", "--seed", "0"],
        "txt2img" => ["-m", Sd, "--prompt", "a cat", "--width", "32", "--height", "32", "--scheduler", "euler", "--scheduler-config", "timestep_spacing=trailing", "--steps", "1", "--seed", "0"],
        "img2img" => ["-m", Sd, "--prompt", "a cat", "--init-image", Init, "--strength", "1", "--scheduler", "euler", "--scheduler-config", "timestep_spacing=trailing", "--steps", "1", "--seed", "0"],
        "inpaint" => ["-m", Sd, "--prompt", "a cat", "--init-image", Init, "--mask", Mask, "--width", "32", "--height", "32", "--scheduler", "euler", "--scheduler-config", "timestep_spacing=trailing", "--steps", "1", "--seed", "0"],
        "upscale" => ["-m", Upscaler, "--prompt", "a cat", "--image", LowRes, "--steps", "2", "--seed", "0"],
        "latent-upscale" => ["-m", images.LatentUpscaler.Path, "--prompt", "a cat", "--image", LowRes, "--steps", "2", "--seed", "0"],
        "pix2pix" => ["-m", Pix2Pix, "--prompt", "make it snowy", "--init-image", Init, "--steps", "2", "--seed", "0"],
        "consistency" => ["-m", Consistency, "--class-label", "3", "--steps", "1", "--seed", "0"],
        "panorama" => ["-m", images.PanoramaModel, "--prompt", "a cat", "--height", "16", "--width", "640", "--scheduler-config", "timestep_spacing=trailing", "--steps", "1", "--seed", "0"],
        "sd-panorama" => ["-m", Sd, "--prompt", "a cat", "--panorama", "--width", "32", "--height", "32", "--scheduler", "euler", "--scheduler-config", "timestep_spacing=trailing", "--steps", "1", "--seed", "0"],
        "ldm" => ["-m", Ldm, "--steps", "2", "--seed", "0"],
        "ldm-sr" => ["-m", LdmSuperResolution, "--image", LDMSuperResolutionPipelineTests.LowRes, "--steps", "2", "--seed", "0"],
        "adapter" => ["-m", images.AdapterModel, "--prompt", "a cat", "--adapter", SdAdapter, "--adapter-image", Init, "--width", "32", "--height", "32", "--scheduler", "euler", "--scheduler-config", "timestep_spacing=trailing", "--steps", "1", "--seed", "0"],
        "lcm" => ["-m", images.LcmModel, "--prompt", "a cat", "--width", "32", "--height", "32", "--seed", "0"],
        "lcm-img2img" => ["-m", images.LcmModel, "--prompt", "a cat", "--init-image", Init, "--seed", "0"],
        _ => throw new ArgumentException(kind),
    };

    /// <summary>The IP-Adapter files the rows name: the tiny basic adapter (its folder holds image_encoder/) and its image prompt.</summary>
    private static string Placeholder(string arg) => arg switch
    {
        "IPADAPTER" => Golden.Path("ip-adapter", "ip-adapter-basic.safetensors"),
        "IPIMAGE" => Golden.Path("ip-adapter", "ip-image.png"),
        _ => arg,
    };

    /// <summary>Runs generate with <paramref name="args"/> (options replace the base's) writing <paramref name="file"/>.</summary>
    private (int Code, string Stdout, string Stderr) Run(string kind, string file, params string[] args)
    {
        var all = new List<string> { "generate" };
        var baseArgs = Base(kind);
        for (int i = 0; i < baseArgs.Length; i++)
        {
            bool flag = baseArgs[i].StartsWith('-');
            // --timesteps replaces the base's --steps (the two cannot be combined)
            bool overridden = flag && (args.Contains(baseArgs[i]) || baseArgs[i] == "--steps" && args.Contains("--timesteps"));
            if (overridden) { i++; continue; }
            all.Add(baseArgs[i]);
        }
        all.AddRange(args);
        all.AddRange(["-o", file]);
        return CliRun.Run([.. all]);
    }

    private static float[] Npy(string file)
    {
        using var t = NpyFile.Read(file);
        return t.data<float>().ToArray();
    }

    private float[] BaseOutput(string kind) => images.BaseOutputs.GetOrAdd(kind, k =>
    {
        using var dir = new TempDir();
        var (code, _, stderr) = Run(k, dir.File("base.npy"));
        Assert.True(code == 0, stderr);
        return Npy(dir.File("base.npy"));
    });

    /// <summary>
    /// The option changes the output (same shape, some value by at least one 8-bit level) compared with the base command,
    /// or with the command after "vs" where the option needs a companion (two steps for a scheduler to make a difference).
    /// </summary>
    [Theory]
    [InlineData("ddpm", "--steps", "3")]
    [InlineData("ddim", "--steps", "3")]
    [InlineData("txt2img", "--steps", "2")]
    [InlineData("img2img", "--steps", "2")]
    [InlineData("inpaint", "--steps", "2")]
    [InlineData("ddpm", "--seed", "1")]
    [InlineData("ddim", "--seed", "1")]
    [InlineData("txt2img", "--seed", "1")]
    [InlineData("img2img", "--seed", "1")]
    [InlineData("inpaint", "--seed", "1")]
    [InlineData("ddpm", "--scheduler", "euler")]
    [InlineData("ddim", "--scheduler", "dpm++2m")]
    [InlineData("txt2img", "--scheduler", "pndm", "--steps", "2", "vs", "--steps", "2")]
    [InlineData("img2img", "--scheduler", "heun", "--steps", "2", "vs", "--steps", "2")]
    [InlineData("inpaint", "--scheduler", "euler-a", "--steps", "2", "vs", "--steps", "2")]
    [InlineData("ddpm", "--scheduler-config", "timestep_spacing=trailing")]
    [InlineData("ddim", "--scheduler-config", "timestep_spacing=trailing")]
    [InlineData("txt2img", "--scheduler-config", "timestep_spacing=leading")]
    [InlineData("img2img", "--scheduler-config", "timestep_spacing=leading")]
    [InlineData("inpaint", "--scheduler-config", "timestep_spacing=leading")]
    [InlineData("ddim", "--eta", "1")]
    [InlineData("txt2img", "--scheduler", "ddim", "--eta", "1", "--steps", "2", "vs", "--scheduler", "ddim", "--steps", "2")]
    [InlineData("img2img", "--scheduler", "ddim", "--eta", "1", "--steps", "2", "vs", "--scheduler", "ddim", "--steps", "2")]
    [InlineData("inpaint", "--scheduler", "ddim", "--eta", "1", "--steps", "2", "vs", "--scheduler", "ddim", "--steps", "2")]
    [InlineData("txt2img", "--prompt", "a dog")]
    [InlineData("img2img", "--prompt", "a dog")]
    [InlineData("inpaint", "--prompt", "a dog")]
    [InlineData("txt2img", "--negative-prompt", "blurry")]
    [InlineData("img2img", "--negative-prompt", "blurry")]
    [InlineData("inpaint", "--negative-prompt", "blurry")]
    [InlineData("txt2img", "--guidance", "2")]
    [InlineData("lcm", "--guidance", "2")]
    [InlineData("lcm", "--steps", "2")]
    [InlineData("lcm", "--timesteps", "999,499")]
    [InlineData("lcm-img2img", "--strength", "0.5")]
    [InlineData("img2img", "--guidance", "2")]
    [InlineData("inpaint", "--guidance", "2")]
    [InlineData("txt2img", "--guidance-rescale", "1", "--guidance", "15", "vs", "--guidance", "15")]
    [InlineData("txt2img", "--clip-skip", "1")]
    [InlineData("txt2img", "--freeu", "0.9,0.2,1.2,1.4")]
    [InlineData("consistency", "--steps", "2")]
    [InlineData("consistency", "--seed", "1")]
    [InlineData("consistency", "--timesteps", "22,0")]
    [InlineData("consistency", "--class-label", "7")]
    [InlineData("consistency", "--scheduler-config", "sigma_max=20")]
    [InlineData("img2img", "--freeu", "0.9,0.2,1.2,1.4")]
    [InlineData("inpaint", "--freeu", "0.9,0.2,1.2,1.4")]
    [InlineData("img2img", "--clip-skip", "1")]
    [InlineData("inpaint", "--clip-skip", "1")]
    [InlineData("img2img", "--strength", "0.5", "--steps", "2", "vs", "--steps", "2")]
    [InlineData("inpaint", "--strength", "0.5", "--steps", "2", "vs", "--steps", "2")]
    [InlineData("txt2img", "--scheduler", "ddpm", "--timesteps", "999,299", "vs", "--scheduler", "ddpm", "--steps", "2")]
    [InlineData("img2img", "--scheduler", "ddpm", "--timesteps", "999,299", "vs", "--scheduler", "ddpm", "--steps", "2")]
    [InlineData("inpaint", "--scheduler", "ddpm", "--timesteps", "999,299", "vs", "--scheduler", "ddpm", "--steps", "2")]
    [InlineData("adapter", "--scheduler", "lcm", "--timesteps", "999,299", "vs", "--scheduler", "lcm", "--steps", "2")]
    [InlineData("upscale", "--steps", "3")]
    [InlineData("pix2pix", "--steps", "3")]
    [InlineData("adapter", "--steps", "2")]
    [InlineData("upscale", "--seed", "1")]
    [InlineData("pix2pix", "--seed", "1")]
    [InlineData("adapter", "--seed", "1")]
    [InlineData("upscale", "--scheduler", "euler")]
    [InlineData("pix2pix", "--scheduler", "euler")]
    [InlineData("adapter", "--scheduler", "pndm", "--steps", "2", "vs", "--steps", "2")]
    [InlineData("upscale", "--scheduler-config", "timestep_spacing=trailing")]
    [InlineData("pix2pix", "--scheduler-config", "timestep_spacing=trailing")]
    [InlineData("adapter", "--scheduler-config", "timestep_spacing=leading")]
    [InlineData("upscale", "--eta", "1")]
    [InlineData("pix2pix", "--scheduler", "ddim", "--eta", "1", "vs", "--scheduler", "ddim")]
    [InlineData("adapter", "--scheduler", "ddim", "--eta", "1", "--steps", "2", "vs", "--scheduler", "ddim", "--steps", "2")]
    [InlineData("upscale", "--prompt", "a dog")]
    [InlineData("pix2pix", "--prompt", "make it a dog")]
    [InlineData("adapter", "--prompt", "a dog")]
    [InlineData("upscale", "--negative-prompt", "blurry")]
    [InlineData("pix2pix", "--negative-prompt", "blurry")]
    [InlineData("adapter", "--negative-prompt", "blurry")]
    [InlineData("upscale", "--guidance", "2")]
    [InlineData("pix2pix", "--guidance", "2")]
    [InlineData("adapter", "--guidance", "2")]
    [InlineData("upscale", "--clip-skip", "1")]
    [InlineData("adapter", "--clip-skip", "1")]
    [InlineData("upscale", "--freeu", "0.9,0.2,1.2,1.4")]
    [InlineData("pix2pix", "--freeu", "0.9,0.2,1.2,1.4")]
    [InlineData("adapter", "--freeu", "0.9,0.2,1.2,1.4")]
    [InlineData("upscale", "--noise-level", "100")]
    [InlineData("latent-upscale", "--prompt", "a dog")]
    [InlineData("latent-upscale", "--negative-prompt", "blurry")]
    [InlineData("latent-upscale", "--guidance", "2")]
    [InlineData("latent-upscale", "--seed", "1")]
    [InlineData("latent-upscale", "--steps", "3")]
    [InlineData("latent-upscale", "--scheduler-config", "timestep_spacing=trailing")]
    [InlineData("pix2pix", "--image-guidance-scale", "3")]
    [InlineData("adapter", "--adapter-scale", "0.3")]
    [InlineData("txt2img", "--ip-adapter", "IPADAPTER", "--ip-adapter-image", "IPIMAGE")]
    [InlineData("txt2img", "--ip-adapter", "IPADAPTER", "--ip-adapter-image", "IPIMAGE", "--ip-adapter-scale", "0.3", "vs", "--ip-adapter", "IPADAPTER", "--ip-adapter-image", "IPIMAGE")]
    [InlineData("img2img", "--ip-adapter", "IPADAPTER", "--ip-adapter-image", "IPIMAGE")]
    [InlineData("inpaint", "--ip-adapter", "IPADAPTER", "--ip-adapter-image", "IPIMAGE")]
    [InlineData("pix2pix", "--ip-adapter", "IPADAPTER", "--ip-adapter-image", "IPIMAGE")]
    [InlineData("inpaint", "--ip-adapter", "IPADAPTER", "--ip-adapter-image", "IPIMAGE", "--ip-adapter-scale", "0.3", "vs", "--ip-adapter", "IPADAPTER", "--ip-adapter-image", "IPIMAGE")]
    [InlineData("panorama", "--circular-padding")]
    [InlineData("sd-panorama", "--circular-padding")]
    [InlineData("panorama", "--prompt", "a dog")]
    [InlineData("panorama", "--negative-prompt", "blurry")]
    [InlineData("panorama", "--guidance", "2")]
    [InlineData("panorama", "--seed", "1")]
    [InlineData("panorama", "--steps", "2")]
    [InlineData("panorama", "--clip-skip", "1")]
    [InlineData("panorama", "--freeu", "0.9,0.2,1.2,1.4")]
    [InlineData("panorama", "--scheduler", "pndm", "--steps", "2", "vs", "--steps", "2")]
    [InlineData("panorama", "--eta", "1", "--steps", "2", "vs", "--steps", "2")]
    [InlineData("panorama", "--ip-adapter", "IPADAPTER", "--ip-adapter-image", "IPIMAGE")]
    public void OptionChangesTheOutput(string kind, params string[] args)
    {
        args = args.Select(Placeholder).ToArray();
        int vs = Array.IndexOf(args, "vs");
        var option = vs < 0 ? args : args[..vs];
        using var dir = new TempDir();
        float[] reference;
        if (vs < 0) reference = BaseOutput(kind);
        else
        {
            var (c0, _, e0) = Run(kind, dir.File("ref.npy"), args[(vs + 1)..]);
            Assert.True(c0 == 0, e0);
            reference = Npy(dir.File("ref.npy"));
        }
        var (code, _, stderr) = Run(kind, dir.File("o.npy"), option);
        Assert.True(code == 0, stderr);
        var output = Npy(dir.File("o.npy"));
        Assert.Equal(reference.Length, output.Length);
        double diff = reference.Zip(output, (a, b) => Math.Abs(a - b)).Max();
        log.WriteLine($"{kind} {string.Join(' ', option)}: max |change| {diff:E2}");
        Assert.True(diff >= 1 / 255.0, $"{kind} {string.Join(' ', option)} left the output unchanged (max change {diff:E2} < 1/255)");
    }

    /// <summary>
    /// --dtype bf16 runs the models in bfloat16: the images differ from the fp32 ones, within bf16's precision (the
    /// tolerance the bf16 pipeline tests use: mean |Δ| ≤ 0.02, max ≤ 0.2 on [0, 1] images).
    /// </summary>
    [Theory]
    [InlineData("ddpm")]
    [InlineData("ddim")]
    [InlineData("txt2img")]
    [InlineData("img2img")]
    [InlineData("inpaint")]
    [InlineData("upscale")]
    [InlineData("pix2pix")]
    [InlineData("adapter")]
    [InlineData("consistency")]
    public void Bf16DiffersFromFp32WithinTolerance(string kind)
    {
        using var dir = new TempDir();
        var (code, stdout, stderr) = Run(kind, dir.File("bf16.npy"), "--dtype", "bf16");
        Assert.True(code == 0, stderr);
        Assert.Contains("BFloat16", stdout);
        var bf16 = Npy(dir.File("bf16.npy"));
        var fp32 = BaseOutput(kind);
        double max = fp32.Zip(bf16, (a, b) => Math.Abs(a - b)).Max();
        double mean = fp32.Zip(bf16, (a, b) => (double)Math.Abs(a - b)).Average();
        log.WriteLine($"{kind} bf16 vs fp32: max |Δ| {max:E2}, mean |Δ| {mean:E2}");
        Assert.True(max > 0, "bf16 gave exactly the fp32 images: the dtype did not reach the models");
        Assert.True(mean <= 0.02 && max <= 0.2, $"{kind}: bf16 mean |Δ| {mean:E2}, max {max:E2}");
    }

    /// <summary>--upscale 2 doubles the saved image's size: the base output's pixels, each repeated 2x2 (nearest neighbour).</summary>
    [Theory]
    [InlineData("ddpm")]
    [InlineData("ddim")]
    [InlineData("txt2img")]
    [InlineData("img2img")]
    [InlineData("inpaint")]
    [InlineData("upscale")]
    [InlineData("pix2pix")]
    [InlineData("adapter")]
    public void Upscale2DoublesTheImage(string kind)
    {
        using var dir = new TempDir();
        var (code, _, stderr) = Run(kind, dir.File("b.png"), "--upscale", "2");
        Assert.True(code == 0, stderr);
        var b = Image.Load(dir.File("b.png"));
        using var baseArray = torch.tensor(BaseOutput(kind)).reshape(1, 32, 32, 3);
        var a = ImageProcessor.NumpyToImages(baseArray).Single();
        Assert.Equal((32, 32), (a.Width, a.Height));
        Assert.Equal((64, 64), (b.Width, b.Height));
        for (int y = 0; y < 64; y++)
            for (int x = 0; x < 64; x++)
                for (int c = 0; c < 3; c++)
                    Assert.Equal(a.Pixels[(y / 2 * 32 + x / 2) * 3 + c], b.Pixels[(y * 64 + x) * b.Channels + c]);
    }

    /// <summary>--batch 2 gives two images (.npy) on every kind; --width/--height set the size where the pipeline takes them.</summary>
    [Theory]
    [InlineData("ddpm", new[] { "--batch", "2" }, new long[] { 2, 32, 32, 3 })]
    [InlineData("ddim", new[] { "--batch", "2" }, new long[] { 2, 32, 32, 3 })]
    [InlineData("txt2img", new[] { "--batch", "2" }, new long[] { 2, 32, 32, 3 })]
    [InlineData("img2img", new[] { "--batch", "2" }, new long[] { 2, 32, 32, 3 })]
    [InlineData("inpaint", new[] { "--batch", "2" }, new long[] { 2, 32, 32, 3 })]
    [InlineData("txt2img", new[] { "--width", "48", "--height", "16" }, new long[] { 1, 16, 48, 3 })]
    [InlineData("inpaint", new[] { "--width", "48", "--height", "16" }, new long[] { 1, 16, 48, 3 })]
    [InlineData("upscale", new[] { "--batch", "2" }, new long[] { 2, 32, 32, 3 })]
    [InlineData("pix2pix", new[] { "--batch", "2" }, new long[] { 2, 32, 32, 3 })]
    [InlineData("adapter", new[] { "--batch", "2" }, new long[] { 2, 32, 32, 3 })]
    [InlineData("adapter", new[] { "--width", "48", "--height", "16" }, new long[] { 1, 16, 48, 3 })]
    [InlineData("consistency", new[] { "--batch", "2" }, new long[] { 2, 8, 8, 3 })]
    [InlineData("consistency", new[] { "--class-label", "1", "--class-label", "2", "--class-label", "3" }, new long[] { 3, 8, 8, 3 })]
    public void OptionShapesTheOutput(string kind, string[] option, long[] shape)
    {
        using var dir = new TempDir();
        var (code, _, stderr) = Run(kind, dir.File("o.npy"), option);
        Assert.True(code == 0, stderr);
        using var t = NpyFile.Read(dir.File("o.npy"));
        Assert.Equal(shape, t.shape);
    }

    /// <summary>--init-image turns txt2img into img2img, and --mask img2img into inpainting: the pipeline the header names.</summary>
    [Fact]
    public void ImageOptionsChooseThePipeline()
    {
        using var dir = new TempDir();
        var (code, stdout, stderr) = CliRun.Run("generate", "-m", Sd, "--prompt", "a cat", "--steps", "2", "--seed", "0",
            "--init-image", Init, "-o", dir.File("i.npy"));
        Assert.True(code == 0, stderr);
        Assert.Contains("StableDiffusionImg2ImgPipeline", stdout);
        (code, stdout, stderr) = Run("img2img", dir.File("m.npy"), "--mask", Mask);
        Assert.True(code == 0, stderr);
        Assert.Contains("StableDiffusionInpaintPipeline", stdout);
    }

    /// <summary>Each kind's base command runs the pipeline (and scheduler) its run header names.</summary>
    [Theory]
    [InlineData("ddpm", "DDPMPipeline · DDPMScheduler · 2 steps")]
    [InlineData("ddim", "DDIMPipeline · DDIMScheduler · 2 steps")]
    [InlineData("txt2img", "StableDiffusionPipeline · EulerDiscreteScheduler · 1 steps")]
    [InlineData("img2img", "StableDiffusionImg2ImgPipeline · EulerDiscreteScheduler · 1 steps")]
    [InlineData("inpaint", "StableDiffusionInpaintPipeline · EulerDiscreteScheduler · 1 steps")]
    [InlineData("upscale", "StableDiffusionUpscalePipeline · DDIMScheduler · 2 steps · batch 1 · guidance 9 · noise level 20")]
    [InlineData("pix2pix", "StableDiffusionInstructPix2PixPipeline · EulerAncestralDiscreteScheduler · 2 steps · batch 1 · guidance 7.5 · image guidance 1.5")]
    [InlineData("adapter", "StableDiffusionAdapterPipeline · 1 T2I-Adapter(s) · EulerDiscreteScheduler · 1 steps")]
    [InlineData("consistency", "ConsistencyModelPipeline · CMStochasticIterativeScheduler · 1 steps · batch 1 · classes 3 · seed 0 · Float32")]
    [InlineData("panorama", "StableDiffusionPanoramaPipeline · DDIMScheduler · 1 steps · batch 1 · guidance 7.5 · 16x640 · 3 windows, 1 per call · seed 0 · Float32")]
    [InlineData("sd-panorama", "StableDiffusionPanoramaPipeline · EulerDiscreteScheduler · 1 steps · batch 1 · guidance 7.5 · 32x32 · 1 windows, 1 per call")]
    [InlineData("lcm", "LatentConsistencyModelPipeline · LCMScheduler · 4 steps · batch 1 · guidance 8.5 (embedded) · seed 0 · Float32")]
    [InlineData("lcm-img2img", "LatentConsistencyModelImg2ImgPipeline · LCMScheduler · 4 steps · batch 1 · guidance 8.5 (embedded)")]
    public void EachKindRunsThePipelineItsHeaderNames(string kind, string header)
    {
        using var dir = new TempDir();
        var (code, stdout, stderr) = Run(kind, dir.File("o.npy"));
        Assert.True(code == 0, stderr);
        Assert.Contains(header, stdout);
    }

    /// <summary>Options a pipeline kind cannot apply are refused with a message naming them; nothing is written.</summary>
    [Theory]
    [InlineData("ddpm", "--eta 0.5", "--eta applies to DDIMScheduler only; the scheduler is DDPMScheduler (add --scheduler ddim)")]
    [InlineData("txt2img", "--eta 0.5", "--eta applies to DDIMScheduler only; the scheduler is EulerDiscreteScheduler (add --scheduler ddim)")]
    [InlineData("img2img", "--eta 0.5", "--eta applies to DDIMScheduler only; the scheduler is EulerDiscreteScheduler (add --scheduler ddim)")]
    [InlineData("inpaint", "--eta 0.5 --scheduler pndm", "--eta applies to DDIMScheduler only; the scheduler is PNDMScheduler (add --scheduler ddim)")]
    [InlineData("ddpm", "--prompt x", "DDPMPipeline takes no prompt, image or guidance options (--prompt)")]
    [InlineData("ddim", "--negative-prompt x", "DDPMPipeline takes no prompt, image or guidance options (--negative-prompt)")]
    [InlineData("ddpm", "--guidance 2", "DDPMPipeline takes no prompt, image or guidance options (--guidance)")]
    [InlineData("ddim", "--guidance-rescale 0.5", "DDPMPipeline takes no prompt, image or guidance options (--guidance-rescale)")]
    [InlineData("ddpm", "--clip-skip 1", "DDPMPipeline takes no prompt, image or guidance options (--clip-skip)")]
    [InlineData("ddim", "--freeu 0.9,0.2,1.2,1.4", "DDPMPipeline takes no prompt, image or guidance options (--freeu)")]
    [InlineData("ddim", "--width 64", "DDPMPipeline takes no prompt, image or guidance options (--width)")]
    [InlineData("ddpm", "--height 64", "DDPMPipeline takes no prompt, image or guidance options (--height)")]
    [InlineData("ddim", "--init-image INIT", "DDPMPipeline takes no prompt, image or guidance options (--init-image)")]
    [InlineData("ddpm", "--init-image INIT --strength 0.5", "DDPMPipeline takes no prompt, image or guidance options (--init-image)")]
    [InlineData("ddpm", "--init-image INIT --mask MASK", "DDPMPipeline takes no prompt, image or guidance options (--init-image)")]
    [InlineData("img2img", "--guidance-rescale 0.5", "--guidance-rescale applies to txt2img only")]
    [InlineData("inpaint", "--guidance-rescale 0.5", "--guidance-rescale applies to txt2img only")]
    [InlineData("img2img", "--width 32", "img2img keeps the init image's size: --width/--height apply to txt2img and inpainting only")]
    [InlineData("txt2img", "--strength 0.5", "--strength needs --init-image")]
    [InlineData("txt2img", "--mask MASK", "--mask needs --init-image (the image to inpaint)")]
    [InlineData("ddpm", "--padding-mask-crop 2", "--padding-mask-crop needs --mask (and --init-image): it crops an inpainting run to the masked area")]
    [InlineData("txt2img", "--padding-mask-crop 2", "--padding-mask-crop needs --mask (and --init-image): it crops an inpainting run to the masked area")]
    [InlineData("img2img", "--padding-mask-crop 2", "--padding-mask-crop needs --mask (and --init-image): it crops an inpainting run to the masked area")]
    [InlineData("inpaint", "--padding-mask-crop -1", "--padding-mask-crop is a margin in pixels, 0 or more; got -1")]
    [InlineData("inpaint", "--padding-mask-crop 2 NPY", "--padding-mask-crop gives 8-bit images (diffusers' padding_mask_crop takes output_type \"pil\" only): write a .png, .jpg or .webp, not .npy")]
    [InlineData("ddpm", "--upscale 2 NPY", "--upscale applies to image outputs, not .npy")]
    [InlineData("txt2img", "--upscale 2 NPY", "--upscale applies to image outputs, not .npy")]
    // the x4 upscaler, InstructPix2Pix and T2I-Adapter options on the other kinds, and theirs on them
    [InlineData("ddpm", "--image LOWRES", "--image applies to upscale models (StableDiffusionUpscalePipeline, LDMSuperResolutionPipeline, StableDiffusionLatentUpscalePipeline); {MODEL} is a DDPMPipeline")]
    [InlineData("ddim", "--noise-level 5", "--noise-level applies to Stable Diffusion upscale models (StableDiffusionUpscalePipeline); {MODEL} is a DDPMPipeline")]
    [InlineData("ddpm", "--image-guidance-scale 2", "--image-guidance-scale applies to InstructPix2Pix models (StableDiffusionInstructPix2PixPipeline); {MODEL} is a DDPMPipeline")]
    [InlineData("ddpm", "--adapter ADAPTER --adapter-image INIT", "DDPMPipeline takes no --adapter: T2I-Adapters guide text-conditioned (Stable Diffusion) models, and DDPMPipeline is unconditional")]
    [InlineData("ddpm", "--noise-level 5 --image-guidance-scale 2", "--noise-level applies to Stable Diffusion upscale models (StableDiffusionUpscalePipeline); {MODEL} is a DDPMPipeline")]
    [InlineData("txt2img", "--image LOWRES", "--image applies to upscale models (StableDiffusionUpscalePipeline, LDMSuperResolutionPipeline, StableDiffusionLatentUpscalePipeline); {MODEL} is a StableDiffusionPipeline")]
    [InlineData("img2img", "--image-guidance-scale 2", "--image-guidance-scale applies to InstructPix2Pix models (StableDiffusionInstructPix2PixPipeline); {MODEL} is a StableDiffusionPipeline")]
    [InlineData("inpaint", "--noise-level 5", "--noise-level applies to Stable Diffusion upscale models (StableDiffusionUpscalePipeline); {MODEL} is a StableDiffusionPipeline")]
    [InlineData("img2img", "--adapter ADAPTER --adapter-image INIT", "--init-image is not available with --adapter (diffusers' T2I-Adapter pipelines are text to image only)")]
    [InlineData("upscale", "--prompt-2 x", "--prompt-2 applies to Stable Diffusion XL models; {MODEL} is a StableDiffusionUpscalePipeline")]
    [InlineData("upscale", "--prompt-2 x --image-guidance-scale 2", "--prompt-2 applies to Stable Diffusion XL models; {MODEL} is a StableDiffusionUpscalePipeline")]
    [InlineData("upscale", "--image-guidance-scale 2", "--image-guidance-scale applies to InstructPix2Pix models (StableDiffusionInstructPix2PixPipeline); {MODEL} is a StableDiffusionUpscalePipeline")]
    [InlineData("upscale", "--width 32", "StableDiffusionUpscalePipeline takes no --width: it upscales --image 4x (diffusers 0.25.1's StableDiffusionUpscalePipeline has no such argument)")]
    [InlineData("upscale", "--init-image INIT", "StableDiffusionUpscalePipeline takes no --init-image: it upscales --image 4x (diffusers 0.25.1's StableDiffusionUpscalePipeline has no such argument)")]
    [InlineData("upscale", "--guidance-rescale 0.5", "StableDiffusionUpscalePipeline takes no --guidance-rescale: it upscales --image 4x (diffusers 0.25.1's StableDiffusionUpscalePipeline has no such argument)")]
    [InlineData("upscale", "--controlnet CONTROLNET --control-image INIT", "StableDiffusionUpscalePipeline takes no --controlnet; ControlNet runs with Stable Diffusion and SDXL text-to-image, image-to-image and inpainting models")]
    [InlineData("upscale", "--preview-every 1", "StableDiffusionUpscalePipeline takes no --preview-every: the previews decode Stable Diffusion latents, not the x4 upscaler's")]
    [InlineData("upscale", "--adapter ADAPTER --adapter-image INIT", "--adapter runs on a text-to-image base folder (StableDiffusionPipeline or StableDiffusionXLPipeline); {MODEL} is a StableDiffusionUpscalePipeline")]
    [InlineData("upscale", "--noise-level 351", "--noise-level must be at most the model's max_noise_level 350, got 351")]
    [InlineData("upscale", "--eta 0.5 --scheduler euler", "--eta applies to DDIMScheduler only; the scheduler is EulerDiscreteScheduler (add --scheduler ddim)")]
    [InlineData("latent-upscale", "--noise-level 5", "--noise-level applies to Stable Diffusion upscale models (StableDiffusionUpscalePipeline); {MODEL} is a StableDiffusionLatentUpscalePipeline")]
    [InlineData("latent-upscale", "--width 32", "StableDiffusionLatentUpscalePipeline takes no --width: it upscales --image 2x (diffusers 0.25.1's StableDiffusionLatentUpscalePipeline has no such argument)")]
    [InlineData("latent-upscale", "--clip-skip 1", "StableDiffusionLatentUpscalePipeline takes no --clip-skip: it upscales --image 2x (diffusers 0.25.1's StableDiffusionLatentUpscalePipeline has no such argument)")]
    [InlineData("latent-upscale", "--eta 0.5", "StableDiffusionLatentUpscalePipeline takes no --eta: it upscales --image 2x (diffusers 0.25.1's StableDiffusionLatentUpscalePipeline has no such argument)")]
    [InlineData("latent-upscale", "--preview-every 1", "StableDiffusionLatentUpscalePipeline takes no --preview-every: it upscales --image 2x (diffusers 0.25.1's StableDiffusionLatentUpscalePipeline has no such argument)")]
    [InlineData("latent-upscale", "--scheduler ddim", "StableDiffusionLatentUpscalePipeline: the scheduler is a DDIMScheduler; the pipeline preconditions the UNet with the σ of step i (sigmas[i], scale_model_input), which needs one of EulerDiscreteScheduler, EulerAncestralDiscreteScheduler, LMSDiscreteScheduler (the model's is EulerDiscreteScheduler)")]
    [InlineData("latent-upscale", "--prompt-2 x", "--prompt-2 applies to Stable Diffusion XL models; {MODEL} is a StableDiffusionLatentUpscalePipeline")]
    [InlineData("pix2pix", "--image LOWRES", "--image applies to upscale models (StableDiffusionUpscalePipeline, LDMSuperResolutionPipeline, StableDiffusionLatentUpscalePipeline); {MODEL} is a StableDiffusionInstructPix2PixPipeline")]
    [InlineData("pix2pix", "--negative-prompt-2 x --noise-level 5", "--negative-prompt-2 applies to Stable Diffusion XL models; {MODEL} is a StableDiffusionInstructPix2PixPipeline")]
    // --init-image with --width/--height is refused before the model is read, on every class
    [InlineData("pix2pix", "--width 32", "img2img keeps the init image's size: --width/--height apply to txt2img and inpainting only")]
    [InlineData("pix2pix", "--height 32", "img2img keeps the init image's size: --width/--height apply to txt2img and inpainting only")]
    [InlineData("pix2pix", "--guidance-rescale 0.5", "StableDiffusionInstructPix2PixPipeline takes no --guidance-rescale (diffusers 0.25.1's")]
    [InlineData("pix2pix", "--mask MASK", "StableDiffusionInstructPix2PixPipeline takes no --mask (diffusers 0.25.1's")]
    [InlineData("pix2pix", "--controlnet CONTROLNET --control-image INIT", "StableDiffusionInstructPix2PixPipeline takes no --controlnet (diffusers 0.25.1's")]
    [InlineData("pix2pix", "--adapter ADAPTER --adapter-image INIT", "--adapter runs on a text-to-image base folder (StableDiffusionPipeline or StableDiffusionXLPipeline); {MODEL} is a StableDiffusionInstructPix2PixPipeline")]
    [InlineData("pix2pix", "--eta 0.5", "--eta applies to DDIMScheduler only; the scheduler is EulerAncestralDiscreteScheduler (add --scheduler ddim)")]
    [InlineData("adapter", "--init-image INIT --mask MASK", "--init-image is not available with --adapter (diffusers' T2I-Adapter pipelines are text to image only)")]
    [InlineData("adapter", "--guidance-rescale 0.5", "--guidance-rescale is not available with --adapter on Stable Diffusion models (diffusers' StableDiffusionAdapterPipeline has no guidance_rescale)")]
    [InlineData("adapter", "--controlnet CONTROLNET --control-image INIT", "--controlnet and --adapter cannot be combined (one guidance model per run)")]
    [InlineData("adapter", "--image LOWRES", "--image applies to upscale models (StableDiffusionUpscalePipeline, LDMSuperResolutionPipeline, StableDiffusionLatentUpscalePipeline); {MODEL} is a StableDiffusionPipeline")]
    [InlineData("adapter", "--image-guidance-scale 2", "--image-guidance-scale applies to InstructPix2Pix models (StableDiffusionInstructPix2PixPipeline); {MODEL} is a StableDiffusionPipeline")]
    [InlineData("adapter", "--prompt-2 x", "--prompt-2 applies to Stable Diffusion XL models; {MODEL} is a StableDiffusionPipeline")]
    [InlineData("adapter", "--eta 0.5", "--eta applies to DDIMScheduler only; the scheduler is EulerDiscreteScheduler (add --scheduler ddim)")]
    [InlineData("adapter", "--adapter-scale 200", "--adapter-scale must be a number between -100 and 100, got 200")]
    // the IP-Adapter options: Stable Diffusion 1.x/2.x only, together, and not with the T2I-Adapter pipelines
    [InlineData("ddpm", "--ip-adapter IPADAPTER --ip-adapter-image IPIMAGE", "--ip-adapter applies to Stable Diffusion 1.x/2.x, SDXL and InstructPix2Pix models (StableDiffusionPipeline, StableDiffusionXLPipeline, StableDiffusionInstructPix2PixPipeline); {MODEL} is a DDPMPipeline")]
    [InlineData("upscale", "--ip-adapter-scale 0.5", "--ip-adapter-scale needs --ip-adapter <file|org/name/[subfolder/]file>")]
    [InlineData("upscale", "--ip-adapter IPADAPTER --ip-adapter-image IPIMAGE", "--ip-adapter applies to Stable Diffusion 1.x/2.x, SDXL and InstructPix2Pix models (StableDiffusionPipeline, StableDiffusionXLPipeline, StableDiffusionInstructPix2PixPipeline); {MODEL} is a StableDiffusionUpscalePipeline")]
    [InlineData("adapter", "--ip-adapter IPADAPTER --ip-adapter-image IPIMAGE", "--ip-adapter is not available with StableDiffusionAdapterPipeline (diffusers 0.25.1's T2I-Adapter pipelines have no ip_adapter_image)")]
    [InlineData("txt2img", "--ip-adapter IPADAPTER", "--ip-adapter needs --ip-adapter-image (the image prompt; diffusers' ip_adapter_image)")]
    [InlineData("txt2img", "--ip-adapter-image IPIMAGE", "--ip-adapter-image needs --ip-adapter <file|org/name/[subfolder/]file>")]
    [InlineData("txt2img", "--ip-adapter IPADAPTER --ip-adapter-image nothing.png", "--ip-adapter-image: file not found: nothing.png")]
    [InlineData("txt2img", "--ip-adapter IPADAPTER --ip-adapter-image IPIMAGE --ip-adapter-scale 200", "--ip-adapter-scale must be a number between -100 and 100, got 200")]
    [InlineData("txt2img", "--timesteps 999,499 --steps 2", "--timesteps and --steps cannot be combined: the custom timesteps set the steps (one per timestep), as diffusers' timesteps replace num_inference_steps")]
    [InlineData("txt2img", "--timesteps 999,x", "--timesteps '999,x': 'x' is not an integer timestep (expected T1,T2,... in descending order, e.g. 999,759,499,259)")]
    [InlineData("txt2img", "--timesteps 999,499", "StableDiffusionPipeline: The current scheduler class EulerDiscreteScheduler's `set_timesteps` does not support custom timestep schedules. Please check whether you are using the correct scheduler.")]
    [InlineData("inpaint", "--scheduler ddpm --timesteps 499,999", "StableDiffusionInpaintPipeline: timesteps: DDPMScheduler: custom timesteps must be in descending order; 999 follows 499")]
    [InlineData("ddpm", "--timesteps 999,499", "--timesteps is not available for DDPMPipeline: diffusers 0.25.1's DDPMPipeline has no timesteps argument (use --steps)")]
    [InlineData("consistency", "--prompt x", "ConsistencyModelPipeline takes no --prompt: it generates classes (--class-label), not from a prompt or an image")]
    [InlineData("consistency", "--init-image INIT", "ConsistencyModelPipeline takes no --init-image: it generates classes (--class-label), not from a prompt or an image")]
    [InlineData("consistency", "--eta 0.5", "ConsistencyModelPipeline takes no --eta: diffusers' ConsistencyModelPipeline passes no eta to the scheduler")]
    [InlineData("consistency", "--adapter ADAPTER --adapter-image INIT", "ConsistencyModelPipeline takes no --adapter")]
    [InlineData("consistency", "--ip-adapter IPADAPTER --ip-adapter-image IPIMAGE", "--ip-adapter applies to Stable Diffusion 1.x/2.x, SDXL and InstructPix2Pix models (StableDiffusionPipeline, StableDiffusionXLPipeline, StableDiffusionInstructPix2PixPipeline); {MODEL} is a ConsistencyModelPipeline")]
    [InlineData("consistency", "--timesteps 0,22", "CMStochasticIterativeScheduler: custom timesteps must be in descending order; 22 follows 0")]
    [InlineData("upscale", "--timesteps 999,499", "StableDiffusionUpscalePipeline takes no --timesteps: it upscales --image 4x (diffusers 0.25.1's StableDiffusionUpscalePipeline has no such argument)")]
    [InlineData("pix2pix", "--timesteps 999,499", "StableDiffusionInstructPix2PixPipeline takes no --timesteps (diffusers 0.25.1's")]
    [InlineData("img2img", "--controlnet CONTROLNET --control-image INIT --timesteps 999,499", "--timesteps is not available for StableDiffusionControlNetImg2ImgPipeline: diffusers 0.25.1's StableDiffusionControlNetImg2ImgPipeline has no timesteps argument (use --steps)")]
    [InlineData("inpaint", "--controlnet CONTROLNET --control-image INIT --timesteps 999,499", "--timesteps is not available for StableDiffusionControlNetInpaintPipeline: diffusers 0.25.1's StableDiffusionControlNetInpaintPipeline has no timesteps argument (use --steps)")]
    // the panorama options: Stable Diffusion text to image (--panorama) and panorama folders only
    [InlineData("ddpm", "--panorama", "--panorama applies to Stable Diffusion text-to-image models (StableDiffusionPipeline, StableDiffusionPanoramaPipeline); {MODEL} is a DDPMPipeline")]
    [InlineData("upscale", "--circular-padding", "--circular-padding applies to Stable Diffusion text-to-image models (StableDiffusionPipeline, StableDiffusionPanoramaPipeline); {MODEL} is a StableDiffusionUpscalePipeline")]
    [InlineData("pix2pix", "--view-batch-size 2", "--view-batch-size applies to Stable Diffusion text-to-image models (StableDiffusionPipeline, StableDiffusionPanoramaPipeline); {MODEL} is a StableDiffusionInstructPix2PixPipeline")]
    [InlineData("txt2img", "--view-batch-size 2", "--view-batch-size needs --panorama (it sets how the panorama's windows run)")]
    [InlineData("txt2img", "--circular-padding", "--circular-padding needs --panorama (it sets how the panorama's windows run)")]
    [InlineData("txt2img", "--panorama --controlnet CONTROLNET --control-image INIT", "--controlnet is not available with --panorama (diffusers 0.25.1's StableDiffusionPanoramaPipeline has no ControlNet or T2I-Adapter)")]
    [InlineData("sd-panorama", "--adapter ADAPTER --adapter-image INIT", "--adapter is not available with --panorama (diffusers 0.25.1's StableDiffusionPanoramaPipeline has no ControlNet or T2I-Adapter)")]
    [InlineData("img2img", "--panorama", "StableDiffusionPanoramaPipeline takes no --init-image (diffusers 0.25.1's StableDiffusionPanoramaPipeline has no such argument)")]
    [InlineData("panorama", "--guidance-rescale 0.5", "StableDiffusionPanoramaPipeline takes no --guidance-rescale (diffusers 0.25.1's StableDiffusionPanoramaPipeline has no such argument)")]
    [InlineData("panorama", "--timesteps 999,499", "StableDiffusionPanoramaPipeline takes no --timesteps (diffusers 0.25.1's StableDiffusionPanoramaPipeline has no such argument)")]
    [InlineData("panorama", "--controlnet CONTROLNET --control-image INIT", "StableDiffusionPanoramaPipeline takes no --controlnet (diffusers 0.25.1's StableDiffusionPanoramaPipeline has no such argument)")]
    [InlineData("panorama", "--adapter ADAPTER --adapter-image INIT", "--adapter runs on a text-to-image base folder (StableDiffusionPipeline or StableDiffusionXLPipeline); {MODEL} is a StableDiffusionPanoramaPipeline")]
    [InlineData("panorama", "--view-batch-size 0", "--view-batch-size must be at least 1, got 0")]
    [InlineData("panorama", "--eta 0.5 --scheduler euler", "--eta applies to DDIMScheduler only; the scheduler is EulerDiscreteScheduler (add --scheduler ddim)")]
    [InlineData("panorama", "--height 576 --circular-padding", "StableDiffusionPanoramaPipeline: circular_padding with a height of 576 pixels (2 rows of windows): diffusers 0.25.1 fails")]
    // the latent consistency pipelines: what diffusers' LatentConsistencyModelPipeline / Img2ImgPipeline have no argument for
    [InlineData("lcm", "--negative-prompt x", "LatentConsistencyModelPipeline takes no --negative-prompt (diffusers 0.25.1's LatentConsistencyModelPipeline has no such argument")]
    [InlineData("lcm", "--guidance-rescale 0.5", "LatentConsistencyModelPipeline takes no --guidance-rescale (diffusers 0.25.1's")]
    [InlineData("lcm", "--eta 0.5", "LatentConsistencyModelPipeline takes no --eta (diffusers 0.25.1's")]
    [InlineData("lcm-img2img", "--negative-prompt x", "LatentConsistencyModelImg2ImgPipeline takes no --negative-prompt (diffusers 0.25.1's")]
    [InlineData("lcm-img2img", "--mask MASK", "LatentConsistencyModelImg2ImgPipeline takes no --mask (diffusers 0.25.1's")]
    [InlineData("lcm", "--controlnet CONTROLNET --control-image INIT", "LatentConsistencyModelPipeline takes no --controlnet (diffusers 0.25.1's")]
    [InlineData("lcm", "--ip-adapter IPADAPTER --ip-adapter-image IPIMAGE", "--ip-adapter applies to Stable Diffusion 1.x/2.x, SDXL and InstructPix2Pix models (StableDiffusionPipeline, StableDiffusionXLPipeline, StableDiffusionInstructPix2PixPipeline); {MODEL} is a LatentConsistencyModelPipeline")]
    [InlineData("lcm", "--scheduler euler", "LatentConsistencyModelPipeline: the scheduler is EulerDiscreteScheduler, but LatentConsistencyModelPipeline runs LCMScheduler only")]
    // the latent diffusion pipelines: unconditional LDM, and super-resolution, which takes --image and nothing else of the x4 upscaler's
    [InlineData("ldm", "--prompt x", "LDMPipeline takes no --prompt: it generates unconditionally, without a prompt, an image or guidance")]
    [InlineData("ldm", "--init-image INIT", "LDMPipeline takes no --init-image: it generates unconditionally, without a prompt, an image or guidance")]
    [InlineData("ldm", "--image LOWRES", "--image applies to upscale models (StableDiffusionUpscalePipeline, LDMSuperResolutionPipeline, StableDiffusionLatentUpscalePipeline); {MODEL} is a LDMPipeline")]
    [InlineData("ldm", "--noise-level 5", "--noise-level applies to Stable Diffusion upscale models (StableDiffusionUpscalePipeline); {MODEL} is a LDMPipeline")]
    [InlineData("ldm", "--image-guidance-scale 2", "--image-guidance-scale applies to InstructPix2Pix models (StableDiffusionInstructPix2PixPipeline); {MODEL} is a LDMPipeline")]
    [InlineData("ldm", "--adapter ADAPTER --adapter-image INIT", "LDMPipeline takes no --adapter")]
    [InlineData("ldm", "--controlnet CONTROLNET --control-image INIT", "LDMPipeline takes no --controlnet")]
    [InlineData("ldm", "--ip-adapter IPADAPTER --ip-adapter-image IPIMAGE", "--ip-adapter applies to Stable Diffusion 1.x/2.x, SDXL and InstructPix2Pix models (StableDiffusionPipeline, StableDiffusionXLPipeline, StableDiffusionInstructPix2PixPipeline); {MODEL} is a LDMPipeline")]
    [InlineData("ldm", "--eta 0.5 --scheduler pndm", "--eta applies to DDIMScheduler only; the scheduler is PNDMScheduler (add --scheduler ddim)")]
    [InlineData("ldm", "--preview-every 1", "LDMPipeline takes no --preview-every")]
    [InlineData("ldm-sr", "--noise-level 5", "--noise-level applies to Stable Diffusion upscale models (StableDiffusionUpscalePipeline); {MODEL} is a LDMSuperResolutionPipeline")]
    [InlineData("ldm-sr", "--prompt x", "LDMSuperResolutionPipeline takes no --prompt: it upscales --image, without a prompt or guidance")]
    [InlineData("ldm-sr", "--width 64", "LDMSuperResolutionPipeline takes no --width: it upscales --image, without a prompt or guidance")]
    [InlineData("ldm-sr", "--batch 2", "LDMSuperResolutionPipeline upscales the one --image: --batch must be 1 (diffusers' pipeline sets its batch size to 1 for an image), got 2")]
    [InlineData("ldm-sr", "--lora ADAPTER", "LDMSuperResolutionPipeline takes no --lora")]
    [InlineData("ldm-sr", "--timesteps 999,499", "--timesteps is not available for LDMSuperResolutionPipeline: diffusers 0.25.1's LDMSuperResolutionPipeline has no timesteps argument (use --steps)")]
    [InlineData("ldm-sr", "--eta 1 --scheduler euler", "--eta applies to DDIMScheduler only; the scheduler is EulerDiscreteScheduler (add --scheduler ddim)")]
    public void OptionIsRefusedWhereItCannotApply(string kind, string option, string message)
    {
        using var dir = new TempDir();
        var files = new Dictionary<string, string> { ["INIT"] = Init, ["MASK"] = Mask, ["LOWRES"] = LowRes, ["ADAPTER"] = SdAdapter, ["CONTROLNET"] = ControlNet };
        var args = option.Replace(" NPY", "").Split(' ').Select(a => Placeholder(files.GetValueOrDefault(a, a))).ToArray();
        message = message.Replace("{MODEL}", Base(kind)[1]);
        string file = dir.File(option.EndsWith("NPY", StringComparison.Ordinal) ? "o.npy" : "o.png");
        var (code, _, stderr) = Run(kind, file, args);
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains(message, stderr);
        Assert.DoesNotContain("   at ", stderr);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    /// <summary>--view-batch-size runs the panorama's windows together: the same output as one window per UNet call.</summary>
    [Fact]
    public void ViewBatchSizeGivesThePanoramaOfOneWindowPerCall()
    {
        using var dir = new TempDir();
        var (code, _, stderr) = Run("panorama", dir.File("vb2.npy"), "--view-batch-size", "2");
        Assert.True(code == 0, stderr);
        Assert.Equal(BaseOutput("panorama"), Npy(dir.File("vb2.npy")));
    }

    /// <summary>
    /// --padding-mask-crop inpaints the area around the mask at the run's size (here 48x16, not the init image's 32x32) and
    /// writes the init image with it put back: the init image's size and, wherever the mask is black, its pixels; under the
    /// mask other pixels than the base command's.
    /// </summary>
    [Fact]
    public void PaddingMaskCropWritesTheInitImageWithTheInpaintedCropPutBack()
    {
        using var dir = new TempDir();
        var (code, _, stderr) = Run("inpaint", dir.File("o.png"), "--padding-mask-crop", "2", "--width", "48", "--height", "16");
        Assert.True(code == 0, stderr);
        var output = Image.Load(dir.File("o.png"));
        var init = Image.Load(Init);
        var mask = Image.Load(Mask, grayscale: true);
        Assert.Equal((32, 32), (output.Width, output.Height));
        using var baseArray = torch.tensor(BaseOutput("inpaint")).reshape(1, 32, 32, 3);
        var baseImage = ImageProcessor.NumpyToImages(baseArray).Single();
        int differs = 0;
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++)
                for (int c = 0; c < 3; c++)
                    if (mask[x, y, 0] == 0) Assert.Equal(init[x, y, c], output[x, y, c]);
                    else if (output[x, y, c] != baseImage[x, y, c]) differs++;
        log.WriteLine($"--padding-mask-crop 2: {differs} values under the mask differ from the base command's");
        Assert.True(differs > 100, $"{differs} values under the mask differ from the base command's");
    }

    /// <summary>A run whose latents become NaN or ±Inf stops at the step that produced them: exit 1, nothing written.</summary>
    [Theory]
    [InlineData("ddpm", "--scheduler-config variance_type=fixed_large_log", "DDPMPipeline: step 1 of 2 (timestep 500) produced non-finite latents")]
    public void NonFiniteLatentsStopTheRun(string kind, string option, string message)
    {
        using var dir = new TempDir();
        var (code, _, stderr) = Run(kind, dir.File("o.png"), option.Split(' '));
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains(message, stderr);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    /// <summary>The 32x32 init image and mask of the Stable Diffusion rows (the golden 64x64 ones, downsized: quicker runs).</summary>
    public sealed class SmallImages : IDisposable
    {
        private readonly TempDir _dir = new();

        public SmallImages()
        {
            ImageResize.Resize(Image.Load(Golden.Path("img2img-init.png")), 32, 32).Save(Init);
            ImageResize.Resize(Image.Load(Golden.Path("inpaint-mask.png")), 32, 32, ResampleFilter.Nearest).Save(Mask);
            ImageResize.Resize(Image.Load(Golden.Path("upscale", "low-res-16x16.png")), 8, 8).Save(LowRes);
            // tiny-sd with the UNet the tiny full adapter fits, as T2IAdapterPipelineTests assemble it
            foreach (var f in Directory.GetFiles(Golden.Path("tiny-sd"), "*", SearchOption.AllDirectories))
            {
                string to = Path.Combine(AdapterModel, Path.GetRelativePath(Golden.Path("tiny-sd"), f));
                Directory.CreateDirectory(Path.GetDirectoryName(to)!);
                File.Copy(f, to);
            }
            T2IAdapterPipelineTests.AddAdapter(AdapterModel, sdxl: false);
            foreach (var f in Directory.GetFiles(Golden.Path("tiny-sd"), "*", SearchOption.AllDirectories))
            {
                string to = Path.Combine(PanoramaModel, Path.GetRelativePath(Golden.Path("tiny-sd"), f));
                Directory.CreateDirectory(Path.GetDirectoryName(to)!);
                File.Copy(f, to);
            }
            StableDiffusionPanoramaPipelineTests.MakePanoramaFolder(PanoramaModel);
        }

        public string Init => _dir.File("init.png");
        public string Mask => _dir.File("mask.png");

        /// <summary>The x4 upscaler's --image: 8x8, a 32x32 output.</summary>
        public string LowRes => _dir.File("low-res.png");

        /// <summary>The Stable Diffusion folder the adapter kind runs on.</summary>
        public string AdapterModel => _dir.File("sd-adapter");

        /// <summary>The panorama folder the panorama kind runs on (tiny-sd with tests/golden/panorama's scale-8 VAE and DDIM).</summary>
        public string PanoramaModel => _dir.File("sd-panorama");

        /// <summary>The latent consistency folder the lcm kinds run on (LatentConsistencyModelPipelineTests' assembly).</summary>
        public string LcmModel => _lcm.Path;

        private readonly TempDir _lcm = LatentConsistencyModelPipelineTests.Folder();

        /// <summary>The base command's output of each pipeline kind (computed once).</summary>
        public ConcurrentDictionary<string, float[]> BaseOutputs { get; } = new();

        /// <summary>The latent upscaler folder (tiny-sd's text encoder and VAE, the golden K-block UNet): --image 8x8, a 16x16 output.</summary>
        public TempDir LatentUpscaler { get; } = StableDiffusionLatentUpscalePipelineTests.AssembleFolder();

        public void Dispose()
        {
            _dir.Dispose();
            LatentUpscaler.Dispose();
            _lcm.Dispose();
        }
    }
}
