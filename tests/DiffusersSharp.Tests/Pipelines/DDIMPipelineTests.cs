using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>
/// DDIMPipeline on tiny-ddpm (a DDPMPipeline folder, which diffusers' DDIMPipeline.from_pretrained accepts and
/// whose scheduler it converts with DDIMScheduler.from_config). The scheduler maths is proven against the golden
/// DDIM cases in the scheduler tests; here the pipeline must equal diffusers' __call__ written out by hand.
/// </summary>
public class DDIMPipelineTests
{
    private static string Model => Golden.Path("tiny-ddpm");

    private static Tensor HandLoop(int steps, double eta, long seed, bool clipped = false)
    {
        using var unet = UNet2DModel.FromPretrained(Model, subfolder: "unet");
        using var ddpm = DDPMScheduler.FromPretrained(Model);
        using var scheduler = DDIMScheduler.FromConfig(ddpm.Config);
        using var noGrad = torch.no_grad();
        using var g = new Generator((ulong)seed);
        var image = torch.randn(new long[] { 1, 3, 32, 32 }, generator: g);
        scheduler.SetTimesteps(steps);
        foreach (var t in scheduler.TimestepValues)
        {
            using var scope = torch.NewDisposeScope();
            var output = unet.Forward(image, t).Sample;
            var next = scheduler.Step(output, t, image, new StepOptions { Eta = eta, UseClippedModelOutput = clipped, Generators = [g] }).PrevSample;
            image.Dispose();
            image = next.DetachFromDisposeScope();
        }
        using var _ = image;
        return (image / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).contiguous();
    }

    [Theory]
    [InlineData(0.0, false)]
    [InlineData(1.0, false)]
    [InlineData(0.5, true)]
    public void PipelineEqualsDiffusersCallWrittenOut(double eta, bool clipped)
    {
        using var pipe = DDIMPipeline.FromPretrained(Model);
        Assert.IsType<DDIMScheduler>(pipe.Scheduler);
        using var result = pipe.Generate(numInferenceSteps: 5, eta: eta, useClippedModelOutput: clipped, seed: 7, outputType: OutputType.Np);
        using var expected = HandLoop(5, eta, 7, clipped);
        Assert.Equal(0.0, Tol.MaxAbsDiff(result.Array!, expected));
    }

    [Fact]
    public void EtaAddsNoiseAndZeroEtaIsDeterministicInTheLoop()
    {
        using var pipe = DDIMPipeline.FromPretrained(Model);
        using var initial = Golden.Tensor("tiny-ddpm-expected.safetensors", "pipeline/initial_noise");
        // with eta 0 and given latents nothing is drawn: two generators give the same image
        using var a = pipe.Generate(numInferenceSteps: 4, latents: initial, seed: 1, outputType: OutputType.Np);
        using var b = pipe.Generate(numInferenceSteps: 4, latents: initial, seed: 2, outputType: OutputType.Np);
        Assert.Equal(0.0, Tol.MaxAbsDiff(a.Array!, b.Array!));
        using var c = pipe.Generate(numInferenceSteps: 4, eta: 1.0, latents: initial, seed: 1, outputType: OutputType.Np);
        using var d = pipe.Generate(numInferenceSteps: 4, eta: 1.0, latents: initial, seed: 2, outputType: OutputType.Np);
        Assert.True(Tol.MaxAbsDiff(c.Array!, d.Array!) > 1e-3);
    }

    [Fact]
    public void AssignedSchedulerIsConvertedToDdimAndBadEtaIsRejected()
    {
        using var pipe = DDIMPipeline.FromPretrained(Model);
        using var loaded = pipe.Scheduler;
        pipe.Scheduler = DDPMScheduler.FromPretrained(Model);
        Assert.IsType<DDIMScheduler>(pipe.Scheduler);
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate(numInferenceSteps: 2, eta: -0.1));
        Assert.Equal("DDIMPipeline: eta must be a number ≥ 0 (0 = DDIM, 1 = DDPM-like), got -0.1", e.Message);
    }

    [Fact]
    public void DiffusionPipelineKnowsDdim()
    {
        Assert.Contains("DDIMPipeline", DiffusionPipeline.KnownClasses);
        Assert.Contains("DDPMPipeline", DiffusionPipeline.KnownClasses);
    }
}
