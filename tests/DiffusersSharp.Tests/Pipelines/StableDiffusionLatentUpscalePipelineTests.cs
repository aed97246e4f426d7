using System.Text.Json.Nodes;
using DiffusersSharp.Loading;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>
/// <see cref="StableDiffusionLatentUpscalePipeline"/> (tiny-sd's text encoder, tokenizer and VAE with the tiny K-block UNet of
/// tests/golden/latent-upscale) against diffusers 0.25.1's StableDiffusionLatentUpscalePipeline (that folder's make.py and
/// README: the same components, the text encoder's real-transformers outputs).
/// </summary>
public class StableDiffusionLatentUpscalePipelineTests
{
    private const string Expected = "latent-upscale/latent-upscale-expected.safetensors";

    private static Tensor G(string key) => Golden.Tensor(Expected, key);

    /// <summary>
    /// A StableDiffusionLatentUpscalePipeline folder: tiny-sd's tokenizer, text_encoder and vae, the golden K-block unet and
    /// the EulerDiscreteScheduler config make.py used.
    /// </summary>
    internal static TempDir AssembleFolder()
    {
        var dir = new TempDir();
        foreach (var (name, src) in new[] { ("tokenizer", "tiny-sd"), ("text_encoder", "tiny-sd"), ("vae", "tiny-sd"), ("unet", "latent-upscale") })
        {
            Directory.CreateDirectory(dir.File(name));
            foreach (var f in Directory.GetFiles(Golden.Path(src, name)))
                File.Copy(f, Path.Combine(dir.File(name), Path.GetFileName(f)));
        }
        var scheduler = JsonNode.Parse(Golden.Json("latent-upscale/latent-upscale-expected.json").RootElement.GetProperty("scheduler_config").GetRawText())!.AsObject();
        scheduler["_class_name"] = EulerDiscreteScheduler.Name;
        Directory.CreateDirectory(dir.File("scheduler"));
        File.WriteAllText(Path.Combine(dir.File("scheduler"), "scheduler_config.json"), scheduler.ToJsonString());
        var index = new JsonObject
        {
            ["_class_name"] = StableDiffusionLatentUpscalePipeline.Name,
            ["_diffusers_version"] = "0.25.1",
            ["scheduler"] = new JsonArray("diffusers", EulerDiscreteScheduler.Name),
            ["text_encoder"] = new JsonArray("transformers", "CLIPTextModel"),
            ["tokenizer"] = new JsonArray("transformers", "CLIPTokenizer"),
            ["unet"] = new JsonArray("diffusers", "UNet2DConditionModel"),
            ["vae"] = new JsonArray("diffusers", "AutoencoderKL"),
        };
        File.WriteAllText(dir.File("model_index.json"), index.ToJsonString());
        return dir;
    }

    [Theory]
    [InlineData("g0_latent", 0.0, null, false)]
    [InlineData("g1_latent", 1.0, null, false)]
    [InlineData("g7_5_latent", 7.5, null, false)]
    [InlineData("g7_5_np", 7.5, "a photo of a cat", true)]
    [InlineData("g0_seed_np", 0.0, null, true)]
    public void LatentUpscaleRunMatchesDiffusers(string run, double guidance, string? negative, bool np)
    {
        using var folder = AssembleFolder();
        using var loaded = DiffusionPipeline.FromPretrained(folder.Path);
        var pipe = Assert.IsType<StableDiffusionLatentUpscalePipeline>(loaded);
        bool seeded = run.Contains("seed", StringComparison.Ordinal);
        var steps = new List<Tensor>();
        using var result = pipe.Generate("a photo of a cat", G("pipeline/image"), numInferenceSteps: 3, guidanceScale: guidance,
            negativePrompt: negative, seed: seeded ? 0 : null, latents: seeded ? null : G($"pipeline/{run}/latents_in"),
            outputType: np ? OutputType.Np : OutputType.Latent,
            callbackOnStepEnd: (_, _, tensors) => steps.Add(tensors["latents"].clone().DetachFromDisposeScope()));
        using (var stacked = torch.stack(steps))
            Tol.Close(stacked, G($"pipeline/{run}/step_latents"), Tol.ModelAbs, run + " step latents");
        foreach (var s in steps) s.Dispose();
        Tol.Close(np ? result.Array! : result.Tensor!, G($"pipeline/{run}/output"), Tol.ModelAbs, run + " output");
    }

