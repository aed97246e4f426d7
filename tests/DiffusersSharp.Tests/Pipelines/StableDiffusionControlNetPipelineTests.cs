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
/// The ControlNet pipelines against diffusers 0.25.1 (golden README section H): txt2img with the default scale, scale 0.5,
/// guess mode, a guidance window, two nets; img2img and inpaint with their default scales. Each run checks the
/// timesteps, the initial noise, the residuals the UNet received at the first call (conditional half: channel means,
/// stds and the 8×8 corner), the first UNet output, the final latents and the images.
/// </summary>
public class StableDiffusionControlNetPipelineTests(ITestOutputHelper log)
{
    private const string Expected = "tiny-sd-controlnet-expected.safetensors";
    // whole trajectories through PNDM (several steps of UNet + ControlNet): the same bound as the other SD runs
    private const double Trajectory = 1e-4;
    private const double Residual = 1e-5;

    internal static Image Edges => Image.Load(Golden.Path("controlnet-edges.png"));
    internal static Image Scribble => Image.Load(Golden.Path("controlnet-scribble.png"));

    internal static StableDiffusionControlNetPipeline LoadTxt2Img(int nets = 1) =>
        StableDiffusionControlNetPipeline.FromPretrained(StableDiffusionPipelineTests.Model,
            nets == 1 ? ControlNetModelGoldenTests.LoadTiny()
                : new MultiControlNetModel(Enumerable.Range(0, nets).Select(_ => ControlNetModelGoldenTests.LoadTiny())));

    /// <summary>Checks one run's recorded tensors and output against the golden keys of <paramref name="run"/>.</summary>
    internal static void CheckRun(ITestOutputHelper log, string run, SdTrace trace, ImagePipelineOutput result)
    {
        using var g = new SafetensorsLike(Expected);
        string p = $"pipeline/{run}/";
        using (var ts = g.Load(p + "timesteps"))
            Assert.Equal(ts.shape[0], trace.Count("unet_output"));
        for (int j = 0; j < 6; j++) CheckSummaries(log, g, $"{p}step0_down_residual_{j}", trace.First($"down_residual_{j}"));
        CheckSummaries(log, g, $"{p}step0_mid_residual", trace.First("mid_residual"));
        SdTrace.Check(log, g, p + "unet_output_step0", trace.First("unet_output"), Trajectory);
        SdTrace.Check(log, g, p + "final_latents", trace.One("latents_after_step"), Trajectory);
        SdTrace.CheckImages(log, g, p + "images", result.Array!);
    }

    /// <summary>The conditional half's #chmean / #chstd / #corner8 against the golden summaries.</summary>
    private static void CheckSummaries(ITestOutputHelper log, SafetensorsLike g, string key, Tensor residual)
    {
        using var cond = residual.chunk(2)[^1];
        using var mean = cond.mean([0, 2, 3]);
        using var std = cond.std([0, 2, 3], unbiased: true);
        using var corner = cond[.., .., ..8, ..8];
        SdTrace.Check(log, g, key + "#chmean", mean, Residual);
        SdTrace.Check(log, g, key + "#chstd", std, Residual);
        SdTrace.Check(log, g, key + "#corner8", corner, Residual);
    }

    [Theory]
    [InlineData("cn_default", 4, null, false, null, null)]
    [InlineData("cn_scale0.5", 4, 0.5, false, null, null)]
    [InlineData("cn_guess_mode", 4, null, true, null, null)]
    [InlineData("cn_guidance_start0.2_end0.8", 5, null, false, 0.2, 0.8)]
    public void TextToImageRunsMatchDiffusers(string run, int steps, double? scale, bool guessMode, double? start, double? end)
    {
        using var pipe = LoadTxt2Img();
        using var trace = new SdTrace(pipe);
        using var result = pipe.Generate("a photo of a cat", [Edges], height: 64, width: 64, numInferenceSteps: steps,
            guidanceScale: 7.5, negativePrompt: "", seed: 0, outputType: OutputType.Np,
            controlnetConditioningScale: scale is double s ? [s] : null, guessMode: guessMode,
            controlGuidanceStart: start is double a ? [a] : null, controlGuidanceEnd: end is double b ? [b] : null);
        using var g = new SafetensorsLike(Expected);
        SdTrace.Check(log, g, "inputs/edges", trace.First("control_image").narrow(0, 0, 1), 0);
        Assert.Equal(guessMode ? 1 : 2, trace.First("control_image").shape[0]);
        CheckRun(log, run, trace, result);
        // PNDM's init_noise_sigma is 1: the initial latents are the draw
        SdTrace.Check(log, g, "pipeline/cn_default/latent_noise", trace.One("initial_latents"), 0);
    }

