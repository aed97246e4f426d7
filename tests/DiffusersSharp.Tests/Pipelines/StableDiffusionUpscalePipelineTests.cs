using System.Text.Json.Nodes;
using DiffusersSharp.Generation;
using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>
/// <see cref="StableDiffusionUpscalePipeline"/> on tests/golden/tiny-sd-upscale against diffusers 0.25.1's
/// StableDiffusionUpscalePipeline (tests/golden/upscale: its README says how the data was made).
/// </summary>
public class StableDiffusionUpscalePipelineTests(ITestOutputHelper log)
{
    private const string Expected = "upscale/upscale-expected.safetensors";
    // a whole trajectory (the UNet and the VAE decode, step after step), as the other pipelines' golden runs
    private const double Trajectory = 1e-4;

    internal static string Model => Golden.Path("tiny-sd-upscale");

    private static Image LowRes(string name) => Image.Load(Golden.Path("upscale", name));

    /// <summary>tiny-sd's real-transformers embeddings of "a photo of a cat" (prompt 0) and "" (prompt 1).</summary>
    private static (Tensor Prompt, Tensor Negative) Embeds()
    {
        var hidden = Golden.Tensor("tiny-sd-expected.safetensors", "text_encoder/last_hidden_state");
        return (hidden.narrow(0, 0, 1).clone(), hidden.narrow(0, 1, 1).clone());
    }

    [Theory]
    [InlineData("ddim", "low-res-16x16.png", null, 4, 9.0, 20, 1, 0)]
    [InlineData("ddim_noise_level_150", "low-res-16x16.png", null, 4, 9.0, 150, 1, 1)]
    [InlineData("ddim_no_guidance", "low-res-16x16.png", null, 4, 1.0, 20, 1, 2)]
    [InlineData("ddim_two_per_prompt", "low-res-16x16.png", null, 3, 9.0, 20, 2, 3)]
    [InlineData("ddim_resized_18x14", "low-res-18x14.png", null, 3, 9.0, 20, 1, 4)]
    [InlineData("euler_ancestral", "low-res-16x16.png", EulerAncestralDiscreteScheduler.Name, 4, 9.0, 20, 1, 5)]
    public void UpscaleRunMatchesDiffusers(string run, string image, string? scheduler, int steps, double guidance, int noiseLevel,
        int perPrompt, long seed)
    {
        using var loaded = DiffusionPipeline.FromPretrained(Model);
        var pipe = Assert.IsType<StableDiffusionUpscalePipeline>(loaded);
        if (scheduler is not null)
        {
            using var own = pipe.Scheduler;
            pipe.Scheduler = SchedulerFactory.FromConfig(scheduler, own.Config);
        }
        using var trace = new SdTrace(pipe);
        var (prompt, negative) = Embeds();
        bool cfg = guidance > 1;
        using var result = pipe.Generate(image: LowRes(image), numInferenceSteps: steps, guidanceScale: guidance, noiseLevel: noiseLevel,
            numImagesPerPrompt: perPrompt, seed: seed, promptEmbeds: prompt, negativePromptEmbeds: cfg ? negative : null,
            outputType: OutputType.Np);
        using var g = new SafetensorsLike(Expected);
        string p = run + "/";
        SdTrace.Check(log, g, p + "image", trace.One("image"), 0);
        SdTrace.Check(log, g, p + "image_noise", trace.One("image_noise"), 0);
        SdTrace.Check(log, g, p + "noised_image", trace.One("noised_image"), Tol.ModelAbs);
        SdTrace.Check(log, g, p + "initial_latents", trace.One("initial_latents"), 0);
        using (var x = trace.Stacked("latents_after_step")) SdTrace.Check(log, g, p + "latents_after_step", x, Trajectory);
        using var images = torch.from_array(result.Array!.data<float>().ToArray()).reshape(result.Array.shape);
        SdTrace.Check(log, g, p + "images", images, Trajectory);
    }