    [Fact]
    public void TheStepEndCallbackSeesTheImageConditionAndTheTimestepCondition()
    {
        using var folder = AssembleFolder();
        using var pipe = StableDiffusionLatentUpscalePipeline.FromPretrained(folder.Path);
        var seen = new List<string>();
        long[]? imageCond = null, timestepCond = null;
        using var result = pipe.Generate("a photo of a cat", G("pipeline/image"), numInferenceSteps: 1, guidanceScale: 7.5,
            latents: G("pipeline/g7_5_latent/latents_in"), outputType: OutputType.Latent, callbackOnStepEnd: (_, _, tensors) =>
            {
                seen.AddRange(tensors.Keys.Order(StringComparer.Ordinal));
                imageCond = tensors["image_cond"].shape;
                timestepCond = tensors["timestep_cond"].shape;
                using var ones = tensors["timestep_cond"].narrow(1, 0, 64).sum();
                using var zeros = tensors["timestep_cond"].narrow(1, 64, 64).abs().sum();
                Assert.Equal(2 * 64, ones.item<float>());
                Assert.Equal(0, zeros.item<float>());
            });
        Assert.Equal(["image_cond", "latents", "negative_prompt_embeds", "prompt_embeds", "timestep_cond"], seen);
        Assert.Equal([2L, 4, 16, 16], imageCond!);
        Assert.Equal([2L, 160], timestepCond!);
    }

    [Fact]
    public void DiffusionPipelineLoadsTheLatentUpscalerAndItsOwnFromPretrainedRefusesAnotherClass()
    {
        using var folder = AssembleFolder();
        var logged = new List<string>();
        using (var loaded = DiffusionPipeline.FromPretrained(folder.Path, new LoadOptions { Log = logged.Add }))
        {
            var pipe = Assert.IsType<StableDiffusionLatentUpscalePipeline>(loaded);
            Assert.Empty(logged);
            Assert.Equal(8, pipe.Unet.Config.InChannels);
            Assert.Equal(EulerDiscreteScheduler.Name, pipe.Scheduler.ClassName);
            Assert.Equal(["scheduler", "text_encoder", "tokenizer", "unet", "vae"], pipe.Components.Keys.Order(StringComparer.Ordinal));
        }
        var e = Assert.Throws<ConfigException>(() => StableDiffusionLatentUpscalePipeline.FromPretrained(StableDiffusionPipelineTests.Model));
        string index = Path.Combine(StableDiffusionPipelineTests.Model, "model_index.json");
        Assert.Equal($"{index}: _class_name is \"StableDiffusionPipeline\", but StableDiffusionLatentUpscalePipeline.FromPretrained needs a StableDiffusionLatentUpscalePipeline folder", e.Message);
    }

    [Fact]
    public void AUnetThatDoesNotTakeTheImageLatentsIsRefusedNamingItsConfigKey()
    {
        using var folder = AssembleFolder();
        // tiny-sd's UNet: 4 input channels, no time_cond_proj_dim
        foreach (var f in Directory.GetFiles(folder.File("unet"))) File.Delete(f);
        foreach (var f in Directory.GetFiles(Golden.Path("tiny-sd", "unet"))) File.Copy(f, Path.Combine(folder.File("unet"), Path.GetFileName(f)));
        string config = Path.Combine(folder.File("unet"), "config.json");
        var e = Assert.Throws<ConfigException>(() => DiffusionPipeline.FromPretrained(folder.Path));
        Assert.Equal($"{config}: config key 'in_channels': the UNet's in_channels is 4, but StableDiffusionLatentUpscalePipeline feeds it " +
            "num_channels_latents 4 + num_channels_image 4 = 8 (the latents and the image latents, concatenated). A latent upscaler UNet, such as " +
            "stabilityai/sd-x2-latent-upscaler's, takes 8", e.Message);
        Assert.Equal(config, e.FilePath);
    }

