using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>
/// <see cref="StableDiffusionInstructPix2PixPipeline"/> against diffusers 0.25.1's <c>StableDiffusionInstructPix2PixPipeline</c>
/// on the tiny folder tests/golden/tiny-sd-instruct-pix2pix (tests/golden/instruct-pix2pix: make.py, README.md), its
/// loading and its refusals.
/// </summary>
public class StableDiffusionInstructPix2PixPipelineTests(ITestOutputHelper log)
{
    private const string Expected = "instruct-pix2pix/instruct-pix2pix-expected.safetensors";
    private const string Cat = "a photo of a cat";
    private const string Astronaut = "an astronaut riding a horse on the moon, 4k, highly detailed";
    // The text encoder against transformers' outputs (as the other golden pipeline tests).
    private const double Component = 1e-5;
    // The VAE encoder (diffusers feeds it a channels-last view, golden README D) and whole trajectories.
    private const double Encoder = 1e-4;
    private const double Trajectory = 1e-4;
    // Latents in sigma space reach |x| ≈ 23 here (EulerAncestral's initial noise, σ_max ≈ 14.6, and guidance 7.5 on a
    // random UNet), where float32's spacing is 1.9e-6: a latents trajectory is held to Trajectory or 1e-5 of its largest
    // expected value, whichever is larger (measured: 1.26e-4 at |x| 23.4 for euler_ancestral, 5.4e-6 of it).
    private const double RelativeTrajectory = 1e-5;

    internal static string Model => Golden.Path("tiny-sd-instruct-pix2pix");

    private static Image Init => Image.Load(Golden.Path("img2img-init.png"));

    [Theory]
    [InlineData("euler_ancestral", null, 5, 7.5, 1.5, 0)]
    [InlineData("ddim", DDIMScheduler.Name, 4, 7.5, 1.5, 1)]
    [InlineData("image_guidance_below_1", null, 4, 7.5, 0.8, 3)]
    [InlineData("guidance_1", DDIMScheduler.Name, 3, 1.0, 1.5, 4)]
    public void EditMatchesDiffusers(string run, string? scheduler, int steps, double guidance, double imageGuidance, long seed)
    {
        using var pipe = StableDiffusionInstructPix2PixPipeline.FromPretrained(Model);
        Assert.Equal(EulerAncestralDiscreteScheduler.Name, pipe.Scheduler.ClassName);   // the folder's (timbrooks/instruct-pix2pix's)
        if (scheduler is not null)
        {
            using var loaded = pipe.Scheduler;
            pipe.Scheduler = SchedulerFactory.FromConfig(scheduler, loaded.Config);
        }
        using var trace = new SdTrace(pipe);
        using var result = pipe.Generate(Cat, Init, numInferenceSteps: steps, guidanceScale: guidance, imageGuidanceScale: imageGuidance,
            seed: seed, outputType: OutputType.Np);
        bool cfg = imageGuidance >= 1 && guidance > 1;
        Assert.Equal(cfg, trace.Has("negative_prompt_embeds"));
        // the UNet's batch: [text, image, unconditional] with guidance, else the latents alone; 8 channels either way
        Assert.Equal(new long[] { cfg ? 3 : 1, 8, 32, 32 }, trace.First("unet_input").shape);
        CheckRun(run, trace, result, withUnet: run is "euler_ancestral" or "ddim");
    }

    [Fact]
    public void TwoPromptsWithTwoImagesEachFromOneImageMatchDiffusers()
    {
        using var pipe = StableDiffusionInstructPix2PixPipeline.FromPretrained(Model);
        using (var loaded = pipe.Scheduler) pipe.Scheduler = EulerDiscreteScheduler.FromConfig(loaded.Config);
        using var trace = new SdTrace(pipe);
        using var result = pipe.Generate(new[] { Cat, Astronaut }, Init, numInferenceSteps: 4, guidanceScale: 5.0, imageGuidanceScale: 2.0,
            numImagesPerPrompt: 2, seed: 2, outputType: OutputType.Np);
        Assert.Equal(4, result.Array!.shape[0]);
        CheckRun("euler_batch", trace, result, withUnet: false);
    }

