using System.Text.Json;
using DiffusersSharp.Imaging;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;
using Image = DiffusersSharp.Imaging.Image;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>
/// <see cref="LDMSuperResolutionPipeline"/> on tests/golden/ldm/tiny-ldm-sr (CompVis/ldm-super-resolution-4x-openimages'
/// layout: VQModel, a UNet2DModel of in_channels 6, DDIMScheduler) against diffusers 0.25.1's pipeline (tests/golden/ldm:
/// its README says how the data was made): a 37x34 PNG (Lanczos-resized to 32x32) with DDIM at eta 1 and with Euler
/// ancestral (whose scale_model_input scales the image channels too), and a batch-2 tensor image with LMS; loading through
/// DiffusionPipeline.FromPretrained and bad input.
/// </summary>
public class LDMSuperResolutionPipelineTests(ITestOutputHelper log)
{
    private const string Expected = "ldm/ldm-expected.safetensors";
    // a whole run, as the other pipelines' golden runs
    private const double Trajectory = 1e-4;

    internal static string Model => Golden.Path("ldm", "tiny-ldm-sr");

    internal static string LowRes => Golden.Path("ldm", "lowres.png");

    private static Tensor G(string key) => Golden.Tensor(Expected, key);

    private static JsonElement Case(string name) =>
        Golden.Json("ldm/ldm-expected.json").RootElement.GetProperty("cases").GetProperty(name);

    [Theory]
    [InlineData("sr-ddim-eta1")]
    [InlineData("sr-euler-ancestral")]
    [InlineData("sr-lms-tensor")]
    public void TheRunMatchesDiffusers(string run)
    {
        var c = Case(run);
        using var loaded = DiffusionPipeline.FromPretrained(Model);
        var pipe = Assert.IsType<LDMSuperResolutionPipeline>(loaded);
        using var folderScheduler = pipe.Scheduler;
        pipe.Scheduler = c.GetProperty("scheduler").GetString() switch
        {
            "EulerAncestralDiscreteScheduler" => EulerAncestralDiscreteScheduler.FromConfig(folderScheduler.Config),
            "LMSDiscreteScheduler" => LMSDiscreteScheduler.FromConfig(folderScheduler.Config),
            _ => SchedulerFactory.FromConfig(folderScheduler.Config),
        };
        using var scheduler = pipe.Scheduler;
        string p = run + "/";
        ImageInput image = c.GetProperty("image").GetString() == "lowres.png" ? Image.Load(LowRes) : G(p + "image");
        var seen = new List<Tensor>();
        var unetInputs = new List<Tensor>();
        using var result = pipe.Generate(image, c.GetProperty("num_inference_steps").GetInt32(), c.GetProperty("eta").GetDouble(),
            seed: c.GetProperty("seed").GetInt64(), outputType: OutputType.Np,
            callbackOnStepEnd: (_, _, tensors) => seen.Add(tensors["latents"].detach().clone().DetachFromDisposeScope()));
        using (var ts = pipe.Scheduler.Timesteps.to(ScalarType.Float64))
            Assert.Equal(c.GetProperty("timesteps").EnumerateArray().Select(e => e.GetDouble()), ts.data<double>().ToArray());
        foreach (var (name, actual) in new[] { ("step1", seen[0]), ("latents", seen[^1]) })
        {
            log.WriteLine($"{name}: max diff {Tol.MaxAbsDiff(actual, G(p + name)):E3}");
            Tol.Close(actual, G(p + name), Trajectory, p + name);
        }
        log.WriteLine($"images: max diff {Tol.MaxAbsDiff(result.Array!, G(p + "images")):E3}");
        Tol.Close(result.Array!, G(p + "images"), Trajectory, p + "images");
        foreach (var t in seen) t.Dispose();
    }

