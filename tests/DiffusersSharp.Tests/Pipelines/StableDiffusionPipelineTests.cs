using DiffusersSharp.Pipelines;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>The four tiny-sd txt2img runs of golden README section C, every recorded intermediate compared.</summary>
public class StableDiffusionPipelineTests(ITestOutputHelper log)
{
    private const string Expected = "tiny-sd-expected.safetensors";
    internal static string Model => Golden.Path("tiny-sd");

    // Components (prompt embeddings, first draw, one step from identical inputs) ≤ 1e-5. Whole trajectories are
    // compared too: differences of float32 rounding in the UNet grow through the loop (README: ~1e-4).
    private const double Component = 1e-5;
    private const double Trajectory = 1e-4;

    [Theory]
    [InlineData("pndm_default", null)]
    [InlineData("ddim", DDIMScheduler.Name)]
    [InlineData("euler_ancestral", EulerAncestralDiscreteScheduler.Name)]
    [InlineData("dpmpp2m", DPMSolverMultistepScheduler.Name)]
    public void Txt2ImgRunMatchesDiffusers(string run, string? scheduler)
    {
        using var pipe = StableDiffusionPipeline.FromPretrained(Model);
        if (scheduler is not null)
        {
            using var loaded = pipe.Scheduler;
            pipe.Scheduler = SchedulerFactory.FromConfig(scheduler, loaded.Config);
        }
        using var trace = new SdTrace(pipe);
        using var result = pipe.Generate("a photo of a cat", "", guidanceScale: 7.5, numInferenceSteps: 5, height: 64, width: 64,
            seed: 0, outputType: OutputType.Np);
        using var g = new SafetensorsLike(Expected);
        string p = $"pipeline/{run}/";
        SdTrace.Check(log, g, p + "prompt_embeds", trace.One("prompt_embeds"), Component);
        SdTrace.Check(log, g, p + "negative_prompt_embeds", trace.One("negative_prompt_embeds"), Component);
        SdTrace.Check(log, g, p + "initial_latents", trace.One("initial_latents"), Component);
        using (var ts = g.Load(p + "timesteps").to(ScalarType.Float64))
        using (var ours = pipe.Scheduler.Timesteps.to(ScalarType.Float64))
            Assert.Equal(ts.data<double>().ToArray(), ours.data<double>().ToArray());
        if (run is "pndm_default" or "ddim")
        {
            using var inputs = trace.Stacked("unet_input");
            SdTrace.Check(log, g, p + "unet_input", inputs, Trajectory);
        }
        using (var outputs = trace.Stacked("unet_output")) SdTrace.Check(log, g, p + "unet_output", outputs, Trajectory);
        using (var after = trace.Stacked("latents_after_step")) SdTrace.Check(log, g, p + "latents_after_step", after, Trajectory);
        SdTrace.Check(log, g, p + "vae_decoded", trace.One("vae_decoded"), Trajectory);
        SdTrace.CheckImages(log, g, p + "images", result.Array!);
    }

    [Fact]
    public void EachUNetCallFromTheRecordedInputMatchesWithin1e5()
    {
        using var pipe = StableDiffusionPipeline.FromPretrained(Model);
        using var g = new SafetensorsLike(Expected);
        using var noGrad = torch.no_grad();
        using var neg = g.Load("pipeline/pndm_default/negative_prompt_embeds");
        using var pos = g.Load("pipeline/pndm_default/prompt_embeds");
        using var states = torch.cat(new[] { neg, pos });
        using var inputs = g.Load("pipeline/pndm_default/unet_input");
        using var ts = g.Load("pipeline/pndm_default/unet_timestep");
        using var outputs = g.Load("pipeline/pndm_default/unet_output");
        double worst = 0;
        for (int i = 0; i < inputs.shape[0]; i++)
        {
            using var scope = torch.NewDisposeScope();
            var o = pipe.Unet.Forward(inputs[i], ts[i], states).Sample;
            worst = Math.Max(worst, Tol.MaxAbsDiff(o, outputs[i]));
        }
        log.WriteLine($"unet_output from recorded unet_input, 6 calls: max abs error {worst:E3}");
        Assert.True(worst <= Component, $"max error {worst:E3}");
    }

    [Fact]
    public void RescaleNoiseCfgFollowsTheFormula()
    {
        // std_text / std_cfg = 2 (unbiased std over all but dim 0): rescaled = 2 * cfg; 0.5 mixes it half and half
        using var cfg = torch.tensor(new float[] { 1, 2, 3, 4 }).reshape(1, 4);
        using var text = torch.tensor(new float[] { 2, 4, 6, 8 }).reshape(1, 4);
        using var mixed = StableDiffusionPipelineBase.RescaleNoiseCfg(cfg, text, 0.5);
        Assert.Equal(new float[] { 1.5f, 3f, 4.5f, 6f }, mixed.data<float>().ToArray());
        using var pipe = StableDiffusionPipeline.FromPretrained(Model);
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate("a cat", guidanceRescale: 1.5, numInferenceSteps: 1));
        Assert.Equal("StableDiffusionPipeline: guidance_rescale must be in [0, 1], got 1.5", e.Message);
        // with guidance the UNet batch is [uncond, cond]; guidance_scale 1 disables classifier-free guidance (batch of 1)
        using var trace = new SdTrace(pipe);
        using var r = pipe.Generate("a photo of a cat", "", guidanceRescale: 0.7, numInferenceSteps: 2, seed: 0, outputType: OutputType.Latent);
        Assert.Equal(2, trace.One("unet_input").shape[0]);
        using var one = pipe.Generate("a photo of a cat", guidanceScale: 1.0, numInferenceSteps: 2, seed: 0, outputType: OutputType.Latent);
        Assert.Equal(1, trace.One("unet_input").shape[0]);
    }
}
