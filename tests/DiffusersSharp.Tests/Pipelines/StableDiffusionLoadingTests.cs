using System.Text.Json.Nodes;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>Loading SD folders (class dispatch, outdated scheduler configs) and precomputed prompt embeddings.</summary>
public class StableDiffusionLoadingTests(ITestOutputHelper log)
{
    [Fact]
    public void DiffusionPipelineDispatchesTheInpaintClassAndOutdatedSchedulerConfigsAreFixedAsDiffusers()
    {
        using var folder = StableDiffusionImg2ImgInpaintTests.AssembleInpaintFolder();
        string cfg = folder.File("scheduler/scheduler_config.json");
        var node = JsonNode.Parse(File.ReadAllText(cfg))!.AsObject();
        node["steps_offset"] = 0;
        node["clip_sample"] = true;
        node["skip_prk_steps"] = false;
        File.WriteAllText(cfg, node.ToJsonString());
        var warnings = new List<string>();
        using var pipe = DiffusionPipeline.FromPretrained(folder.Path, new DiffusersSharp.Loading.LoadOptions { Log = warnings.Add });
        var inpaint = Assert.IsType<StableDiffusionInpaintPipeline>(pipe);
        var pndm = Assert.IsType<PNDMScheduler>(inpaint.Scheduler);
        // diffusers' inpaint constructor corrects steps_offset and skip_prk_steps (not clip_sample, which PNDM has not)
        Assert.Equal(1, pndm.TypedConfig.StepsOffset);
        Assert.True(pndm.TypedConfig.SkipPrkSteps);
        Assert.Equal(["the scheduler config has steps_offset 0; it should be 1: using 1, as diffusers does",
            "the scheduler config has skip_prk_steps false; it should be true: using true, as diffusers does"], warnings);
        pndm.SetTimesteps(5);
        Assert.Equal(new long[] { 801, 601, 601, 401, 201, 1 }, pndm.Timesteps.data<long>().ToArray());
        Assert.Contains(StableDiffusionInpaintPipeline.Name, DiffusionPipeline.KnownClasses);
        Assert.Contains(StableDiffusionImg2ImgPipeline.Name, DiffusionPipeline.KnownClasses);
    }

    [Fact]
    public void OnlyTheConstructorCorrectsAnOutdatedSchedulerConfigAndOnlyWhereItsDiffusersClassDoes()
    {
        using var pipe = StableDiffusionPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        // the constructor of text to image corrects steps_offset and clip_sample
        var outdated = new DDIMSchedulerConfig { StepsOffset = 0, ClipSample = true };
        // (not disposed: a pipeline disposes its components, which are pipe's)
        var built = new StableDiffusionPipeline(pipe.Vae, pipe.TextEncoder, pipe.Tokenizer, pipe.Unet, new DDIMScheduler(outdated), _ => { });
        var fixedConfig = Assert.IsType<DDIMScheduler>(built.Scheduler).TypedConfig;
        Assert.Equal((1, false), (fixedConfig.StepsOffset, fixedConfig.ClipSample));
        // a scheduler assigned later is used as given (diffusers' pipe.scheduler = ...), e.g. --scheduler-config clip_sample=true
        using var given = new DDIMScheduler(outdated);
        using var corrected = built.Scheduler;
        built.Scheduler = given;
        Assert.Same(given, built.Scheduler);
        // ControlNet pipelines correct nothing (diffusers' controlnet/*.py)
        using var controlnet = DiffusersSharp.Models.ControlNetModel.FromPretrained(Golden.Path("tiny-sd-controlnet"));
        var withNet = new StableDiffusionControlNetPipeline(pipe.Vae, pipe.TextEncoder, pipe.Tokenizer, pipe.Unet, controlnet, new DDIMScheduler(outdated), _ => { });
        using var held = withNet.Scheduler;   // (withNet is not disposed either: its models are pipe's)
        var kept = Assert.IsType<DDIMScheduler>(withNet.Scheduler).TypedConfig;
        Assert.Equal((0, true), (kept.StepsOffset, kept.ClipSample));
    }

    [Fact]
    public void PromptEmbedsGivenDirectlyReproduceTheRecordedRun()
    {
        using var pipe = StableDiffusionPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        using var g = new SafetensorsLike("tiny-sd-expected.safetensors");
        using var pos = g.Load("pipeline/ddim/prompt_embeds");
        using var neg = g.Load("pipeline/ddim/negative_prompt_embeds");
        using var loaded = pipe.Scheduler;
        pipe.Scheduler = DDIMScheduler.FromConfig(loaded.Config);
        using var result = pipe.Generate(promptEmbeds: pos, negativePromptEmbeds: neg, numInferenceSteps: 5, height: 64, width: 64,
            seed: 0, outputType: OutputType.Np);
        SdTrace.CheckImages(log, g, "pipeline/ddim/images", result.Array!);
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate("a cat", promptEmbeds: pos, numInferenceSteps: 1));
        Assert.StartsWith("StableDiffusionPipeline: pass either a prompt or prompt_embeds, not both", e.Message);
        using var shorter = pos.narrow(1, 0, 10);
        var e2 = Assert.Throws<DiffusersException>(() => pipe.Generate(promptEmbeds: pos, negativePromptEmbeds: shorter, numInferenceSteps: 1));
        Assert.Equal("StableDiffusionPipeline: prompt_embeds and negative_prompt_embeds must have the same shape when passed directly, but got [1, 77, 32] != [1, 10, 32]", e2.Message);
        var e3 = Assert.Throws<DiffusersException>(() => pipe.Generate(new[] { "a", "b" }, "c", numInferenceSteps: 1));
        Assert.Equal("StableDiffusionPipeline: negative_prompt should be the same type as prompt (a list), but got \"c\"", e3.Message);
    }
}
