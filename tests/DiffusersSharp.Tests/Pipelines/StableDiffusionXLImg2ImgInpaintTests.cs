using DiffusersSharp.Imaging;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>SDXL img2img, the refiner (aesthetic scores, denoising_start), base → refiner and inpainting (golden section F).</summary>
public class StableDiffusionXLImg2ImgInpaintTests(ITestOutputHelper log)
{
    private const string Expected = StableDiffusionXLPipelineTests.Expected;
    private static Image Init() => Image.Load(Golden.Path("img2img-init.png"));

    [Fact]
    public void Img2ImgOnTheBaseFolderMatchesDiffusers()
    {
        using var pipe = StableDiffusionXLImg2ImgPipeline.FromPretrained(StableDiffusionXLPipelineTests.Base);
        Assert.False(pipe.RequiresAestheticsScore);
        using var trace = new SdTrace(pipe);
        using var result = pipe.Generate("a photo of a cat", Init(), negativePrompt: "", strength: 0.6, numInferenceSteps: 4,
            guidanceScale: 5.0, outputType: OutputType.Np, seed: 4);
        StableDiffusionXLPipelineTests.CheckRun(log, trace, "img2img_strength0.6", result.Array!, fullUnetOutput: false);
    }

    [Fact]
    public void RefinerWithAestheticScoresMatchesDiffusers()
    {
        using var pipe = StableDiffusionXLImg2ImgPipeline.FromPretrained(StableDiffusionXLPipelineTests.Refiner);
        Assert.Null(pipe.TextEncoder);
        Assert.True(pipe.RequiresAestheticsScore);
        Assert.False(pipe.ForceZerosForEmptyPrompt);
        using var trace = new SdTrace(pipe);
        using var result = pipe.Generate("a photo of a cat", Init(), negativePrompt: "ugly", strength: 0.3, numInferenceSteps: 10,
            guidanceScale: 5.0, aestheticScore: 7.0, negativeAestheticScore: 2.0, outputType: OutputType.Np, seed: 5);
        StableDiffusionXLPipelineTests.CheckRun(log, trace, "refiner_strength0.3_aesthetic", result.Array!, fullUnetOutput: false);
        using var ids = trace.One("unet_added_time_ids");
        Assert.Equal(new float[] { 64, 64, 0, 0, 2, 64, 64, 0, 0, 7 }, ids.data<float>().ToArray());
    }

    [Fact]
    public void RefinerDenoisingStartOnTheRecordedBaseLatentsMatchesDiffusers()
    {
        using var pipe = StableDiffusionXLImg2ImgPipeline.FromPretrained(StableDiffusionXLPipelineTests.Refiner);
        using var trace = new SdTrace(pipe);
        using var latents = Golden.Tensor(Expected, "pipeline/txt2img_denoising_end0.8_latent/images");
        using var result = pipe.Generate("a lighthouse at dusk", latents, numInferenceSteps: 5, guidanceScale: 5.0,
            denoisingStart: 0.8, outputType: OutputType.Np, seed: 6);
        Assert.False(trace.Has("latent_noise"));
        StableDiffusionXLPipelineTests.CheckRun(log, trace, "refiner_denoising_start0.8", result.Array!, fullUnetOutput: false);
    }

    /// <summary>
    /// A refiner taking over at 0.8 with denoising_end 1 (a loop that ends the window at 1): diffusers ignores a
    /// denoising_end outside (0, 1) and runs to the end, diffusers' run without it.
    /// </summary>
    [Fact]
    public void RefinerDenoisingStartWithADenoisingEndOfOneRunsToTheEnd()
    {
        using var pipe = StableDiffusionXLImg2ImgPipeline.FromPretrained(StableDiffusionXLPipelineTests.Refiner);
        using var trace = new SdTrace(pipe);
        using var latents = Golden.Tensor(Expected, "pipeline/txt2img_denoising_end0.8_latent/images");
        using var result = pipe.Generate("a lighthouse at dusk", latents, numInferenceSteps: 5, guidanceScale: 5.0,
            denoisingStart: 0.8, denoisingEnd: 1.0, outputType: OutputType.Np, seed: 6);
        StableDiffusionXLPipelineTests.CheckRun(log, trace, "refiner_denoising_start0.8", result.Array!, fullUnetOutput: false);
    }

    /// <summary>
    /// diffusers 0.25.1 applies denoising_start outside (0, 1) as well (its denoising_value_valid guard is passed uncalled)
    /// and denoises the image latents without noise from the schedule's first timestep (every step for a first-order
    /// scheduler): garbage, so it is refused, in img2img and inpainting.
    /// </summary>
    [Theory]
    [InlineData(1.0)]
    [InlineData(0.0)]
    [InlineData(double.NaN)]
    public void DenoisingStartOutsideZeroToOneIsRefused(double denoisingStart)
    {
        string reason = double.IsNaN(denoisingStart) ? " (diffusers 0.25.1 fails on it: int(round(nan)))"
            : " (diffusers 0.25.1 takes it and denoises the image latents, without noise, from the schedule's first timestep)";
        using var img2img = StableDiffusionXLImg2ImgPipeline.FromPretrained(StableDiffusionXLPipelineTests.Refiner);
        using var latents = torch.zeros(1, 4, 32, 32);
        var e = Assert.Throws<DiffusersException>(() => img2img.Generate("x", latents, numInferenceSteps: 5, denoisingStart: denoisingStart));
        Assert.Equal($"StableDiffusionXLImg2ImgPipeline: denoising_start must be a fraction in (0, 1) of the schedule, got {denoisingStart}{reason}", e.Message);
        using var inpaint = StableDiffusionXLInpaintPipeline.FromPretrained(StableDiffusionXLPipelineTests.Base);
        var mask = Image.Load(Golden.Path("inpaint-mask.png"));
        e = Assert.Throws<DiffusersException>(() => inpaint.Generate("x", Init(), mask, numInferenceSteps: 5, denoisingStart: denoisingStart));
        Assert.Equal($"StableDiffusionXLInpaintPipeline: denoising_start must be a fraction in (0, 1) of the schedule, got {denoisingStart}{reason}", e.Message);
    }

