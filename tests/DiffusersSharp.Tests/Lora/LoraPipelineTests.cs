using DiffusersSharp.Models;
using DiffusersSharp.Models.Lora;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Pipelines;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Lora;

/// <summary>
/// The tiny-sd pipeline runs of golden README section G (4 PNDM steps at 64², seed 0): base, LoRA A at scale 1 and 0.5
/// (the per-call scale), fused at 0.7, kohya LoRA B, A then B (0.25.1 replaces), and LCM-LoRA with LCMScheduler.
/// </summary>
public class LoraPipelineTests(ITestOutputHelper log)
{
    private const string Expected = "tiny-sd-lora-expected.safetensors";
    private const double Component = 1e-5;
    /// <summary>Latents after 4 steps (as StableDiffusionPipelineTests).</summary>
    private const double Trajectory = 1e-4;

    private static StableDiffusionPipeline Pipe() => StableDiffusionPipeline.FromPretrained(StableDiffusionPipelineTests.Model);

    private static ImagePipelineOutput Run(StableDiffusionPipeline pipe, double? scale = null) =>
        pipe.Generate("a photo of a cat", "", guidanceScale: 7.5, numInferenceSteps: 4, height: 64, width: 64, seed: 0,
            outputType: OutputType.Np, crossAttentionKwargs: scale is double s ? new CrossAttentionOptions { Scale = s } : null);

    /// <summary>Images within 1/255; with <paramref name="inputs"/> also the prompt embeddings the UNet got and its first output.</summary>
    private void Check(string run, SdTrace trace, ImagePipelineOutput result, bool inputs = true)
    {
        using var g = new SafetensorsLike(Expected);
        string p = $"pipeline/{run}/";
        if (inputs)
        {
            // the UNet's encoder hidden states: [negative; prompt] with guidance, the prompt alone without
            using var embeds = trace.Has("negative_prompt_embeds")
                ? torch.cat(new[] { trace.One("negative_prompt_embeds"), trace.One("prompt_embeds") })
                : trace.One("prompt_embeds").alias();
            SdTrace.Check(log, g, p + "unet_encoder_hidden_states", embeds, Component);
            using var outputs = trace.Stacked("unet_output");
            SdTrace.Check(log, g, p + "unet_output_step0", outputs[0], Component);
        }
        SdTrace.CheckImages(log, g, p + "images", result.Array!);
    }

    [Fact]
    public void BaseRunMatchesDiffusers()
    {
        using var pipe = Pipe();
        using var trace = new SdTrace(pipe);
        using var r = Run(pipe);
        Check("base", trace, r);
    }

    [Fact]
    public void LoraAScaleOneThenScaleHalfPerCallMatchDiffusers()
    {
        using var pipe = Pipe();
        pipe.LoadLoraWeights(LoraModelTests.LoraA(false));
        using (var trace = new SdTrace(pipe))
        using (var r = Run(pipe))
            Check("lora_a_scale1", trace, r);
        using (var trace = new SdTrace(pipe))
        using (var r = Run(pipe, 0.5))
            Check("lora_a_scale0.5", trace, r);

        // checks.after_scale0.5_call_a_call_without_kwargs: the text encoder keeps 0.5, the UNet is back at 1.0
        using var g = new SafetensorsLike(Expected);
        using var scale1 = g.Load("pipeline/lora_a_scale1/images");
        using var after = Run(pipe);
        double diff = Tol.MaxAbsDiff(after.Array!, scale1);
        log.WriteLine($"after a scale-0.5 call, a call without kwargs: max abs diff to lora_a_scale1 {diff:E6} (diffusers 0.10984528)");
        Assert.True(Math.Abs(diff - 0.10984528064727783) <= Trajectory, $"{diff} vs diffusers' 0.10984528");
        Assert.Equal(0.5, pipe.TextEncoder.LoraScale.Value);
    }

    [Fact]
    public void LoraAFusedAtPoint7MatchesDiffusers()
    {
        using var pipe = Pipe();
        pipe.LoadLoraWeights(LoraModelTests.LoraA(false));
        Assert.Equal(68, pipe.FuseLora(0.7));
        using var trace = new SdTrace(pipe);
        using var r = Run(pipe);
        Check("lora_a_fused0.7", trace, r, inputs: false);
        pipe.UnloadLoraWeights(); // checks.fuse_then_unload_lora_weights_still_equals_fused
        using var trace2 = new SdTrace(pipe);
        using var r2 = Run(pipe);
        Check("lora_a_fused0.7", trace2, r2, inputs: false);
    }

    [Fact]
    public void KohyaLoraBMatchesDiffusers()
    {
        using var pipe = Pipe();
        Assert.Equal(47, pipe.LoadLoraWeights(LoraModelTests.LoraB(false)).TotalLayers);
        using var trace = new SdTrace(pipe);
        using var r = Run(pipe);
        Check("lora_b_kohya_scale1", trace, r);
    }

    [Fact]
    public void TwoLorasWithoutNamesReplaceAsDiffusers025Does()
    {
        using var pipe = Pipe();
        pipe.LoadLoraWeights(LoraModelTests.LoraA(false));
        pipe.LoadLoraWeights(LoraModelTests.LoraB(false));
        // checks.two_loras_A_then_B: 86 active modules, 47 from B, 39 UNet modules kept from A, no text-encoder module of A
        var unet = LoraLoader.Layers(pipe.Unet).Count(l => l.Layer.Adapters.Count > 0);
        var text = LoraLoader.Layers(pipe.TextEncoder).Count(l => l.Layer.Adapters.Count > 0);
        Assert.Equal(86, unet + text);
        Assert.All(LoraLoader.Layers(pipe.Unet), l => Assert.True(l.Layer.Adapters.Count <= 1));
        using var trace = new SdTrace(pipe);
        using var r = Run(pipe);
        Check("two_loras_a_then_b", trace, r, inputs: false);
    }

    [Fact]
    public void LcmLoraWithLcmSchedulerMatchesDiffusers()
    {
        using var pipe = Pipe();
        using var loaded = pipe.Scheduler;
        pipe.Scheduler = SchedulerFactory.FromConfig(LCMScheduler.Name, loaded.Config);
        pipe.LoadLoraWeights(LoraModelTests.LoraA(false));
        using var trace = new SdTrace(pipe);
        using var r = pipe.Generate("a photo of a cat", numInferenceSteps: 4, guidanceScale: 1.0, height: 64, width: 64, seed: 1,
            outputType: OutputType.Np);
        Check("lcm_lora_a", trace, r);
        using var g = new SafetensorsLike(Expected);
        SdTrace.Check(log, g, "pipeline/lcm_lora_a/final_latents", trace.One("latents_after_step"), Trajectory);
    }
}