    /// <summary>
    /// diffusers 0.25.1's class is StableDiffusionLatentUpscalePipeline(DiffusionPipeline, FromSingleFileMixin): none of the
    /// loader mixins, so every loading member the base offers is refused by name, before it reads anything, and nothing
    /// changes (the UNet keeps no LoRA or IP-Adapter, the tokenizer no new token).
    /// </summary>
    [Fact]
    public void LoRATextualInversionAndIPAdapterAreRefusedAsDiffusersLatentUpscalerHasNoneOfTheirMixins()
    {
        using var folder = AssembleFolder();
        using var pipe = StableDiffusionLatentUpscalePipeline.FromPretrained(folder.Path);
        Assert.False(pipe.Supports(LoaderMixins.Lora));
        Assert.False(pipe.Supports(LoaderMixins.TextualInversion));
        Assert.False(pipe.Supports(LoaderMixins.IPAdapter));
        int vocab = pipe.Tokenizer.MaxTokenId;
        const string prefix = "StableDiffusionLatentUpscalePipeline: ";
        const string diffusers = " is not available: diffusers 0.25.1's StableDiffusionLatentUpscalePipeline has no ";
        void Refused(Action call, string member, string method, string mixin) =>
            Assert.Equal($"{prefix}{member}{diffusers}{method} (its class has no {mixin})", Assert.Throws<DiffusersException>(call).Message);
        string lora = Golden.Path("tiny-sd-lora", "kohya.safetensors");
        Refused(() => pipe.LoadLoraWeights(lora), "LoadLoraWeights", "load_lora_weights", "LoraLoaderMixin");
        Refused(() => pipe.LoadLoraWeights(lora, new DiffusersSharp.Models.Lora.LoraLoadOptions { AdapterName = "k" }), "LoadLoraWeights", "load_lora_weights", "LoraLoaderMixin");
        Refused(() => pipe.FuseLora(), "FuseLora", "fuse_lora", "LoraLoaderMixin");
        Refused(() => pipe.UnfuseLora(), "UnfuseLora", "unfuse_lora", "LoraLoaderMixin");
        Refused(pipe.UnloadLoraWeights, "UnloadLoraWeights", "unload_lora_weights", "LoraLoaderMixin");
        Refused(() => pipe.SetAdapters(["k"]), "SetAdapters", "set_adapters", "LoraLoaderMixin");
        string embedding = Golden.Path("tiny-sd-textual-inversion", "learned_embeds.safetensors");
        Refused(() => pipe.LoadTextualInversion(embedding, token: "<cat-toy>"), "LoadTextualInversion", "load_textual_inversion", "TextualInversionLoaderMixin");
        Refused(() => pipe.LoadTextualInversion([embedding], ["<cat-toy>"]), "LoadTextualInversion", "load_textual_inversion", "TextualInversionLoaderMixin");
        Refused(() => pipe.LoadTextualInversion(Array.Empty<TextualInversionEmbedding>()), "LoadTextualInversion", "load_textual_inversion", "TextualInversionLoaderMixin");
        Refused(() => pipe.LoadIPAdapter(Golden.Path("ip-adapter"), "", "ip-adapter-basic.bin"), "LoadIPAdapter", "load_ip_adapter", "IPAdapterMixin");
        Refused(() => pipe.SetIPAdapterScale(0.5), "SetIPAdapterScale", "set_ip_adapter_scale", "IPAdapterMixin");
        Assert.Empty(pipe.LoraAdapterNames);
        Assert.Null(pipe.IPAdapterImageProjection);
        Assert.Null(pipe.ImageEncoder);
        Assert.Equal(vocab, pipe.Tokenizer.MaxTokenId);
    }