    [Fact]
    public void TwoNetsSumTheirResidualsWithPerNetScalesAndWindows()
    {
        using var pipe = LoadTxt2Img(nets: 2);
        using var trace = new SdTrace(pipe);
        using var result = pipe.Generate("a photo of a cat", [Edges, Scribble], height: 64, width: 64, numInferenceSteps: 4,
            guidanceScale: 7.5, negativePrompt: "", seed: 0, outputType: OutputType.Np,
            controlnetConditioningScale: [1.0, 0.6], controlGuidanceStart: [0.0, 0.4], controlGuidanceEnd: [0.6, 1.0]);
        CheckRun(log, "multi_cn_same_net_twice", trace, result);
    }

    [Fact]
    public void ImageToImageWithTheDefaultScaleMatchesDiffusers()
    {
        using var pipe = StableDiffusionControlNetImg2ImgPipeline.FromPretrained(StableDiffusionPipelineTests.Model, ControlNetModelGoldenTests.LoadTiny());
        using var trace = new SdTrace(pipe);
        var init = Image.Load(Golden.Path("img2img-init.png")).ToRgb();
        using var result = pipe.Generate("a photo of a cat", init, [Scribble], strength: 0.6, numInferenceSteps: 5,
            guidanceScale: 7.5, negativePrompt: "", seed: 2, outputType: OutputType.Np);
        using var g = new SafetensorsLike(Expected);
        SdTrace.Check(log, g, "pipeline/cn_img2img_default_scale/latent_noise", trace.One("noise"), 0);
        CheckRun(log, "cn_img2img_default_scale", trace, result);
    }

    [Fact]
    public void ImageToImageTakesAGrayscaleInitImageAsItsRgbCopy()
    {
        // diffusers' ControlNet img2img builds its image_processor with do_convert_rgb=True: an "L" image is replicated
        // to RGB after the resize (the same pixels as before it), where the plain img2img pipeline would fail in the VAE
        using var pipe = StableDiffusionControlNetImg2ImgPipeline.FromPretrained(StableDiffusionPipelineTests.Model, ControlNetModelGoldenTests.LoadTiny());
        var gray = Image.Load(Golden.Path("img2img-init.png"), grayscale: true);
        using var fromGray = pipe.Generate("a cat", gray, [Scribble], strength: 0.5, numInferenceSteps: 2, seed: 4, outputType: OutputType.Np);
        using var fromRgb = pipe.Generate("a cat", gray.ToRgb(), [Scribble], strength: 0.5, numInferenceSteps: 2, seed: 4, outputType: OutputType.Np);
        Assert.Equal(1, gray.Channels);
        Assert.True(fromGray.Array!.equal(fromRgb.Array!).all().item<bool>());
    }

    [Fact]
    public void InpaintingWithANineChannelUNetAndTheDefaultScaleMatchesDiffusers()
    {
        using var folder = StableDiffusionImg2ImgInpaintTests.AssembleInpaintFolder();
        using var pipe = StableDiffusionControlNetInpaintPipeline.FromPretrained(folder.Path, ControlNetModelGoldenTests.LoadTiny());
        Assert.Equal(9, pipe.Unet.Config.InChannels);
        using var trace = new SdTrace(pipe);
        var init = Image.Load(Golden.Path("img2img-init.png")).ToRgb();
        var mask = Image.Load(Golden.Path("inpaint-mask.png"));
        using var result = pipe.Generate("a red ball", init, mask, [Edges], numInferenceSteps: 4, guidanceScale: 7.5,
            seed: 3, outputType: OutputType.Np);
        using var g = new SafetensorsLike(Expected);
        SdTrace.Check(log, g, "pipeline/cn_inpaint_9ch_default_scale/latent_noise", trace.One("noise"), 0);
        CheckRun(log, "cn_inpaint_9ch_default_scale", trace, result);
    }

