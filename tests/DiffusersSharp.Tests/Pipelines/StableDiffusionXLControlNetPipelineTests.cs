using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>
/// StableDiffusionXLControlNetPipeline by composition (golden data has no SDXL ControlNet run): a tiny SDXL ControlNet made
/// with <see cref="ControlNetModel.FromUnet"/> from tiny-sdxl's UNet, its zero convolutions filled with seeded random
/// values so that the residuals are not zeros. At conditioning scale 0 the pipeline draws diffusers' txt2img_default image;
/// at step 0 the UNet gets exactly the residuals of a standalone ControlNet forward on the same inputs.
/// </summary>
public class StableDiffusionXLControlNetPipelineTests(ITestOutputHelper log)
{
    private const double Component = 1e-5;

    private static StableDiffusionXLControlNetPipeline Pipe()
    {
        using var unet = UNet2DConditionModel.FromPretrained(StableDiffusionXLPipelineTests.Base, "unet");
        var net = ControlNetModel.FromUnet(unet, conditioningEmbeddingOutChannels: [16, 32]); // one halving: the VAE scale factor 2
        using (torch.no_grad())
        {
            var g = new Generator(7);
            foreach (var (name, p) in net.named_parameters())
                if (name.StartsWith("controlnet_down_blocks") || name.StartsWith("controlnet_mid_block"))
                    p.copy_(torch.randn(p.shape, generator: g) * 0.1);
        }
        return StableDiffusionXLControlNetPipeline.FromPretrained(StableDiffusionXLPipelineTests.Base, net);
    }

    private static Tensor ControlImage() => torch.rand([1, 3, 64, 64], generator: new Generator(3));

    private static ImagePipelineOutput Run(StableDiffusionXLControlNetPipeline pipe, Tensor control, double scale) =>
        pipe.Generate("a photo of a cat", [control], numInferenceSteps: 4, guidanceScale: 5.0, height: 64, width: 64, seed: 0,
            outputType: OutputType.Np, controlnetConditioningScale: [scale]);

    [Fact]
    public void AtConditioningScaleZeroItDrawsTheTxt2ImgImage()
    {
        using var pipe = Pipe();
        using var control = ControlImage();
        using var trace = new SdTrace(pipe);
        using var r = Run(pipe, control, 0.0);
        Assert.True(trace.First("down_residual_0").abs().max().item<float>() == 0f, "scale 0 must zero the residuals");
        using var g = new SafetensorsLike(StableDiffusionXLPipelineTests.Expected);
        SdTrace.Check(log, g, "pipeline/txt2img_default/unet_added_time_ids", trace.First("unet_added_time_ids"), 0.0);
        SdTrace.CheckImages(log, g, "pipeline/txt2img_default/images", r.Array!);
        using var expected = g.Load("pipeline/txt2img_default/images");
        Assert.True(Tol.MaxAbsDiff(r.Array!, expected) <= 1.0 / 255);
    }

    [Fact]
    public void TheUNetGetsTheResidualsOfAStandaloneControlNetForward()
    {
        using var pipe = Pipe();
        using var control = ControlImage();
        using var trace = new SdTrace(pipe);
        using var r = Run(pipe, control, 0.5);
        var net = (ControlNetModel)pipe.Controlnet;
        using var noGrad = torch.no_grad();
        var t0 = pipe.Scheduler.Timesteps[0];
        using var output = net.Forward(trace.First("unet_input"), t0, trace.First("unet_encoder_hidden_states"),
            trace.First("control_image"), conditioningScale: 0.5,
            addedCondKwargs: new AddedCondKwargs(trace.First("unet_added_text_embeds"), trace.First("unet_added_time_ids")));
        Assert.Equal(2, trace.First("control_image").shape[0]); // doubled for guidance
        Assert.Equal(9, output.DownBlockResSamples.Count);   // tiny-sdxl's: conv_in, 2 + a downsampler, 2 + a downsampler, 2
        Assert.False(trace.Has("down_residual_9"), "the UNet got more down residuals than the net's forward gives");
        double worst = 0;
        for (int j = 0; j < output.DownBlockResSamples.Count; j++)
        {
            var actual = trace.First($"down_residual_{j}");
            Assert.True(actual.abs().max().item<float>() > 0f, $"residual {j} is zero: the test would prove nothing");
            worst = Math.Max(worst, Tol.MaxAbsDiff(actual, output.DownBlockResSamples[j]));
        }
        worst = Math.Max(worst, Tol.MaxAbsDiff(trace.First("mid_residual"), output.MidBlockResSample));
        log.WriteLine($"{output.DownBlockResSamples.Count} down residuals and the mid residual at step 0: max abs diff {worst:E3}");
        Assert.True(worst <= Component, $"residuals differ by {worst:E3}");
    }

    [Fact]
    public void InGuessModeTheNetSeesTheConditionalHalfWithItsAddedConditioning()
    {
        using var pipe = Pipe();
        using var control = ControlImage();
        using var trace = new SdTrace(pipe);
        using var r = pipe.Generate("a photo of a cat", [control], numInferenceSteps: 2, guidanceScale: 5.0, height: 64, width: 64,
            seed: 0, outputType: OutputType.Np, guessMode: true);
        var net = (ControlNetModel)pipe.Controlnet;
        using var noGrad = torch.no_grad();
        Assert.Equal(1, trace.First("control_image").shape[0]); // not doubled in guess mode
        Assert.False(trace.Has("down_residual_9"), "the UNet got more down residuals than the net's forward gives");
        // diffusers: the conditional half of the batch, of the prompt embeddings and of the added conditioning
        using var output = net.Forward(trace.First("unet_input").chunk(2)[1], pipe.Scheduler.Timesteps[0],
            trace.First("unet_encoder_hidden_states").chunk(2)[1], trace.First("control_image"), guessMode: true,
            addedCondKwargs: new AddedCondKwargs(trace.First("unet_added_text_embeds").chunk(2)[1], trace.First("unet_added_time_ids").chunk(2)[1]));
        Assert.Equal(9, output.DownBlockResSamples.Count);
        double worst = 0;
        for (int j = 0; j < output.DownBlockResSamples.Count; j++)
        {
            var halves = trace.First($"down_residual_{j}").chunk(2);
            Assert.Equal(0f, halves[0].abs().max().item<float>());
            worst = Math.Max(worst, Tol.MaxAbsDiff(halves[1], output.DownBlockResSamples[j]));
        }
        worst = Math.Max(worst, Tol.MaxAbsDiff(trace.First("mid_residual").chunk(2)[1], output.MidBlockResSample));
        log.WriteLine($"guess mode, step 0: max abs diff of the conditional residuals {worst:E3}");
        Assert.True(worst <= Component, $"residuals differ by {worst:E3}");
    }

    [Fact]
    public void DiffusionPipelineDispatchKnowsTheClass() =>
        Assert.Contains(StableDiffusionXLControlNetPipeline.Name, DiffusionPipeline.KnownClasses);
}
