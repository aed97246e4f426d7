using DiffusersSharp.Imaging;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>
/// The tiny-sd pipelines with the tiny TAESD as their VAE (<c>pipe.vae = AutoencoderTiny.from_pretrained(...)</c>),
/// golden README section I: txt2img_taesd and img2img_taesd.
/// </summary>
public class StableDiffusionTaesdTests(ITestOutputHelper log)
{
    private const string Expected = "tiny-taesd-expected.safetensors";
    private const double Trajectory = 1e-4;

    /// <summary>Every value of the image within 1/255 of diffusers' (the bar for pipeline images).</summary>
    internal static void AllWithinOneLevel(ITestOutputHelper log, SafetensorsLike g, string key, Tensor actual)
    {
        using var expected = g.Load(key);
        Assert.Equal(expected.shape, actual.shape);
        using var within = ((actual - expected).abs() <= 1.0 / 255).to(ScalarType.Float64).mean();
        double fraction = within.item<double>();
        log.WriteLine($"{key}: max abs error {Tol.MaxAbsDiff(actual, expected):E3}, within 1/255: {fraction:P3}");
        Assert.Equal(1.0, fraction);
    }

    [Fact]
    public void Txt2ImgWithTaesdMatchesDiffusers()
    {
        using var pipe = StableDiffusionPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        using (var kl = pipe.Vae) pipe.Vae = AutoencoderTinyGoldenTests.LoadTiny();
        Assert.Same(pipe.Vae, pipe.Components["vae"]);
        Assert.Equal(2, pipe.VaeScaleFactor);
        using var trace = new SdTrace(pipe);
        using var result = pipe.Generate("a photo of a cat", "", guidanceScale: 7.5, numInferenceSteps: 4, height: 64, width: 64,
            seed: 0, outputType: OutputType.Np);
        using var g = new SafetensorsLike(Expected);
        const string p = "pipeline/txt2img_taesd/";
        SdTrace.Check(log, g, p + "latent_noise", trace.One("initial_latents"), 0); // PNDM's init_noise_sigma is 1
        SdTrace.Check(log, g, p + "final_latents", trace.One("latents_after_step"), Trajectory);
        AllWithinOneLevel(log, g, p + "images", result.Array!);
    }

    [Fact]
    public void TaesdDecodeOfTheRecordedFinalLatentsIsThePipelineImage()
    {
        // diffusers: images = postprocess(decode(final_latents / 1.0)), bit-exact; here the decoder alone from the same latents
        using var _ = torch.no_grad();
        using var vae = AutoencoderTinyGoldenTests.LoadTiny();
        using var g = new SafetensorsLike(Expected);
        foreach (var run in new[] { "txt2img_taesd", "img2img_taesd" })
        {
            using var latents = g.Load($"pipeline/{run}/final_latents");
            using var decoded = vae.Decode(latents).Sample;
            using var images = ImageProcessor.PtToNumpy(ImageProcessor.Denormalize(decoded));
            SdTrace.Check(log, g, $"pipeline/{run}/images", images, Tol.ModelAbs);
        }
    }

    [Fact]
    public void Img2ImgWithTaesdMatchesDiffusers()
    {
        using var pipe = StableDiffusionImg2ImgPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        using (var kl = pipe.Vae) pipe.Vae = AutoencoderTinyGoldenTests.LoadTiny();
        using var trace = new SdTrace(pipe);
        var init = Image.Load(Golden.Path("img2img-init.png"));
        using var result = pipe.Generate("a photo of a cat", init, strength: 0.6, negativePrompt: "", guidanceScale: 7.5,
            numInferenceSteps: 5, seed: 1, outputType: OutputType.Np);
        using var g = new SafetensorsLike(Expected);
        const string p = "pipeline/img2img_taesd/";
        // AutoencoderTiny.encode has no distribution: the only draw is the noise, and image_latents = 1.0 · encode(image).latents
        Assert.False(trace.Has("image_latent_mean"));
        SdTrace.Check(log, g, p + "vae_encode_latents", trace.One("image_latents"), Tol.ModelAbs);
        SdTrace.Check(log, g, p + "latent_noise", trace.One("noise"), 0);
        SdTrace.Check(log, g, p + "final_latents", trace.One("latents_after_step"), Trajectory);
        AllWithinOneLevel(log, g, p + "images", result.Array!);
    }

    [Fact]
    public void SettingANullVae_IsRefused()
    {
        using var pipe = StableDiffusionPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        var e = Assert.Throws<ArgumentNullException>(() => pipe.Vae = null!);
        Assert.Equal("Vae", e.ParamName);
        Assert.Equal("a pipeline's Vae cannot be null: assign an AutoencoderKL or an AutoencoderTiny (Parameter 'Vae')", e.Message);
        Assert.IsType<AutoencoderKL>(pipe.Vae);
    }
}