    [Fact]
    public void ASchedulerWithoutKDiffusionSigmasAndBadImagesAreRefused()
    {
        using var folder = AssembleFolder();
        using var pipe = StableDiffusionLatentUpscalePipeline.FromPretrained(folder.Path);
        using var image = G("pipeline/image");
        var e = Assert.Throws<DiffusersException>(() => pipe.Generate(new[] { "a", "b" }, image, numInferenceSteps: 1));
        Assert.Equal("StableDiffusionLatentUpscalePipeline: prompt has batch size 2 and image has batch size 1. Please make sure that passed " +
            "prompt matches the batch size of image.", e.Message);
        using var twoChannels = torch.zeros(1, 2, 8, 8);
        e = Assert.Throws<DiffusersException>(() => pipe.Generate("a", twoChannels, numInferenceSteps: 1));
        Assert.Equal("StableDiffusionLatentUpscalePipeline: the image has 2 channels; pass Stable Diffusion latents (4 channels) or an image of " +
            "the VAE's 3 channels (RGB)", e.Message);
        using (var old = pipe.Scheduler)
            pipe.Scheduler = SchedulerFactory.FromConfig(DDIMScheduler.Name, old.Config);
        e = Assert.Throws<DiffusersException>(() => pipe.Generate("a", image, numInferenceSteps: 1));
        Assert.Equal("StableDiffusionLatentUpscalePipeline: the scheduler is a DDIMScheduler; the pipeline preconditions the UNet with the σ of " +
            "step i (sigmas[i], scale_model_input), which needs one of EulerDiscreteScheduler, EulerAncestralDiscreteScheduler, LMSDiscreteScheduler " +
            "(the model's is EulerDiscreteScheduler)", e.Message);
    }
}

/// <summary>Tests that seed torch's process-wide generator and draw from it, as diffusers does without a generator: alone, after the parallel ones.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GlobalGeneratorCollection
{
    public const string Name = "torch's global generator (not parallel)";
}

/// <summary>
/// <see cref="StableDiffusionLatentUpscalePipeline"/> on an RGB image without a seed or generator, against diffusers 0.25.1
/// after the same <c>torch.manual_seed</c> (tests/golden/latent-upscale/make.py, part 3).
/// </summary>
[Collection(GlobalGeneratorCollection.Name)]
public class StableDiffusionLatentUpscaleGlobalGeneratorTests
{
    /// <summary>
    /// An RGB tensor in [0, 1] (the image processor takes it to [−1, 1]) is VAE-encoded with a posterior sample; without a
    /// generator diffusers draws that sample, then the initial latents, from torch's global generator, and so does Generate
    /// without a seed: after torch.manual_seed(35) both give the same step latents and image (guidance 7.5).
    /// </summary>
    [Fact]
    public void AnRgbImageWithoutASeedMatchesDiffusersAfterTheSameTorchManualSeed()
    {
        const string expected = "latent-upscale/latent-upscale-expected.safetensors";
        using var folder = StableDiffusionLatentUpscalePipelineTests.AssembleFolder();
        using var pipe = StableDiffusionLatentUpscalePipeline.FromPretrained(folder.Path);
        using var rgb = Golden.Tensor(expected, "pipeline/rgb_image");
        var steps = new List<Tensor>();
        torch.manual_seed(35);
        using var result = pipe.Generate("a photo of a cat", rgb, numInferenceSteps: 3, guidanceScale: 7.5, outputType: OutputType.Np,
            callbackOnStepEnd: (_, _, tensors) => steps.Add(tensors["latents"].clone().DetachFromDisposeScope()));
        using (var stacked = torch.stack(steps))
            Tol.Close(stacked, Golden.Tensor(expected, "pipeline/rgb_global_g7_5_np/step_latents"), Tol.ModelAbs, "rgb step latents");
        foreach (var s in steps) s.Dispose();
        Tol.Close(result.Array!, Golden.Tensor(expected, "pipeline/rgb_global_g7_5_np/output"), Tol.ModelAbs, "rgb output");
    }
}