    [Fact]
    public void DiffusionPipelineLoadsTheUpscalerWithBothSchedulersAndItsMaxNoiseLevel()
    {
        var logged = new List<string>();
        using var loaded = DiffusionPipeline.FromPretrained(Model, new LoadOptions { Log = logged.Add });
        var pipe = Assert.IsType<StableDiffusionUpscalePipeline>(loaded);
        Assert.Empty(logged);   // watermarker, safety_checker and feature_extractor are [null, null]
        Assert.Equal(350, pipe.MaxNoiseLevel);
        Assert.Equal(0.08333, pipe.VaeScalingFactor);
        Assert.Equal(4, pipe.VaeScaleFactor);
        Assert.Equal(DDIMScheduler.Name, pipe.Scheduler.ClassName);
        Assert.Equal(DDPMScheduler.Name, pipe.LowResScheduler.ClassName);
        Assert.Equal(["low_res_scheduler", "scheduler", "text_encoder", "tokenizer", "unet", "vae"],
            pipe.Components.Keys.Order(StringComparer.Ordinal));
        Assert.Same(pipe.LowResScheduler, pipe.Components["low_res_scheduler"]);
    }

    /// <summary>
    /// diffusers 0.25.1's StableDiffusionUpscalePipeline has TextualInversionLoaderMixin and LoraLoaderMixin but no
    /// IPAdapterMixin (and its call no ip_adapter_image): loading an IP-Adapter, which would do nothing, is refused by name.
    /// </summary>
    [Fact]
    public void LoadingAnIPAdapterIsRefusedAsDiffusersX4UpscalerHasNoIPAdapterMixin()
    {
        using var pipe = StableDiffusionUpscalePipeline.FromPretrained(Model);
        Assert.True(pipe.Supports(LoaderMixins.Lora | LoaderMixins.TextualInversion));
        Assert.False(pipe.Supports(LoaderMixins.IPAdapter));
        var e = Assert.Throws<DiffusersException>(() => pipe.LoadIPAdapter(Golden.Path("ip-adapter"), "", "ip-adapter-basic.bin"));
        Assert.Equal("StableDiffusionUpscalePipeline: LoadIPAdapter is not available: diffusers 0.25.1's StableDiffusionUpscalePipeline has no " +
            "load_ip_adapter (its class has no IPAdapterMixin)", e.Message);
        e = Assert.Throws<DiffusersException>(() => pipe.SetIPAdapterScale(0.5));
        Assert.Equal("StableDiffusionUpscalePipeline: SetIPAdapterScale is not available: diffusers 0.25.1's StableDiffusionUpscalePipeline has no " +
            "set_ip_adapter_scale (its class has no IPAdapterMixin)", e.Message);
        Assert.Null(pipe.ImageEncoder);
        Assert.Null(pipe.IPAdapterImageProjection);
    }

    [Fact]
    public void ItsOwnFromPretrainedLoadsTheFolderAndRefusesAnotherClass()
    {
        using (var pipe = StableDiffusionUpscalePipeline.FromPretrained(Model))
            Assert.Equal(7, pipe.Unet.Config.InChannels);
        var e = Assert.Throws<ConfigException>(() => StableDiffusionUpscalePipeline.FromPretrained(StableDiffusionPipelineTests.Model));
        string index = Path.Combine(StableDiffusionPipelineTests.Model, "model_index.json");
        Assert.Equal($"{index}: _class_name is \"StableDiffusionPipeline\", but StableDiffusionUpscalePipeline.FromPretrained needs a StableDiffusionUpscalePipeline folder", e.Message);
    }