    /// <summary>Inpainting with denoising_end 1: every step, diffusers' run without it.</summary>
    [Fact]
    public void InpaintWithADenoisingEndOfOneRunsEveryStep()
    {
        using var pipe = StableDiffusionXLInpaintPipeline.FromPretrained(StableDiffusionXLPipelineTests.Base);
        using var trace = new SdTrace(pipe);
        var mask = Image.Load(Golden.Path("inpaint-mask.png"));
        using var result = pipe.Generate("a red ball", Init(), mask, numInferenceSteps: 5, guidanceScale: 5.0, denoisingEnd: 1.0,
            outputType: OutputType.Np, seed: 7);
        StableDiffusionXLPipelineTests.CheckRun(log, trace, "inpaint_4ch_default_strength", result.Array!, fullUnetOutput: false);
    }

    [Fact]
    public void BaseThenRefinerEnsembleMatchesDiffusers()
    {
        using var basePipe = StableDiffusionXLPipeline.FromPretrained(StableDiffusionXLPipelineTests.Base);
        using var refiner = StableDiffusionXLImg2ImgPipeline.FromPretrained(StableDiffusionXLPipelineTests.Refiner);
        using var high = basePipe.Generate("a lighthouse at dusk", numInferenceSteps: 5, guidanceScale: 5.0, denoisingEnd: 0.8,
            height: 64, width: 64, outputType: OutputType.Latent, seed: 3);
        using var result = refiner.Generate("a lighthouse at dusk", high.Tensor!, numInferenceSteps: 5, guidanceScale: 5.0,
            denoisingStart: 0.8, outputType: OutputType.Np, seed: 6);
        using var g = new SafetensorsLike(Expected);
        SdTrace.CheckImages(log, g, "pipeline/refiner_denoising_start0.8/images", result.Array!);
    }

    [Fact]
    public void InpaintWithAFourChannelUNetAndTheDefaultStrengthMatchesDiffusers()
    {
        using var pipe = StableDiffusionXLInpaintPipeline.FromPretrained(StableDiffusionXLPipelineTests.Base);
        using var trace = new SdTrace(pipe);
        var mask = Image.Load(Golden.Path("inpaint-mask.png"));
        using var result = pipe.Generate("a red ball", Init(), mask, numInferenceSteps: 5, guidanceScale: 5.0,
            outputType: OutputType.Np, seed: 7);
        StableDiffusionXLPipelineTests.CheckRun(log, trace, "inpaint_4ch_default_strength", result.Array!, fullUnetOutput: false);
    }

    [Fact]
    public void InpaintWithDenoisingStartKeepsTheImageLatentsOutsideTheMask()
    {
        // denoising_start: the loop starts from the image latents themselves (diffusers' add_noise=False), which the 4-channel
        // blend also reads; with an all-black mask (keep everything) the last blend returns them exactly. Before, the loop
        // freed them after its first step and the second step's blend failed ("Tensor invalid -- empty handle").
        using var pipe = StableDiffusionXLInpaintPipeline.FromPretrained(StableDiffusionXLPipelineTests.Base);
        using var trace = new SdTrace(pipe);
        using var imageLatents = torch.randn(new long[] { 1, 4, 32, 32 }, generator: new Generator(11));
        var black = new Image(64, 64, 1, new byte[64 * 64]);
        using var result = pipe.Generate("a red ball", imageLatents, black, numInferenceSteps: 4, denoisingStart: 0.5, guidanceScale: 5.0,
            outputType: OutputType.Latent, seed: 7);
        Assert.Equal(2, trace.Count("latents_after_step")); // timesteps [751, 501, 251, 1] below 500: two steps
        Assert.Equal(0.0, Tol.MaxAbsDiff(result.Tensor!, imageLatents));
    }

    [Fact]
    public void DenoisingStartNotBelowDenoisingEndIsRefused()
    {
        using var pipe = StableDiffusionXLImg2ImgPipeline.FromPretrained(StableDiffusionXLPipelineTests.Refiner);
        using var latents = torch.zeros(1, 4, 32, 32);
        var e = Assert.Throws<DiffusersException>(() =>
            pipe.Generate("x", latents, numInferenceSteps: 5, denoisingStart: 0.8, denoisingEnd: 0.5));
        Assert.Contains("denoising_start 0.8 cannot be larger than or equal to denoising_end 0.5", e.Message);
    }

    [Fact]
    public void DiffusionPipelineDispatchesTheRefinerFolder()
    {
        using var pipe = DiffusionPipeline.FromPretrained(StableDiffusionXLPipelineTests.Refiner);
        Assert.IsType<StableDiffusionXLImg2ImgPipeline>(pipe);
        Assert.False(pipe.Components.ContainsKey("text_encoder"));
    }
}