    private void CheckRun(string run, SdTrace trace, ImagePipelineOutput result, bool withUnet)
    {
        using var g = new SafetensorsLike(Expected);
        string p = run + "/";
        SdTrace.Check(log, g, p + "prompt_embeds", trace.One("instruct_prompt_embeds"), Component);
        SdTrace.Check(log, g, p + "image_preprocessed", trace.One("image_preprocessed"), 0);
        SdTrace.Check(log, g, p + "image_latents", trace.One("image_latents"), Encoder);
        SdTrace.Check(log, g, p + "initial_latents", trace.One("initial_latents"), 0);
        Assert.Equal((int)g.Load(p + "unet_timestep").shape[0], trace.Count("unet_output"));
        if (withUnet)
        {
            using (var x = trace.Stacked("unet_input")) SdTrace.Check(log, g, p + "unet_input", x, LatentsTolerance(g, p + "unet_input"));
            using (var x = trace.Stacked("unet_output")) SdTrace.Check(log, g, p + "unet_output", x, Trajectory);
        }
        using (var x = trace.Stacked("latents_after_step")) SdTrace.Check(log, g, p + "latents_after_step", x, LatentsTolerance(g, p + "latents_after_step"));
        SdTrace.Check(log, g, p + "vae_decoded", trace.One("vae_decoded"), Trajectory);
        SdTrace.CheckImages(log, g, p + "images", result.Array!);
    }

    /// <summary>
    /// diffusers' <c>image</c> may be the image latents (4 channels, used without encoding) and <c>latents</c> the initial
    /// noise: the ddim run's image latents and initial latents (DDIM's init_noise_sigma is 1) given so, with no generator,
    /// give that run's trajectory and images.
    /// </summary>
    [Fact]
    public void GivenImageLatentsAndInitialLatentsReproduceTheDdimRun()
    {
        using var pipe = StableDiffusionInstructPix2PixPipeline.FromPretrained(Model);
        using (var loaded = pipe.Scheduler) pipe.Scheduler = DDIMScheduler.FromConfig(loaded.Config);
        using var g = new SafetensorsLike(Expected);
        using var imageLatents = g.Load("ddim/image_latents").narrow(0, 0, 1);   // [image, image, zeros]: the image's row
        using var initial = g.Load("ddim/initial_latents");
        using var trace = new SdTrace(pipe);
        using var result = pipe.Generate(Cat, imageLatents, numInferenceSteps: 4, latents: initial, outputType: OutputType.Np);
        Assert.False(trace.Has("image_latent_mean"), "4-channel image input must not be encoded");
        SdTrace.Check(log, g, "ddim/image_latents", trace.One("image_latents"), 0);
        using (var x = trace.Stacked("latents_after_step")) SdTrace.Check(log, g, "ddim/latents_after_step", x, LatentsTolerance(g, "ddim/latents_after_step"));
        SdTrace.CheckImages(log, g, "ddim/images", result.Array!);
    }

