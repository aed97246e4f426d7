using DiffusersSharp.Imaging;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>
/// The pipelines' <c>timesteps</c> (diffusers' <c>retrieve_timesteps</c>) and the inpaint pipelines' <c>masked_image_latents</c>
/// against diffusers 0.25.1 (tests/golden/custom-timesteps, made by its make.py): SD txt2img with LCMScheduler timesteps
/// [999, 759, 499, 259] at guidance 1 and DDPM custom timesteps with guidance, img2img with custom timesteps at strength
/// 0.6 (DDPM and LCM), the 9-channel inpaint pipeline given masked image latents (PNDM, and DDPM custom timesteps at
/// strength 0.6), SDXL txt2img with LCM timesteps; and the refusal of a scheduler without custom timesteps.
/// </summary>
public class CustomTimestepsPipelineTests(ITestOutputHelper log)
{
    private const string Expected = "custom-timesteps/custom-timesteps-expected.safetensors";
    // whole trajectories (several steps): the bound of the other SD runs
    private const double Trajectory = 1e-4;

    private static readonly long[] Lcm = [999, 759, 499, 259];

    private static long[] Parse(string csv) => csv.Split(',').Select(long.Parse).ToArray();

    private static void UseScheduler(StableDiffusionPipelineBase pipe, string name)
    {
        var loaded = pipe.Scheduler;
        pipe.Scheduler = SchedulerFactory.FromConfig(name, loaded.Config);
        loaded.Dispose();
    }

    private static (Tensor Prompt, Tensor Negative) SdEmbeds()
    {
        using var f = Golden.Open("tiny-sd-expected.safetensors");
        return (f.Load("pipeline/pndm_default/prompt_embeds"), f.Load("pipeline/pndm_default/negative_prompt_embeds"));
    }

    /// <summary>The final latents, the image and the timestep of every step against run <paramref name="run"/>.</summary>
    private void CheckRun(string run, SdTrace trace, ImagePipelineOutput result, List<long> steps)
    {
        using var g = new SafetensorsLike(Expected);
        using (var ts = g.Load($"pipeline/{run}/unet_timesteps")) Assert.Equal(ts.data<long>().ToArray(), steps);
        SdTrace.Check(log, g, $"pipeline/{run}/latents", trace.One("latents_after_step"), Trajectory);
        SdTrace.CheckImages(log, g, $"pipeline/{run}/image", result.Array!);
    }

    private static StepEndCallback Collect(List<long> steps) => (_, t, _) => steps.Add((long)t);

    [Theory]
    [InlineData("sd-lcm", LCMScheduler.Name, "999,759,499,259", 1.0)]
    [InlineData("sd-ddpm-cfg", DDPMScheduler.Name, "900,700,450,200,50", 7.5)]
    public void TextToImageWithCustomTimestepsMatchesDiffusers(string run, string scheduler, string timesteps, double guidance)
    {
        using var pipe = StableDiffusionPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        UseScheduler(pipe, scheduler);
        using var trace = new SdTrace(pipe);
        var (prompt, negative) = SdEmbeds();
        var steps = new List<long>();
        using var result = pipe.Generate(promptEmbeds: prompt, negativePromptEmbeds: guidance > 1 ? negative : null, height: 32, width: 32,
            guidanceScale: guidance, seed: 0, outputType: OutputType.Np, callbackOnStepEnd: Collect(steps), timesteps: Parse(timesteps));
        CheckRun(run, trace, result, steps);
    }

    [Theory]
    [InlineData("img2img-ddpm-cfg", DDPMScheduler.Name, "999,799,599,399,199", 7.5)]
    [InlineData("img2img-lcm", LCMScheduler.Name, "999,759,499,259", 1.0)]
    public void ImageToImageTakesStrengthOfTheCustomTimestepsAsDiffusers(string run, string scheduler, string timesteps, double guidance)
    {
        using var pipe = StableDiffusionImg2ImgPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        UseScheduler(pipe, scheduler);
        using var trace = new SdTrace(pipe);
        var (prompt, negative) = SdEmbeds();
        var steps = new List<long>();
        using var result = pipe.Generate(image: Image.Load(Golden.Path("img2img-init.png")), strength: 0.6, promptEmbeds: prompt,
            negativePromptEmbeds: guidance > 1 ? negative : null, guidanceScale: guidance, seed: 0, outputType: OutputType.Np,
            callbackOnStepEnd: Collect(steps), timesteps: Parse(timesteps));
        CheckRun(run, trace, result, steps);
    }

