using System.Text.Json.Nodes;
using DiffusersSharp.Imaging;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>
/// StableDiffusionXLControlNetImg2ImgPipeline against diffusers 0.25.1 (tests/golden/sdxl-controlnet-img2img, made by its
/// make.py): tiny-sdxl with the tiny SDXL ControlNet stored there, img2img-init.png as the image and controlnet-edges.png as
/// the control image, seed 0: diffusers' defaults (strength 0.8, conditioning scale 0.8), strength 0.5 with a guidance
/// window and negative micro-conditioning sizes, guess mode, and no guidance with two images per prompt. The prompt
/// embeddings are real transformers outputs stored in tiny-sdxl-expected.
/// </summary>
public class StableDiffusionXLControlNetImg2ImgPipelineTests(ITestOutputHelper log)
{
    internal const string Expected = "sdxl-controlnet-img2img/sdxl-controlnet-img2img-expected.safetensors";
    // whole trajectories (several steps of UNet + ControlNet): the bound of the other SD runs
    private const double Trajectory = 1e-4;

    internal static string ControlNetFolder => Golden.Path("sdxl-controlnet-img2img", "controlnet");

    internal static StableDiffusionXLControlNetImg2ImgPipeline Pipe() =>
        StableDiffusionXLControlNetImg2ImgPipeline.FromPretrained(StableDiffusionXLPipelineTests.Base, ControlNetModel.FromPretrained(ControlNetFolder));

    internal static Image Init => Image.Load(Golden.Path("img2img-init.png"));

    internal static Image Edges => Image.Load(Golden.Path("controlnet-edges.png"));

    private static ImagePipelineOutput Run(StableDiffusionXLControlNetImg2ImgPipeline pipe, string run)
    {
        using var f = Golden.Open(StableDiffusionXLPipelineTests.Expected);
        using var embeds = f.Load("pipeline/txt2img_default/unet_encoder_hidden_states");
        using var pooled = f.Load("pipeline/txt2img_default/unet_added_text_embeds");
        var (prompt, negative, pooledPrompt, negativePooled) = (embeds[1..], embeds[..1], pooled[1..], pooled[..1]);
        return run switch
        {
            "default" => pipe.Generate(image: Init, controlImage: [Edges], numInferenceSteps: 5, seed: 0, promptEmbeds: prompt,
                negativePromptEmbeds: negative, pooledPromptEmbeds: pooledPrompt, negativePooledPromptEmbeds: negativePooled,
                outputType: OutputType.Np),
            "strength0.5-window" => pipe.Generate(image: Init, controlImage: [Edges], numInferenceSteps: 8, strength: 0.5, seed: 0,
                promptEmbeds: prompt, negativePromptEmbeds: negative, pooledPromptEmbeds: pooledPrompt,
                negativePooledPromptEmbeds: negativePooled, outputType: OutputType.Np, controlnetConditioningScale: [0.6],
                controlGuidanceStart: [0.25], controlGuidanceEnd: [0.75], originalSize: (96, 80), cropsCoordsTopLeft: (4, 2),
                targetSize: (64, 48), negativeOriginalSize: (32, 40), negativeCropsCoordsTopLeft: (8, 8), negativeTargetSize: (56, 64)),
            "guess-mode" => pipe.Generate(image: Init, controlImage: [Edges], numInferenceSteps: 5, guidanceScale: 7.0, seed: 0,
                promptEmbeds: prompt, negativePromptEmbeds: negative, pooledPromptEmbeds: pooledPrompt,
                negativePooledPromptEmbeds: negativePooled, outputType: OutputType.Np, guessMode: true),
            "nocfg-2images" => pipe.Generate(image: Init, controlImage: [Edges], numInferenceSteps: 5, strength: 0.6, guidanceScale: 1.0,
                numImagesPerPrompt: 2, seed: 0, promptEmbeds: prompt, pooledPromptEmbeds: pooledPrompt, outputType: OutputType.Np),
            _ => throw new ArgumentException(run),
        };
    }

    [Theory]
    [InlineData("default", 4)]
    [InlineData("strength0.5-window", 4)]
    [InlineData("guess-mode", 4)]
    [InlineData("nocfg-2images", 3)]
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
    public void DiffusionPipelineLoadsTheClassFromAPipelineFolder()
    {
        using var dir = PipelineLoadOptionsTests.Copy(StableDiffusionXLPipelineTests.Base);
        foreach (var f in Directory.GetFiles(ControlNetFolder))
            File.Copy(f, Path.Combine(Directory.CreateDirectory(dir.File("controlnet")).FullName, Path.GetFileName(f)));
        var index = JsonNode.Parse(File.ReadAllText(dir.File("model_index.json")))!.AsObject();
        index["_class_name"] = StableDiffusionXLControlNetImg2ImgPipeline.Name;
        index["controlnet"] = new JsonArray("diffusers", "ControlNetModel");
        index["requires_aesthetics_score"] = false;
        File.WriteAllText(dir.File("model_index.json"), index.ToJsonString());
        using var pipe = DiffusionPipeline.FromPretrained(dir.Path);
        var p = Assert.IsType<StableDiffusionXLControlNetImg2ImgPipeline>(pipe);
        Assert.IsType<ControlNetModel>(p.Controlnet);
        Assert.Same(p.Controlnet, p.Components["controlnet"]);
        Assert.False(p.RequiresAestheticsScore);
    }

    [Fact]
    public void AnInitImageOfAnotherSizeThanTheControlImageIsRefused()
    {
        using var pipe = Pipe();
        var small = ImageResize.Resize(Init, 32, 48);
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate("a photo of a cat", small, [Edges], numInferenceSteps: 2));
        Assert.Equal("StableDiffusionXLControlNetImg2ImgPipeline: the init image is 48x32 (height x width) but the control image 64x64: pass height and width, or images of the same size", e.Message);
    }

    [Fact]
    public void AMissingControlImageOrStrengthOutOfRangeIsRefused()
    {
        using var pipe = Pipe();
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate("a photo of a cat", Init, null, numInferenceSteps: 2));
        Assert.Equal("StableDiffusionXLControlNetImg2ImgPipeline: a control_image is required for each of the 1 ControlNet(s)", e.Message);
        e = Assert.Throws<DiffusersException>(() => pipe.Generate("a photo of a cat", Init, [Edges], strength: 1.5, numInferenceSteps: 2));
        Assert.Contains("strength", e.Message);
        Assert.Contains("1.5", e.Message);
    }
}