    [Fact]
    public void LatentsOfAnotherShapeThanTheImageLatentsAreRefused()
    {
        using var pipe = StableDiffusionInstructPix2PixPipeline.FromPretrained(Model);
        using var wrong = torch.zeros(1, 4, 16, 16);
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate(Cat, Init, numInferenceSteps: 2, latents: wrong));
        Assert.Equal("StableDiffusionInstructPix2PixPipeline: latents have shape [1, 4, 16, 16], expected [1, 4, 32, 32]", e.Message);
    }

    private static double LatentsTolerance(SafetensorsLike g, string key)
    {
        using var expected = g.Load(key);
        using var max = expected.abs().max();
        return Math.Max(Trajectory, RelativeTrajectory * max.item<float>());
    }

    [Fact]
    public void DiffusionPipelineLoadsTheFolderByItsClassName()
    {
        using var pipe = DiffusionPipeline.FromPretrained(Model);
        var pix2pix = Assert.IsType<StableDiffusionInstructPix2PixPipeline>(pipe);
        Assert.Equal("StableDiffusionInstructPix2PixPipeline", pix2pix.ClassName);
        Assert.Equal(8, pix2pix.Unet.Config.InChannels);
        Assert.Equal(EulerAncestralDiscreteScheduler.Name, pix2pix.Scheduler.ClassName);
    }

    /// <summary>The generation service (and so the server) runs text to image on the UNet it loads: an 8-channel one is refused.</summary>
    [Fact]
    public void TheGenerationServiceRefusesAnInstructPix2PixFolder()
    {
        var e = Assert.Throws<DiffusersException>(() => DiffusersSharp.Generation.GenerationService.Load(Model));
        Assert.Equal(
            $"{Model}: the generation service runs Stable Diffusion pipelines whose UNet takes 4 or 9 input channels (text to image, " +
            "image to image, inpainting); this model is a StableDiffusionInstructPix2PixPipeline whose UNet takes 8", e.Message);
    }

    [Fact]
    public void AFolderOfAnotherClassIsRefused()
    {
        var e = Assert.Throws<ConfigException>(() => StableDiffusionInstructPix2PixPipeline.FromPretrained(Golden.Path("tiny-sd")));
        log.WriteLine(e.Message);
        Assert.Contains("StableDiffusionPipeline", e.Message);
        Assert.Contains(StableDiffusionInstructPix2PixPipeline.Name, e.Message);
    }

    [Fact]
    public void AFolderWhoseUNetDoesNotTakeEightChannelsIsRefusedNamingInChannels()
    {
        using var dir = new TempDir();
        foreach (var f in Directory.GetFiles(Model, "*", SearchOption.AllDirectories))
        {
            string rel = Path.GetRelativePath(Model, f);
            string from = rel.StartsWith("unet", StringComparison.Ordinal) ? Golden.Path("tiny-sd", rel) : f;
            Directory.CreateDirectory(Path.GetDirectoryName(dir.File(rel))!);
            File.Copy(from, dir.File(rel));
        }
        string config = Path.Combine(dir.Path, "unet", "config.json");
        var e = Assert.Throws<ConfigException>(() => StableDiffusionInstructPix2PixPipeline.FromPretrained(dir.Path));
        Assert.Equal(
            $"{config}: config key 'in_channels': Incorrect configuration settings! The UNet's in_channels is 4, but " +
            "StableDiffusionInstructPix2PixPipeline feeds it num_channels_latents 4 + num_channels_image 4 = 8 (the latents and the image " +
            "latents, concatenated). Please verify the config of the UNet (an InstructPix2Pix UNet, such as timbrooks/instruct-pix2pix's, " +
            "takes 8) or your image input.", e.Message);
        Assert.Equal(config, e.FilePath);
        Assert.Equal("in_channels", e.Key);
    }

    [Fact]
    public void TheConstructorRefusesAFourChannelUNet()
    {
        using var sd = StableDiffusionPipeline.FromPretrained(Golden.Path("tiny-sd"));
        var e = Assert.Throws<ConfigException>(() => new StableDiffusionInstructPix2PixPipeline(sd.Vae, sd.TextEncoder, sd.Tokenizer, sd.Unet, sd.Scheduler));
        Assert.StartsWith("StableDiffusionInstructPix2PixPipeline: config key 'in_channels': Incorrect configuration settings! The UNet's in_channels is 4, but ",
            e.Message);
        Assert.Equal("in_channels", e.Key);
        Assert.Null(e.FilePath);
    }

    [Fact]
    public void AMissingImageIsAClearError()
    {
        using var pipe = StableDiffusionInstructPix2PixPipeline.FromPretrained(Model);
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate(Cat, numInferenceSteps: 2));
        Assert.Equal("StableDiffusionInstructPix2PixPipeline: an init image is required", e.Message);
    }

    [Fact]
    public void ANonFiniteImageGuidanceScaleIsRefused()
    {
        using var pipe = StableDiffusionInstructPix2PixPipeline.FromPretrained(Model);
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate(Cat, Init, numInferenceSteps: 2, imageGuidanceScale: double.NaN));
        Assert.Equal("StableDiffusionInstructPix2PixPipeline: image_guidance_scale must be a finite number, got NaN", e.Message);
    }

    [Fact]
    public void ImagesThatDoNotDivideThePromptBatchAreRefusedInDiffusersWords()
    {
        using var pipe = StableDiffusionInstructPix2PixPipeline.FromPretrained(Model);
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate(new[] { Cat, Cat, Cat }, new[] { Init, Init }, numInferenceSteps: 2));
        Assert.Equal("StableDiffusionInstructPix2PixPipeline: Cannot duplicate `image` of batch size 2 to 3 text prompts.", e.Message);
    }

    [Fact]
    public void TheStepEndCallbackSeesTheTripledImageLatentsAndTheThreeWayPromptBatch()
    {
        using var pipe = StableDiffusionInstructPix2PixPipeline.FromPretrained(Model);
        var seen = new List<string>();
        using var result = pipe.Generate(Cat, Init, numInferenceSteps: 2, seed: 0, outputType: OutputType.Latent,
            callbackOnStepEnd: (step, t, tensors) =>
            {
                var image = tensors["image_latents"];
                var embeds = tensors["prompt_embeds"];
                seen.Add($"{step}: image_latents [{string.Join(", ", image.shape)}], prompt_embeds [{string.Join(", ", embeds.shape)}], " +
                    $"uncond image zero {image[2].abs().max().item<float>() == 0}, image rows equal {(image[0] == image[1]).all().item<bool>()}, " +
                    $"negative rows equal {(embeds[1] == embeds[2]).all().item<bool>()}");
            });
        foreach (var line in seen) log.WriteLine(line);
        Assert.Equal(
        [
            "0: image_latents [3, 4, 32, 32], prompt_embeds [3, 77, 32], uncond image zero True, image rows equal True, negative rows equal True",
            "1: image_latents [3, 4, 32, 32], prompt_embeds [3, 77, 32], uncond image zero True, image rows equal True, negative rows equal True",
        ], seen);
    }
}