    [Theory]
    [InlineData("inpaint-masked-latents", null)]
    [InlineData("inpaint-masked-latents-ddpm", "999,799,599,399,199")]
    public void InpaintingWithMaskedImageLatentsUsesThemAndEncodesNoMaskedImage(string run, string? timesteps)
    {
        using var folder = StableDiffusionImg2ImgInpaintTests.AssembleInpaintFolder();
        using var pipe = StableDiffusionInpaintPipeline.FromPretrained(folder.Path);
        if (timesteps is not null) UseScheduler(pipe, DDPMScheduler.Name);
        using var trace = new SdTrace(pipe);
        var (prompt, negative) = SdEmbeds();
        using var f = Golden.Open(Expected);
        using var maskedLatents = f.Load("inputs/masked_image_latents");
        var steps = new List<long>();
        using var result = pipe.Generate(image: Image.Load(Golden.Path("img2img-init.png")), maskImage: Image.Load(Golden.Path("inpaint-mask.png")),
            strength: timesteps is null ? 1.0 : 0.6, numInferenceSteps: 4, promptEmbeds: prompt, negativePromptEmbeds: negative,
            guidanceScale: 7.5, seed: 0, outputType: OutputType.Np, callbackOnStepEnd: Collect(steps),
            maskedImageLatents: maskedLatents, timesteps: timesteps is null ? null : Parse(timesteps));
        Assert.False(trace.Has("masked_image"), "given masked image latents, the masked image is not made");
        Assert.False(trace.Has("masked_image_latent_mean"), "given masked image latents, nothing is encoded for them");
        CheckRun(run, trace, result, steps);
    }

    [Fact]
    public void StableDiffusionXLWithLcmTimestepsMatchesDiffusers()
    {
        using var pipe = StableDiffusionXLPipeline.FromPretrained(StableDiffusionXLPipelineTests.Base);
        var loaded = pipe.Scheduler;
        pipe.Scheduler = SchedulerFactory.FromConfig(LCMScheduler.Name, loaded.Config);
        loaded.Dispose();
        using var trace = new SdTrace(pipe);
        using var f = Golden.Open(StableDiffusionXLPipelineTests.Expected);
        using var embeds = f.Load("pipeline/txt2img_default/unet_encoder_hidden_states");
        using var pooled = f.Load("pipeline/txt2img_default/unet_added_text_embeds");
        var steps = new List<long>();
        using var result = pipe.Generate(height: 32, width: 32, guidanceScale: 1.0, seed: 0, promptEmbeds: embeds[1..],
            pooledPromptEmbeds: pooled[1..], outputType: OutputType.Np, callbackOnStepEnd: Collect(steps), timesteps: Lcm);
        CheckRun("sdxl-lcm", trace, result, steps);
    }