    /// <summary>diffusers' constructor sets a VAE's scaling_factor other than 0.08333 to 0.08333, with a warning.</summary>
    [Fact]
    public void AVaeWithAnotherScalingFactorIsUsedWith0_08333AndAWarning()
    {
        using var folder = CopyModel();
        var vaeConfig = JsonNode.Parse(File.ReadAllText(folder.File("vae/config.json")))!.AsObject();
        vaeConfig["scaling_factor"] = 0.18215;
        File.WriteAllText(folder.File("vae/config.json"), vaeConfig.ToJsonString());
        var logged = new List<string>();
        using var pipe = StableDiffusionUpscalePipeline.FromPretrained(folder.Path, new LoadOptions { Log = logged.Add });
        Assert.Equal(["the VAE config's scaling_factor is 0.18215, which seems highly unlikely for StableDiffusionUpscalePipeline: using 0.08333, as diffusers does (fix 'scaling_factor' in vae/config.json)"],
            logged);
        Assert.Equal(0.08333, pipe.VaeScalingFactor);
        var (prompt, negative) = Embeds();
        using var result = pipe.Generate(image: LowRes("low-res-16x16.png"), numInferenceSteps: 4, seed: 0, promptEmbeds: prompt,
            negativePromptEmbeds: negative, outputType: OutputType.Np);
        using var g = new SafetensorsLike(Expected);
        using var images = torch.from_array(result.Array!.data<float>().ToArray()).reshape(result.Array.shape);
        SdTrace.Check(log, g, "ddim/images", images, Trajectory);
    }

