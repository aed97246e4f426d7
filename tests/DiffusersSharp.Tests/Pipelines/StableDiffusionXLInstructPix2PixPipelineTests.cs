using System.Text.Json.Nodes;
using DiffusersSharp.Imaging;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Support;
using Xunit.Abstractions;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>
/// StableDiffusionXLInstructPix2PixPipeline against diffusers 0.25.1 (tests/golden/sdxl-instruct-pix2pix, made by its make.py):
/// tiny-sdxl with the tiny 8-channel UNet stored there, img2img-init.png as the image, seed 0: diffusers' default guidance
/// (5 / 1.5, three-way, Euler in sigma space), guidance 7.5 with image_guidance_scale 1 (still three-way), guidance_rescale
/// and micro-conditioning, no guidance (guidance 1) with two images per prompt, and DDIM. The prompt embeddings are real
/// transformers outputs stored in tiny-sdxl-expected.
/// </summary>
public class StableDiffusionXLInstructPix2PixPipelineTests(ITestOutputHelper log)
{
    internal const string Expected = "sdxl-instruct-pix2pix/sdxl-instruct-pix2pix-expected.safetensors";
    // whole trajectories (a few steps of a random UNet): the bound of the other SD runs
    private const double Trajectory = 1e-4;

    /// <summary>tiny-sdxl with the 8-channel UNet and <see cref="StableDiffusionXLInstructPix2PixPipeline.Name"/> as its class.</summary>
    internal static TempDir Folder()
    {
        var dir = PipelineLoadOptionsTests.Copy(StableDiffusionXLPipelineTests.Base);
        foreach (var f in Directory.GetFiles(Golden.Path("sdxl-instruct-pix2pix", "unet")))
            File.Copy(f, Path.Combine(dir.File("unet"), Path.GetFileName(f)), overwrite: true);
        var index = JsonNode.Parse(File.ReadAllText(dir.File("model_index.json")))!.AsObject();
        index["_class_name"] = StableDiffusionXLInstructPix2PixPipeline.Name;
        File.WriteAllText(dir.File("model_index.json"), index.ToJsonString());
        return dir;
    }

    private static Image Init => Image.Load(Golden.Path("img2img-init.png"));

    private static ImagePipelineOutput Run(StableDiffusionXLInstructPix2PixPipeline pipe, string run)
    {
        using var f = Golden.Open(StableDiffusionXLPipelineTests.Expected);
        using var embeds = f.Load("pipeline/txt2img_default/unet_encoder_hidden_states");
        using var pooled = f.Load("pipeline/txt2img_default/unet_added_text_embeds");
        var (prompt, negative, pooledPrompt, negativePooled) = (embeds[1..], embeds[..1], pooled[1..], pooled[..1]);
        return run switch
        {
            "default" => pipe.Generate(image: Init, numInferenceSteps: 2, seed: 0, promptEmbeds: prompt, negativePromptEmbeds: negative,
                pooledPromptEmbeds: pooledPrompt, negativePooledPromptEmbeds: negativePooled, outputType: OutputType.Np),
            "image-guidance-1-rescale" => pipe.Generate(image: Init, numInferenceSteps: 2, guidanceScale: 7.5, imageGuidanceScale: 1.0,
                guidanceRescale: 0.7, originalSize: (96, 80), cropsCoordsTopLeft: (4, 2), targetSize: (64, 48), seed: 0,
                promptEmbeds: prompt, negativePromptEmbeds: negative, pooledPromptEmbeds: pooledPrompt,
                negativePooledPromptEmbeds: negativePooled, outputType: OutputType.Np),
            "nocfg-2images" => pipe.Generate(image: Init, numInferenceSteps: 2, guidanceScale: 1.0, numImagesPerPrompt: 2, seed: 0,
                promptEmbeds: prompt, pooledPromptEmbeds: pooledPrompt, outputType: OutputType.Np),
            "ddim" => pipe.Generate(image: Init, numInferenceSteps: 3, guidanceScale: 7.5, imageGuidanceScale: 1.5, seed: 0,
                promptEmbeds: prompt, negativePromptEmbeds: negative, pooledPromptEmbeds: pooledPrompt,
                negativePooledPromptEmbeds: negativePooled, outputType: OutputType.Np),
            _ => throw new ArgumentException(run),
        };
    }

    [Fact]
    public void RunsMatchDiffusers()
    {
        using var dir = Folder();
        using var pipe = Assert.IsType<StableDiffusionXLInstructPix2PixPipeline>(DiffusionPipeline.FromPretrained(dir.Path));
        using var g = new SafetensorsLike(Expected);
        var euler = pipe.Scheduler;
        using var ddim = DiffusersSharp.Schedulers.DDIMScheduler.FromConfig(euler.Config);
        foreach (var (run, unetCalls, unetBatch) in new[] { ("default", 2, 3), ("image-guidance-1-rescale", 2, 3), ("nocfg-2images", 2, 2), ("ddim", 3, 3) })
        {
            pipe.Scheduler = run == "ddim" ? ddim : euler;
            using var trace = new SdTrace(pipe);
            using var result = Run(pipe, run);
            Assert.Equal(unetCalls, trace.Stacked("latents_after_step").shape[0]);
            Assert.Equal(unetBatch, trace.One("unet_added_time_ids").shape[0]);
            SdTrace.Check(log, g, $"pipeline/{run}/unet_added_time_ids", trace.One("unet_added_time_ids"), 0.0);
            SdTrace.Check(log, g, $"pipeline/{run}/latents", trace.One("latents_after_step"), Trajectory);
            SdTrace.CheckImages(log, g, $"pipeline/{run}/image", result.Array!);
        }
        pipe.Scheduler = euler;
    }

    [Fact]
    public void AnImageOfAnotherSizeThanHeightAndWidthIsRefused()
    {
        using var dir = Folder();
        using var pipe = StableDiffusionXLInstructPix2PixPipeline.FromPretrained(dir.Path);
        var small = ImageResize.Resize(Init, 32, 48);
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate("make it snowy", small, numInferenceSteps: 1));
        Assert.Equal("StableDiffusionXLInstructPix2PixPipeline: the image is 48x32 (height x width), but height and width are 64x64 " +
            "(the UNet's sample_size × vae_scale_factor): the latents and the image latents are concatenated, so pass height and " +
            "width of the image's size", e.Message);
        e = Assert.Throws<DiffusersException>(() => pipe.Generate("make it snowy", Init, numInferenceSteps: 1, imageGuidanceScale: double.NaN));
        Assert.Equal("StableDiffusionXLInstructPix2PixPipeline: image_guidance_scale must be a finite number, got NaN", e.Message);
    }

    [Fact]
    public void AFourChannelUnetIsRefusedNamingItsConfig()
    {
        using var dir = PipelineLoadOptionsTests.Copy(StableDiffusionXLPipelineTests.Base);
        var index = JsonNode.Parse(File.ReadAllText(dir.File("model_index.json")))!.AsObject();
        index["_class_name"] = StableDiffusionXLInstructPix2PixPipeline.Name;
        File.WriteAllText(dir.File("model_index.json"), index.ToJsonString());
        var e = Assert.Throws<ConfigException>(() => DiffusionPipeline.FromPretrained(dir.Path));
        Assert.Equal("in_channels", e.Key);
        Assert.Equal(Path.Combine(dir.Path, "unet", "config.json"), e.FilePath);
        Assert.Contains("The UNet's in_channels is 4, but StableDiffusionXLInstructPix2PixPipeline feeds it num_channels_latents 4 + num_channels_image 4 = 8", e.Message);
    }
}
