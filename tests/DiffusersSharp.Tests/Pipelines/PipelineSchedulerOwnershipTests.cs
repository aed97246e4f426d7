using DiffusersSharp.Imaging;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>
/// Who disposes a scheduler (docs/ARCHITECTURE.md, "Tensor ownership"): a pipeline disposes the components it holds when
/// it is disposed, the scheduler it loaded or was given included; one that an assignment replaced is the caller's, as a
/// replaced VAE. Counted with TorchSharp's live tensors of this thread, on the tiny golden models.
/// </summary>
public class PipelineSchedulerOwnershipTests
{
    private static long Live => DisposeScopeManager.Statistics.ThreadTotalLiveCount;
    private static string Ddpm => Golden.Path("tiny-ddpm");
    private static string Sd => Golden.Path("tiny-sd");
    private static string Sdxl => Golden.Path("tiny-sdxl");

    public static TheoryData<string> Pipelines => ["ddpm", "ddim", "sd", "sd-img2img", "sdxl"];

    [Theory]
    [MemberData(nameof(Pipelines))]
    public void LoadingGeneratingAndDisposingAPipelineLeavesTheLiveTensorsAsTheyWere(string pipeline)
    {
        LoadGenerateDispose(pipeline);   // the process's first-pass set-up (kernel checks, layouts) is not the pipeline's
        long before = Live;
        LoadGenerateDispose(pipeline);
        Assert.Equal(before, Live);
    }

    private static void LoadGenerateDispose(string pipeline)
    {
        switch (pipeline)
        {
            case "ddpm":
            {
                using var pipe = DDPMPipeline.FromPretrained(Ddpm);
                using var result = pipe.Generate(numInferenceSteps: 2, seed: 0);
                break;
            }
            case "ddim":
            {
                // a DDPMPipeline folder: its DDPMScheduler is converted to DDIM (DDIMScheduler.from_config)
                using var pipe = DDIMPipeline.FromPretrained(Ddpm);
                using var result = pipe.Generate(numInferenceSteps: 2, seed: 0);
                break;
            }
            case "sd":
            {
                using var pipe = StableDiffusionPipeline.FromPretrained(Sd);
                using var result = pipe.Generate("a cat", height: 16, width: 16, numInferenceSteps: 2, seed: 0);
                break;
            }
            case "sd-img2img":
            {
                using var pipe = StableDiffusionImg2ImgPipeline.FromPretrained(Sd);
                using var result = pipe.Generate("a cat", Image.Load(Golden.Path("img2img-init.png")), 0.6, numInferenceSteps: 3, seed: 0);
                break;
            }
            default:
            {
                using var pipe = StableDiffusionXLPipeline.FromPretrained(Sdxl);
                using var result = pipe.Generate("a cat", height: 32, width: 32, numInferenceSteps: 2, seed: 0);
                break;
            }
        }
    }

    public static TheoryData<string> Swaps => ["ddpm", "sd", "sdxl"];

    [Theory]
    [MemberData(nameof(Swaps))]
    public void APipelineDisposesTheSchedulerItHoldsAndLeavesAReplacedOneToTheCaller(string pipeline)
    {
        Swap(pipeline, out var loaded);   // warm-up, as above
        loaded.Dispose();
        long before = Live;
        var held = Swap(pipeline, out loaded);
        // the held one went with the pipeline
        var e = Assert.Throws<ObjectDisposedException>(() => held.SetTimesteps(2));
        Assert.Equal("EulerDiscreteScheduler", e.ObjectName);
        // the replaced one is the caller's: still usable, and the only thing left alive
        loaded.SetTimesteps(2);
        Assert.Equal(2, loaded.NumInferenceSteps);
        Assert.False(loaded.Timesteps.IsInvalid);
        Assert.True(Live > before, "the replaced scheduler's tensors were freed by the pipeline");
        loaded.Dispose();
        Assert.Equal(before, Live);
    }

