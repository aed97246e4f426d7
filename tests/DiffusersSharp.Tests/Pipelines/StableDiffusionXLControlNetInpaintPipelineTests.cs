using DiffusersSharp.Imaging;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>
/// StableDiffusionXLControlNetInpaintPipeline against diffusers 0.25.1 (tests/golden/sdxl-controlnet-inpaint, made by its
/// make.py): tiny-sdxl (4-channel UNet) with the tiny SDXL ControlNet of tests/golden/sdxl-controlnet-img2img,
/// img2img-init.png, inpaint-mask.png and controlnet-edges.png, seed 0: diffusers' defaults (strength 0.9999, scale 1.0),
/// strength 0.6 in guess mode with a guidance window and micro-conditioning (whose negative row is the positive one), and
/// no guidance with two images per prompt at strength 1. The prompt embeddings are real transformers outputs stored in
/// tiny-sdxl-expected.
/// </summary>
public class StableDiffusionXLControlNetInpaintPipelineTests(ITestOutputHelper log)
{
    internal const string Expected = "sdxl-controlnet-inpaint/sdxl-controlnet-inpaint-expected.safetensors";
    // whole trajectories (several steps of UNet + ControlNet): the bound of the other SD runs
    private const double Trajectory = 1e-4;

    internal static StableDiffusionXLControlNetInpaintPipeline Pipe() =>
        StableDiffusionXLControlNetInpaintPipeline.FromPretrained(StableDiffusionXLPipelineTests.Base,
            ControlNetModel.FromPretrained(StableDiffusionXLControlNetImg2ImgPipelineTests.ControlNetFolder));

    private static Image Mask => Image.Load(Golden.Path("inpaint-mask.png"));

    private static ImagePipelineOutput Run(StableDiffusionXLControlNetInpaintPipeline pipe, string run)
    {
        using var f = Golden.Open(StableDiffusionXLPipelineTests.Expected);
        using var embeds = f.Load("pipeline/txt2img_default/unet_encoder_hidden_states");
        using var pooled = f.Load("pipeline/txt2img_default/unet_added_text_embeds");
        var (prompt, negative, pooledPrompt, negativePooled) = (embeds[1..], embeds[..1], pooled[1..], pooled[..1]);
        var (init, edges) = (StableDiffusionXLControlNetImg2ImgPipelineTests.Init, StableDiffusionXLControlNetImg2ImgPipelineTests.Edges);
        return run switch
        {
            "default" => pipe.Generate(image: init, maskImage: Mask, controlImage: [edges], numInferenceSteps: 5, seed: 0,
                promptEmbeds: prompt, negativePromptEmbeds: negative, pooledPromptEmbeds: pooledPrompt,
                negativePooledPromptEmbeds: negativePooled, outputType: OutputType.Np),
            "strength0.6-guess-window" => pipe.Generate(image: init, maskImage: Mask, controlImage: [edges], numInferenceSteps: 5,
                strength: 0.6, seed: 0, promptEmbeds: prompt, negativePromptEmbeds: negative, pooledPromptEmbeds: pooledPrompt,
                negativePooledPromptEmbeds: negativePooled, outputType: OutputType.Np, guessMode: true,
                controlnetConditioningScale: [0.7], controlGuidanceEnd: [0.5], originalSize: (96, 80), cropsCoordsTopLeft: (4, 2),
                targetSize: (64, 48)),
            "nocfg-2images-strength1" => pipe.Generate(image: init, maskImage: Mask, controlImage: [edges], numInferenceSteps: 5,
                strength: 1.0, guidanceScale: 1.0, numImagesPerPrompt: 2, seed: 0, promptEmbeds: prompt, pooledPromptEmbeds: pooledPrompt,
                outputType: OutputType.Np),
            _ => throw new ArgumentException(run),
        };
    }

    [Theory]
    [InlineData("default", 4)]
    [InlineData("strength0.6-guess-window", 3)]
    [InlineData("nocfg-2images-strength1", 5)]
    public void RunsMatchDiffusers(string run, int unetCalls)
    {
        using var pipe = Pipe();
        using var trace = new SdTrace(pipe);
        using var result = Run(pipe, run);
        Assert.Equal(unetCalls, trace.Stacked("latents_after_step").shape[0]);
        using var g = new SafetensorsLike(Expected);
        SdTrace.Check(log, g, $"pipeline/{run}/unet_added_time_ids", trace.First("unet_added_time_ids"), 0.0);
        SdTrace.Check(log, g, $"pipeline/{run}/latents", trace.One("latents_after_step"), Trajectory);
        SdTrace.CheckImages(log, g, $"pipeline/{run}/image", result.Array!);
    }

    [Fact]
    public void DiffusionPipelineKnowsTheClass() =>
        Assert.Contains(StableDiffusionXLControlNetInpaintPipeline.Name, DiffusionPipeline.KnownClasses);

    [Fact]
    public void AControlImageOfAnotherSizeThanTheImageOrAMissingMaskIsRefused()
    {
        using var pipe = Pipe();
        var init = StableDiffusionXLControlNetImg2ImgPipelineTests.Init;
        var small = ImageResize.Resize(StableDiffusionXLControlNetImg2ImgPipelineTests.Edges, 48, 32);
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate("a photo of a cat", init, Mask, [small], numInferenceSteps: 2));
        Assert.Equal("StableDiffusionXLControlNetInpaintPipeline: the init image is 64x64 (height x width) but the control image 32x48: pass height and width, or images of the same size", e.Message);
        e = Assert.Throws<DiffusersException>(() => pipe.Generate("a photo of a cat", init, default, [StableDiffusionXLControlNetImg2ImgPipelineTests.Edges], numInferenceSteps: 2));
        Assert.Contains("mask", e.Message);
    }
}
