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
/// The tiny-sdxl pipeline runs of golden README section G (4 Euler steps at 64², seed 0, guidance 5): base, LoRA A at
/// scale 1 and 0.5 (the per-call scale reaching both text encoders), fused at 0.7, kohya LoRA B (SGM names), A then B
/// (0.25.1 replaces), and LCM-LoRA with LCMScheduler.
/// </summary>
public class LoraXLPipelineTests(ITestOutputHelper log)
{
    private const string Expected = "tiny-sdxl-lora-expected.safetensors";
    private const double Component = 1e-5;
    /// <summary>Latents after 4 steps (as StableDiffusionXLPipelineTests).</summary>
    private const double Trajectory = 1e-4;
    /// <summary>Every image value within one 8-bit level of diffusers'.</summary>
    private const double ImageLevel = 1.0 / 255;

    private static StableDiffusionXLPipeline Pipe() => StableDiffusionXLPipeline.FromPretrained(StableDiffusionXLPipelineTests.Base);

    private static ImagePipelineOutput Run(StableDiffusionXLPipeline pipe, double? scale = null) =>
        pipe.Generate("a photo of a cat", negativePrompt: "", guidanceScale: 5.0, numInferenceSteps: 4, height: 64, width: 64, seed: 0,
            outputType: OutputType.Np, crossAttentionKwargs: scale is double s ? new CrossAttentionOptions { Scale = s } : null);

    private static double Checks(string name)
    {
        using var json = Golden.Json("tiny-sdxl-lora-expected.json");
        var e = json.RootElement.GetProperty("checks");
        foreach (var part in name.Split('/')) e = e.GetProperty(part);
        return e.GetDouble();
    }

    /// <summary>Images all within 1/255; with <paramref name="inputs"/> also what the UNet got and its first output.</summary>
    private void Check(string run, SdTrace trace, ImagePipelineOutput result, bool inputs = true)
    {
        using var g = new SafetensorsLike(Expected);
        string p = $"pipeline/{run}/";
        if (inputs)
        {
            SdTrace.Check(log, g, p + "unet_encoder_hidden_states", trace.First("unet_encoder_hidden_states"), Component);
            SdTrace.Check(log, g, p + "unet_added_text_embeds", trace.First("unet_added_text_embeds"), Component);
            SdTrace.Check(log, g, p + "unet_output_step0", trace.First("unet_output"), Component);
        }
        SdTrace.CheckImages(log, g, p + "images", result.Array!);
        using var expected = g.Load(p + "images");
        Assert.True(Tol.MaxAbsDiff(result.Array!, expected) <= ImageLevel, $"{run}: an image value differs by more than 1/255");
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
        Assert.Equal((int)Checks("lora_a_modules_patched_as_expected"), pipe.LoadLoraWeights(LoraModelTests.LoraA(true)).TotalLayers);
        using (var trace = new SdTrace(pipe))
        using (var r = Run(pipe))
            Check("lora_a_scale1", trace, r);
        using (var trace = new SdTrace(pipe))
        using (var r = Run(pipe, 0.5))
            Check("lora_a_scale0.5", trace, r);

        // checks.after_scale0.5_call_a_call_without_kwargs: both text encoders keep 0.5, the UNet is back at 1.0
        using var g = new SafetensorsLike(Expected);
        using var scale1 = g.Load("pipeline/lora_a_scale1/images");
        using var after = Run(pipe);
        double diff = Tol.MaxAbsDiff(after.Array!, scale1);
        double expected = Checks("after_scale0.5_call_a_call_without_kwargs/max_abs_diff_to_lora_a_scale1");
        log.WriteLine($"after a scale-0.5 call, a call without kwargs: max abs diff to lora_a_scale1 {diff:E6} (diffusers {expected:E6})");
        Assert.True(Math.Abs(diff - expected) <= Trajectory, $"{diff} vs diffusers' {expected}");
        Assert.Equal(0.5, pipe.TextEncoder!.LoraScale.Value);
        Assert.Equal(0.5, pipe.TextEncoder2.LoraScale.Value);
    }

    [Fact]
    public void LoraAFusedAtPoint7MatchesDiffusers()
    {
        using var pipe = Pipe();
        pipe.LoadLoraWeights(LoraModelTests.LoraA(true));
        Assert.Equal((int)Checks("lora_a_modules_patched_as_expected"), pipe.FuseLora(0.7));
        using var trace = new SdTrace(pipe);
        using var r = Run(pipe);
        Check("lora_a_fused0.7", trace, r, inputs: false);
        pipe.UnloadLoraWeights(); // checks.fuse_then_unload_lora_weights_still_equals_fused
        using var r2 = Run(pipe);
        Check("lora_a_fused0.7", trace, r2, inputs: false);
    }

    [Fact]
    public void KohyaLoraBWithSgmNamesMatchesDiffusers()
    {
        using var pipe = Pipe();
        Assert.Equal((int)Checks("lora_b_modules_patched_as_mapping"), pipe.LoadLoraWeights(LoraModelTests.LoraB(true)).TotalLayers);
        using var trace = new SdTrace(pipe);
        using var r = Run(pipe);
        Check("lora_b_kohya_scale1", trace, r);
    }

    [Fact]
    public void TwoLorasWithoutNamesReplaceAsDiffusers025Does()
    {
        using var pipe = Pipe();
        pipe.LoadLoraWeights(LoraModelTests.LoraA(true));
        pipe.LoadLoraWeights(LoraModelTests.LoraB(true));
        int active = pipe.LoraTargets.Sum(t => LoraLoader.Layers(t.Model).Count(l => l.Layer.Adapters.Count > 0));
        Assert.Equal((int)Checks("two_loras_A_then_B/active_modules"), active);
        Assert.All(LoraLoader.Layers(pipe.Unet), l => Assert.True(l.Layer.Adapters.Count <= 1));
        using var trace = new SdTrace(pipe);
        using var r = Run(pipe);
        Check("two_loras_a_then_b", trace, r, inputs: false);
    }

    [Fact]
    public void TheRefinerOffersItsUNetAndTheSecondTextEncoder()
    {
        using var refiner = StableDiffusionXLImg2ImgPipeline.FromPretrained(StableDiffusionXLPipelineTests.Refiner);
        Assert.Equal(["unet", "text_encoder_2"], refiner.LoraTargets.Select(t => t.Component).ToArray());
        using var pipe = Pipe();
        Assert.Equal(["unet", "text_encoder", "text_encoder_2"], pipe.LoraTargets.Select(t => t.Component).ToArray());
    }

    [Fact]
    public void LcmLoraWithLcmSchedulerMatchesDiffusers()
    {
        using var pipe = Pipe();
        using var loaded = pipe.Scheduler;
        pipe.Scheduler = SchedulerFactory.FromConfig(LCMScheduler.Name, loaded.Config);
        pipe.LoadLoraWeights(LoraModelTests.LoraA(true));
        using var trace = new SdTrace(pipe);
        using var r = pipe.Generate("a photo of a cat", numInferenceSteps: 4, guidanceScale: 1.0, height: 64, width: 64, seed: 1,
            outputType: OutputType.Np);
        Check("lcm_lora_a", trace, r);
        using var g = new SafetensorsLike(Expected);
        SdTrace.Check(log, g, "pipeline/lcm_lora_a/final_latents", trace.One("latents_after_step"), Trajectory);
    }
}