    [Fact]
    public void ASchedulerWithoutCustomTimestepsIsRefusedInDiffusersWords()
    {
        using var pipe = StableDiffusionPipeline.FromPretrained(StableDiffusionPipelineTests.Model);   // PNDMScheduler
        var (prompt, _) = SdEmbeds();
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate(promptEmbeds: prompt, guidanceScale: 1.0, timesteps: [999, 499]));
        Assert.Equal("StableDiffusionPipeline: The current scheduler class PNDMScheduler's `set_timesteps` does not support custom " +
            "timestep schedules. Please check whether you are using the correct scheduler.", e.Message);
    }

    [Fact]
    public void EmptyOrAscendingTimestepsAreRefusedNamingThePipelineAndTheValues()
    {
        using var pipe = StableDiffusionPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        UseScheduler(pipe, DDPMScheduler.Name);
        var (prompt, _) = SdEmbeds();
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate(promptEmbeds: prompt, guidanceScale: 1.0, timesteps: []));
        Assert.Equal("StableDiffusionPipeline: timesteps is empty; pass at least one timestep, or none to use num_inference_steps", e.Message);
        e = Assert.Throws<DiffusersException>(() => pipe.Generate(promptEmbeds: prompt, guidanceScale: 1.0, timesteps: [499, 999]));
        Assert.Equal("StableDiffusionPipeline: timesteps: DDPMScheduler: custom timesteps must be in descending order; 999 follows 499", e.Message);
    }

    /// <summary>
    /// DDPM's own 3-step schedule (leading, steps_offset 1: 667, 334, 1) passed as custom timesteps steps exactly as the
    /// 3-step run (previous_timestep: the next entry, or t − T // N, the same here) in the pipelines without golden runs of
    /// their own: ControlNet txt2img, the T2I-Adapter pipelines, SDXL img2img and inpaint.
    /// </summary>
    [Theory]
    [InlineData("controlnet")]
    [InlineData("sd-adapter")]
    [InlineData("sdxl-adapter")]
    [InlineData("sdxl-img2img")]
    [InlineData("sdxl-inpaint")]
    public void DdpmsOwnScheduleAsCustomTimestepsGivesTheSameRun(string which)
    {
        var edges = StableDiffusionControlNetPipelineTests.Edges;
        var init = Image.Load(Golden.Path("img2img-init.png"));
        var mask = Image.Load(Golden.Path("inpaint-mask.png"));
        Func<IReadOnlyList<long>?, ImagePipelineOutput> run;
        IDisposable pipe;
        switch (which)
        {
            case "controlnet":
                var cn = StableDiffusionControlNetPipelineTests.LoadTxt2Img();
                UseScheduler(cn, DDPMScheduler.Name);
                run = ts => cn.Generate("a cat", [edges], numInferenceSteps: 3, seed: 0, outputType: OutputType.Latent, timesteps: ts);
                pipe = cn;
                break;
            case "sd-adapter":
                var ad = T2IAdapterPipelineTests.SdPipe(T2IAdapterGoldenTests.Load("sd-full"));
                UseScheduler(ad, DDPMScheduler.Name);
                run = ts => ad.Generate("a cat", [edges], height: 32, width: 32, numInferenceSteps: 3, seed: 0, outputType: OutputType.Latent, timesteps: ts);
                pipe = ad;
                break;
            case "sdxl-adapter":
                var xa = T2IAdapterPipelineTests.SdxlPipe(T2IAdapterGoldenTests.Load("sdxl-full"));
                UseXlScheduler(xa);
                run = ts => xa.Generate("a cat", [edges], height: 32, width: 32, numInferenceSteps: 3, seed: 0, outputType: OutputType.Latent, timesteps: ts);
                pipe = xa;
                break;
            case "sdxl-img2img":
                var xi = StableDiffusionXLImg2ImgPipeline.FromPretrained(StableDiffusionXLPipelineTests.Base);
                UseXlScheduler(xi);
                run = ts => xi.Generate("a cat", init, strength: 0.7, numInferenceSteps: 3, seed: 0, outputType: OutputType.Latent, timesteps: ts);
                pipe = xi;
                break;
            default:
                var xp = StableDiffusionXLInpaintPipeline.FromPretrained(StableDiffusionXLPipelineTests.Base);
                UseXlScheduler(xp);
                run = ts => xp.Generate("a cat", init, mask, strength: 0.7, numInferenceSteps: 3, seed: 0, outputType: OutputType.Latent, timesteps: ts);
                pipe = xp;
                break;
        }
        using (pipe)
        {
            using var byCount = run(null);
            using var byList = run([667, 334, 1]);
            Assert.Equal(0, Tol.MaxAbsDiff(byList.Tensor!, byCount.Tensor!));
            // and other timesteps make another run
            using var other = run([700, 300, 1]);
            Assert.True(Tol.MaxAbsDiff(other.Tensor!, byCount.Tensor!) > 1e-3);
        }
    }

    private static void UseXlScheduler(StableDiffusionXLPipelineBase pipe)
    {
        var loaded = pipe.Scheduler;
        pipe.Scheduler = SchedulerFactory.FromConfig(DDPMScheduler.Name, loaded.Config);
        loaded.Dispose();
    }

    [Fact]
    public void MaskedImageLatentsOfAnotherShapeAreRefusedNamingTheShapes()
    {
        using var folder = StableDiffusionImg2ImgInpaintTests.AssembleInpaintFolder();
        using var pipe = StableDiffusionInpaintPipeline.FromPretrained(folder.Path);
        var init = Image.Load(Golden.Path("img2img-init.png"));
        var mask = Image.Load(Golden.Path("inpaint-mask.png"));
        using var wrong = torch.zeros(1, 4, 16, 32);
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate("x", init, mask, numInferenceSteps: 1, maskedImageLatents: wrong));
        Assert.Equal("StableDiffusionInpaintPipeline: masked_image_latents have shape [1, 4, 16, 32], expected [batch, 4, 32, 32] " +
            "(the VAE's latent channels and the latents' height and width)", e.Message);
        using var xl = StableDiffusionXLInpaintPipeline.FromPretrained(StableDiffusionXLPipelineTests.Base);
        using var pixels = torch.zeros(1, 3, 64, 64);
        e = Assert.Throws<DiffusersException>(() => xl.Generate("x", init, mask, numInferenceSteps: 2, maskedImageLatents: pixels));
        Assert.Equal("StableDiffusionXLInpaintPipeline: masked_image_latents have shape [1, 3, 64, 64], expected [batch, 4, 32, 32] " +
            "(the VAE's latent channels and the latents' height and width)", e.Message);
    }

    [Fact]
    public void StableDiffusionXLInpaintingWithMaskedImageLatentsEncodesNoMaskedImage()
    {
        using var pipe = StableDiffusionXLInpaintPipeline.FromPretrained(StableDiffusionXLPipelineTests.Base);
        using var trace = new SdTrace(pipe);
        using var given = torch.zeros(1, 4, 32, 32);
        var seen = new List<(long[] Shape, float Max)>();
        using var result = pipe.Generate("a cat", Image.Load(Golden.Path("img2img-init.png")), Image.Load(Golden.Path("inpaint-mask.png")),
            numInferenceSteps: 2, seed: 0, outputType: OutputType.Latent, maskedImageLatents: given,
            callbackOnStepEnd: (_, _, t) => { if (t.TryGetValue("masked_image_latents", out var m)) seen.Add((m.shape, m.abs().max().item<float>())); });
        Assert.True(trace.Has("vae_encode_0_mean"), "the init image is encoded (4-channel UNet)");
        Assert.False(trace.Has("vae_encode_1_mean"), "given masked image latents, the masked image is not encoded");
        // the guidance batch of the given latents (tiny-sdxl's 4-channel UNet does not read them)
        var (shape, max) = Assert.Single(seen);   // strength 0.9999 of 2 steps: int(1.9998) = 1 step
        Assert.Equal([2L, 4, 32, 32], shape);
        Assert.Equal(0, max);
    }
}