    [Theory]
    [InlineData(351, "StableDiffusionUpscalePipeline: noise_level has to be <= 350 but is 351")]
    [InlineData(-1, "StableDiffusionUpscalePipeline: noise_level has to be >= 0 but is -1")]
    public void ANoiseLevelOutsideTheRangeIsRefused(int noiseLevel, string message)
    {
        using var pipe = StableDiffusionUpscalePipeline.FromPretrained(Model);
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate("a cat", LowRes("low-res-16x16.png"), numInferenceSteps: 1, noiseLevel: noiseLevel));
        Assert.Equal(message, e.Message);
    }

    [Fact]
    public void AMissingImageIsRefused()
    {
        using var pipe = StableDiffusionUpscalePipeline.FromPretrained(Model);
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate("a cat", numInferenceSteps: 1));
        Assert.Equal("StableDiffusionUpscalePipeline: image input cannot be undefined; pass the low-resolution image to upscale", e.Message);
    }

    [Fact]
    public void PromptsAndImagesOfDifferentBatchSizesAreRefused()
    {
        using var pipe = StableDiffusionUpscalePipeline.FromPretrained(Model);
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate(new[] { "a cat", "a dog" }, LowRes("low-res-16x16.png"), numInferenceSteps: 1));
        Assert.Equal("StableDiffusionUpscalePipeline: prompt has batch size 2 and image has batch size 1. Please make sure that passed prompt matches the batch size of image.", e.Message);
    }

    /// <summary>
    /// A UNet whose in_channels are not the latent channels plus the image's (tiny-sd's 4-channel UNet) is refused when
    /// the folder is loaded, naming its config (diffusers' check runs at the call; the image is always RGB).
    /// </summary>
    [Fact]
    public void AUnetWhoseInChannelsDoNotFitLatentsPlusImageIsRefused()
    {
        using var folder = CopyModel();
        foreach (var f in Directory.GetFiles(Golden.Path("tiny-sd", "unet")))
            File.Copy(f, Path.Combine(folder.File("unet"), Path.GetFileName(f)), overwrite: true);
        var e = Assert.Throws<ConfigException>(() => StableDiffusionUpscalePipeline.FromPretrained(folder.Path));
        string config = Path.Combine(folder.File("unet"), "config.json");
        Assert.Equal($"{config}: config key 'in_channels': incorrect configuration settings! The UNet's in_channels is 4, but " +
            "StableDiffusionUpscalePipeline feeds it num_channels_latents 4 + num_channels_image 3 = 7 (the latents and the RGB low-resolution " +
            "image, concatenated). Please verify the config of the UNet (an x4 upscaler UNet, such as stabilityai/stable-diffusion-x4-upscaler's, takes 7).",
            e.Message);
        Assert.Equal((config, "in_channels"), (e.FilePath, e.Key));
    }

    [Fact]
    public void AFolderWithoutALowResSchedulerIsAClearError()
    {
        using var folder = CopyModel();
        var index = JsonNode.Parse(File.ReadAllText(folder.File("model_index.json")))!.AsObject();
        index.Remove("low_res_scheduler");
        File.WriteAllText(folder.File("model_index.json"), index.ToJsonString());
        var e = Assert.Throws<ConfigException>(() => DiffusionPipeline.FromPretrained(folder.Path));
        Assert.StartsWith($"{folder.File("model_index.json")}: the pipeline has no 'low_res_scheduler' component", e.Message);
        Assert.Equal("low_res_scheduler", e.Key);
    }

    [Fact]
    public void AMaxNoiseLevelThatIsNotAnIntegerIsAClearErrorAndAnAbsentOneIs350()
    {
        using var folder = CopyModel();
        var index = JsonNode.Parse(File.ReadAllText(folder.File("model_index.json")))!.AsObject();
        index["max_noise_level"] = "high";
        File.WriteAllText(folder.File("model_index.json"), index.ToJsonString());
        var e = Assert.Throws<ConfigException>(() => DiffusionPipeline.FromPretrained(folder.Path));
        Assert.Equal($"{folder.File("model_index.json")}: config key 'max_noise_level': must be an integer ≥ 0, got \"high\"", e.Message);
        Assert.Equal("max_noise_level", e.Key);

        index["max_noise_level"] = 100;
        File.WriteAllText(folder.File("model_index.json"), index.ToJsonString());
        using (var pipe = StableDiffusionUpscalePipeline.FromPretrained(folder.Path))
        {
            Assert.Equal(100, pipe.MaxNoiseLevel);
            var refused = Assert.Throws<DiffusersException>(() => pipe.Generate("a cat", LowRes("low-res-16x16.png"), numInferenceSteps: 1, noiseLevel: 101));
            Assert.Equal("StableDiffusionUpscalePipeline: noise_level has to be <= 100 but is 101", refused.Message);
        }

        index.Remove("max_noise_level");
        File.WriteAllText(folder.File("model_index.json"), index.ToJsonString());
        using (var pipe = StableDiffusionUpscalePipeline.FromPretrained(folder.Path))
            Assert.Equal(350, pipe.MaxNoiseLevel);
    }

    [Fact]
    public void AWatermarkerComponentIsLoggedAndNotLoaded()
    {
        using var folder = CopyModel();
        var index = JsonNode.Parse(File.ReadAllText(folder.File("model_index.json")))!.AsObject();
        index["watermarker"] = new JsonArray("stable_diffusion", "Watermarker");
        File.WriteAllText(folder.File("model_index.json"), index.ToJsonString());
        var logged = new List<string>();
        using var pipe = DiffusionPipeline.FromPretrained(folder.Path, new LoadOptions { Log = logged.Add });
        Assert.Equal([$"{folder.File("model_index.json")}: the 'watermarker' component (stable_diffusion.Watermarker) is not loaded or run by DiffusersSharp"], logged);
        Assert.DoesNotContain("watermarker", pipe.Components.Keys);
    }

    /// <summary>The generation service (the server, IImageGenerator) runs text to image, image to image and inpainting only.</summary>
    [Fact]
    public void TheGenerationServiceRefusesTheUpscaler()
    {
        var e = Assert.Throws<DiffusersException>(() => GenerationService.Load(Model));
        Assert.Equal($"{Model}: the generation service runs Stable Diffusion pipelines whose UNet takes 4 or 9 input channels (text to image, image to image, inpainting); this model is a StableDiffusionUpscalePipeline whose UNet takes 7", e.Message);
    }

    private static TempDir CopyModel() => PipelineLoadOptionsTests.Copy(Model);
}