    /// <summary>Loads <paramref name="pipeline"/>, swaps in Euler as diffusers users do, generates and disposes the pipeline.</summary>
    private static IScheduler Swap(string pipeline, out IScheduler loaded)
    {
        IScheduler euler;
        switch (pipeline)
        {
            case "ddpm":
            {
                using var pipe = DDPMPipeline.FromPretrained(Ddpm);
                loaded = pipe.Scheduler;
                pipe.Scheduler = euler = EulerDiscreteScheduler.FromConfig(loaded.Config);
                using var result = pipe.Generate(numInferenceSteps: 2, seed: 0);
                break;
            }
            case "sd":
            {
                using var pipe = StableDiffusionPipeline.FromPretrained(Sd);
                loaded = pipe.Scheduler;
                pipe.Scheduler = euler = EulerDiscreteScheduler.FromConfig(loaded.Config);
                using var result = pipe.Generate("a cat", height: 16, width: 16, numInferenceSteps: 2, seed: 0);
                break;
            }
            default:
            {
                using var pipe = StableDiffusionXLPipeline.FromPretrained(Sdxl);
                loaded = pipe.Scheduler;
                pipe.Scheduler = euler = EulerDiscreteScheduler.FromConfig(loaded.Config);
                using var result = pipe.Generate("a cat", height: 32, width: 32, numInferenceSteps: 2, seed: 0);
                break;
            }
        }
        return euler;
    }

    [Fact]
    public void DDIMPipelineHoldsAGivenDDIMSchedulerAndDisposesOneItConverts()
    {
        // diffusers' DDIMPipeline builds DDIMScheduler.from_config(scheduler.config): a scheduler of another class is handed
        // over and replaced by its conversion, so it is disposed at once; a DDIMScheduler is held as given
        var ddpm = DDPMScheduler.FromPretrained(Ddpm);
        var ddim = DDIMScheduler.FromConfig(ddpm.Config);
        using (var pipe = new DDIMPipeline(UNet2DModel.FromPretrained(Ddpm, subfolder: "unet"), ddpm))
        {
            Assert.IsType<DDIMScheduler>(pipe.Scheduler);
            Assert.Equal("DDPMScheduler", Assert.Throws<ObjectDisposedException>(() => ddpm.SetTimesteps(2)).ObjectName);
            using var converted = pipe.Scheduler;   // replaced below: the caller's
            pipe.Scheduler = ddim;
            Assert.Same(ddim, pipe.Scheduler);
            Assert.False(converted.Timesteps.IsInvalid);
        }
        Assert.Equal("DDIMScheduler", Assert.Throws<ObjectDisposedException>(() => ddim.SetTimesteps(2)).ObjectName);
    }

    [Fact]
    public void AStableDiffusionPipelineDisposesASchedulerWhoseConfigItCorrectsAndHoldsTheCorrected()
    {
        using var loaded = StableDiffusionPipeline.FromPretrained(Sd);
        var outdated = new PNDMScheduler((PNDMSchedulerConfig)loaded.Scheduler.Config with { StepsOffset = 0 });
        var log = new List<string>();
        // a second pipeline around the same models (not disposed: `loaded` owns them); it owns the scheduler it is given
        var pipe = new StableDiffusionPipeline(loaded.Vae, loaded.TextEncoder, loaded.Tokenizer, loaded.Unet, outdated, log.Add);
        using var corrected = pipe.Scheduler;
        Assert.Equal(["the scheduler config has steps_offset 0; it should be 1: using 1, as diffusers does"], log);
        Assert.Equal(1, ((PNDMSchedulerConfig)corrected.Config).StepsOffset);
        Assert.Equal("PNDMScheduler", Assert.Throws<ObjectDisposedException>(() => outdated.SetTimesteps(2)).ObjectName);
        corrected.SetTimesteps(2);
        Assert.Equal(2, corrected.NumInferenceSteps);
    }
}