    /// <summary>A pipeline folder as diffusers' save_pretrained writes it: tiny-sd's components plus controlnet/ (and controlnet_1/).</summary>
    private static TempDir SavedFolder(string className, int nets)
    {
        var dir = new TempDir();
        foreach (var sub in Directory.GetDirectories(Golden.Path("tiny-sd")))
        {
            string target = Path.Combine(dir.Path, Path.GetFileName(sub));
            Directory.CreateDirectory(target);
            foreach (var f in Directory.GetFiles(sub)) File.Copy(f, Path.Combine(target, Path.GetFileName(f)));
        }
        var index = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Golden.Path("tiny-sd", "model_index.json")))!.AsObject();
        index["_class_name"] = className;
        index["controlnet"] = new System.Text.Json.Nodes.JsonArray("diffusers", nets == 1 ? "ControlNetModel" : "MultiControlNetModel");
        File.WriteAllText(dir.File("model_index.json"), index.ToJsonString());
        for (int k = 0; k < nets; k++)
        {
            string target = dir.File(k == 0 ? "controlnet" : $"controlnet_{k}");
            Directory.CreateDirectory(target);
            foreach (var f in Directory.GetFiles(Golden.Path("tiny-sd-controlnet"))) File.Copy(f, Path.Combine(target, Path.GetFileName(f)));
        }
        return dir;
    }

    [Fact]
    public void DiffusionPipelineLoadsSavedControlNetFoldersByClassName()
    {
        using (var single = SavedFolder(StableDiffusionControlNetImg2ImgPipeline.Name, 1))
        using (var pipe = DiffusionPipeline.FromPretrained(single.Path))
        {
            var cn = Assert.IsType<StableDiffusionControlNetImg2ImgPipeline>(pipe);
            Assert.IsType<ControlNetModel>(cn.Controlnet);
            Assert.Same(cn.Controlnet, cn.Components["controlnet"]);
        }
        using var two = SavedFolder(StableDiffusionControlNetPipeline.Name, 2);
        using var multi = Assert.IsType<StableDiffusionControlNetPipeline>(DiffusionPipeline.FromPretrained(two.Path));
        Assert.IsType<MultiControlNetModel>(multi.Controlnet);
        Assert.Equal(2, multi.Nets.Count);
        using var trace = new SdTrace(multi);
        using var result = multi.Generate("a photo of a cat", [Edges, Scribble], height: 64, width: 64, numInferenceSteps: 4,
            guidanceScale: 7.5, negativePrompt: "", seed: 0, outputType: OutputType.Np,
            controlnetConditioningScale: [1.0, 0.6], controlGuidanceStart: [0.0, 0.4], controlGuidanceEnd: [0.6, 1.0]);
        using var g = new SafetensorsLike(Expected);
        SdTrace.CheckImages(log, g, "pipeline/multi_cn_same_net_twice/images", result.Array!);

        var e = Assert.Throws<ConfigException>(() => StableDiffusionControlNetPipeline.FromPretrained(StableDiffusionPipelineTests.Model));
        Assert.Contains("_class_name is \"StableDiffusionPipeline\", but StableDiffusionControlNetPipeline.FromPretrained needs a StableDiffusionControlNetPipeline folder", e.Message);
    }

    /// <summary>
    /// With controlnet_conditioning_scale 0 every residual is zero and the runs are the plain pipelines' (the nets still
    /// run, drawing nothing): txt2img reproduces diffusers' StableDiffusionPipeline run, and ControlNet inpainting with a
    /// 4-channel UNet (the blend path, which no golden ControlNet run covers) reproduces StableDiffusionInpaintPipeline.
    /// </summary>
    [Fact]
    public void WithScaleZeroTheRunsAreThePlainPipelines()
    {
        using (var pipe = LoadTxt2Img())
        using (var result = pipe.Generate("a photo of a cat", [Edges], height: 64, width: 64, numInferenceSteps: 5,
                   guidanceScale: 7.5, negativePrompt: "", seed: 0, outputType: OutputType.Np, controlnetConditioningScale: [0.0]))
        using (var g = new SafetensorsLike("tiny-sd-expected.safetensors"))
            SdTrace.CheckImages(log, g, "pipeline/pndm_default/images", result.Array!);

        var init = Image.Load(Golden.Path("img2img-init.png")).ToRgb();
        var mask = Image.Load(Golden.Path("inpaint-mask.png"));
        using var plain = StableDiffusionInpaintPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        Assert.Equal(4, plain.Unet.Config.InChannels);
        using var expected = plain.Generate("a red ball", init, mask, strength: 0.75, height: 64, width: 64, numInferenceSteps: 3,
            seed: 4, outputType: OutputType.Np);
        using var cn = StableDiffusionControlNetInpaintPipeline.FromPretrained(StableDiffusionPipelineTests.Model, ControlNetModelGoldenTests.LoadTiny());
        using var actual = cn.Generate("a red ball", init, mask, [Edges], strength: 0.75, numInferenceSteps: 3, seed: 4,
            outputType: OutputType.Np, controlnetConditioningScale: [0.0]);
        Assert.Equal(0.0, Tol.MaxAbsDiff(actual.Array!, expected.Array!));
        using var guided = cn.Generate("a red ball", init, mask, [Edges], strength: 0.75, numInferenceSteps: 3, seed: 4, outputType: OutputType.Np);
        Assert.True(Tol.MaxAbsDiff(guided.Array!, expected.Array!) > 1.0 / 255, "the default scale 0.5 must change the inpainted image");
    }
}