    [Fact]
    public void ThePreprocessedImageIsWhatDiffusersConcatenates()
    {
        // with DDIM (scale_model_input the identity) the UNet's last three input channels are diffusers' preprocess(image)
        using var image = LDMSuperResolutionPipeline.Preprocess(Image.Load(LowRes));
        Assert.Equal([1L, 3, 32, 32], image.shape);
        Tol.Close(image, G("sr-ddim-eta1/unet_input1")[.., 3..], 1e-6, "preprocess");
    }

    [Fact]
    public void EulerAncestralScalesTheImageChannelsWithTheLatents()
    {
        // diffusers concatenates first and scales the concatenation: the image channels are divided by sqrt(sigma² + 1)
        using var image = LDMSuperResolutionPipeline.Preprocess(Image.Load(LowRes));
        var input = G("sr-euler-ancestral/unet_input1");
        using var ratio = input[.., 3..] / image;
        using var ddim = SchedulerFactory.FromPretrained(Model, "scheduler");
        using var scheduler = EulerAncestralDiscreteScheduler.FromConfig(ddim.Config);
        scheduler.SetTimesteps(2);
        // the DDIM config's "leading" spacing: init_noise_sigma is sqrt(sigma² + 1) of the first step's sigma, the largest
        double expected = 1 / scheduler.InitNoiseSigma;
        log.WriteLine($"ratio {ratio.mean().item<float>()} vs {expected}");
        Assert.True(Math.Abs(ratio.mean().item<float>() - expected) < 1e-5 * expected);
        Assert.True(Math.Abs(ratio.min().item<float>() - ratio.max().item<float>()) < 1e-5);
    }

    [Fact]
    public void BadImagesAreRefused()
    {
        using var pipe = LDMSuperResolutionPipeline.FromPretrained(Model);
        var gray = Assert.Throws<DiffusersException>(() => pipe.Generate(new Image(40, 40, 1, new byte[1600]), 1, seed: 0));
        Assert.Equal("LDMSuperResolutionPipeline: the image is greyscale; the pipeline takes an RGB image (convert it, as diffusers' example does with convert(\"RGB\"))", gray.Message);
        var small = Assert.Throws<DiffusersException>(() => pipe.Generate(new Image(40, 20, 3, new byte[2400]), 1, seed: 0));
        Assert.Equal("LDMSuperResolutionPipeline: the image is 40x20; it is cut to the multiples of 32 below its size, so it must be at least 32x32", small.Message);
        var list = Assert.Throws<DiffusersException>(() => pipe.Generate(new[] { Image.Load(LowRes), Image.Load(LowRes) }, 1, seed: 0));
        Assert.Equal("LDMSuperResolutionPipeline: `image` has to be one Image or a tensor, got a list of 2 Images", list.Message);
        using var fourChannels = torch.zeros(1, 4, 16, 16);
        var tensor = Assert.Throws<DiffusersException>(() => pipe.Generate(fourChannels, 1, seed: 0));
        Assert.Equal("LDMSuperResolutionPipeline: an image tensor must be (batch, 3, height, width) in [-1, 1] (the UNet takes 3 image channels beside the latents), got [1, 4, 16, 16]", tensor.Message);
        using var odd = torch.zeros(1, 3, 15, 16);
        var size = Assert.Throws<DiffusersException>(() => pipe.Generate(odd, 1, seed: 0));
        Assert.Equal("LDMSuperResolutionPipeline: the image is 16x15, but the UNet's 1 upsamplers need sizes that are multiples of 2 (UNet2DModel's up path does not resize to its skip connections)", size.Message);
    }

    [Fact]
    public void LoadingGivesTheVqvaeTheUNetAndTheScheduler()
    {
        using var pipe = LDMSuperResolutionPipeline.FromPretrained(Model);
        Assert.Equal(["vqvae", "unet", "scheduler"], pipe.Components.Keys);
        Assert.IsType<DDIMScheduler>(pipe.Scheduler);
        Assert.Equal((6, 3, 2), (pipe.Unet.Config.InChannels, pipe.Unet.Config.OutChannels, pipe.Vqvae.ScaleFactor));
    }
}
