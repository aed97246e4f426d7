using DiffusersSharp.Imaging;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>
/// diffusers' <c>do_classifier_free_guidance = guidance_scale &gt; 1</c>: with guidance ≤ 1 (SD-Turbo's 0, LCM-LoRA's 1)
/// the pipelines never build the doubled [negative; prompt] batch, so the UNet sees batch 1 per image and the negative
/// prompt is not encoded; above 1 it sees batch 2. Observed at the UNet's conv_in (the batch it computes on).
/// </summary>
public class GuidanceBatchTests
{
    /// <summary>The batch sizes of the UNet's forward passes during <paramref name="run"/>.</summary>
    private static List<long> UNetBatches(StableDiffusionPipelineBase pipe, Action run)
    {
        var batches = new List<long>();
        pipe.Unet.IntermediateHook = (name, t) => { if (name == "conv_in") batches.Add(t.shape[0]); };
        try { run(); }
        finally { pipe.Unet.IntermediateHook = null; }
        return batches;
    }

    [Theory]
    [InlineData(0.0, 1)]
    [InlineData(1.0, 1)]
    [InlineData(7.5, 2)]
    public void Txt2ImgBuildsTheGuidanceBatchOnlyAboveGuidanceOne(double guidance, long expectedBatch)
    {
        using var pipe = StableDiffusionPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        using var loaded = pipe.Scheduler;
        pipe.Scheduler = SchedulerFactory.FromConfig(EulerAncestralDiscreteScheduler.Name, loaded.Config);
        using var trace = new SdTrace(pipe);
        var batches = UNetBatches(pipe, () =>
        {
            using var r = pipe.Generate("a cat", guidanceScale: guidance, numInferenceSteps: 2, height: 32, width: 32, seed: 0,
                outputType: OutputType.Latent);
        });
        Assert.Equal([expectedBatch, expectedBatch], batches);
        Assert.Equal(expectedBatch == 2, trace.Has("negative_prompt_embeds"));
    }

    [Fact]
    public void Img2ImgAtGuidanceZeroRunsTheUNetOnOneImage()
    {
        using var pipe = StableDiffusionImg2ImgPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        var init = Image.Load(Golden.Path("img2img-init.png"));
        var batches = UNetBatches(pipe, () =>
        {
            using var r = pipe.Generate("a cat", init, strength: 1.0, guidanceScale: 0.0, numInferenceSteps: 2, seed: 0,
                outputType: OutputType.Latent);
        });
        // PNDM (the folder's scheduler, skip_prk_steps) calls the UNet once more than it has steps: 3 passes of one image
        Assert.Equal([1L, 1L, 1L], batches);
    }
}
