using System.Text.Json.Nodes;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines.SingleFile;

/// <summary>
/// Small Stable Diffusion pipeline folders with seeded, perturbed weights, shaped like SD 1.x / 2.x but narrow: widths
/// that are multiples of 64 where the families' head rules need it (so the architecture can be inferred from a single file
/// without a config), the full CLIP vocabulary, and the configs diffusers' single-file defaults give such a file.
/// </summary>
internal static class SyntheticPipelines
{
    /// <summary>SD 1.x layout: 8 heads per attention, conv projections, OpenAI CLIP (quick_gelu) 64 wide.</summary>
    public static readonly UNet2DConditionModelConfig Sd1Unet = new()
    {
        SampleSize = [256], BlockOutChannels = [32, 64], LayersPerBlock = [1],
        DownBlockTypes = ["CrossAttnDownBlock2D", "DownBlock2D"], UpBlockTypes = ["UpBlock2D", "CrossAttnUpBlock2D"],
        CrossAttentionDim = [64], AttentionHeadDim = [8],
    };

    /// <summary>SD 2.x layout: 64 channels per head (attention_head_dim = the per-level head counts), linear projections, OpenCLIP 64 wide.</summary>
    public static readonly UNet2DConditionModelConfig Sd2Unet = new()
    {
        SampleSize = [384], BlockOutChannels = [64, 128], LayersPerBlock = [1],
        DownBlockTypes = ["CrossAttnDownBlock2D", "DownBlock2D"], UpBlockTypes = ["UpBlock2D", "CrossAttnUpBlock2D"],
        CrossAttentionDim = [64], AttentionHeadDim = [1, 2], UseLinearProjection = true,
    };

    public static AutoencoderKLConfig Vae(int imageSize) => new()
    {
        SampleSize = [imageSize], BlockOutChannels = [32, 64], LayersPerBlock = 1,
        DownBlockTypes = ["DownEncoderBlock2D", "DownEncoderBlock2D"], UpBlockTypes = ["UpDecoderBlock2D", "UpDecoderBlock2D"],
    };

    public static CLIPTextConfig Text(bool openClip) => new()
    {
        VocabSize = 49408, HiddenSize = 64, IntermediateSize = openClip ? 256 : 128, NumHiddenLayers = 2, NumAttentionHeads = 1,
        ProjectionDim = openClip ? 512 : 64, HiddenAct = openClip ? "gelu" : "quick_gelu", BosTokenId = 0, EosTokenId = 2, PadTokenId = 1,
    };

    /// <summary>diffusers' single-file scheduler: PNDM from the SD noise schedule.</summary>
    public static string Scheduler(string predictionType) => new JsonObject
    {
        ["_class_name"] = PNDMScheduler.Name, ["beta_end"] = 0.012, ["beta_schedule"] = "scaled_linear", ["beta_start"] = 0.00085,
        ["num_train_timesteps"] = 1000, ["steps_offset"] = 1, ["clip_sample"] = false, ["set_alpha_to_one"] = false,
        ["prediction_type"] = predictionType, ["skip_prk_steps"] = true,
    }.ToJsonString();

    /// <summary>Writes an SD 1.x-like (<paramref name="sd2"/> false) or SD 2.x-like pipeline folder into <paramref name="folder"/>.</summary>
    public static void Write(string folder, bool sd2, int seed = 7, int inChannels = 4)
    {
        var unetConfig = (sd2 ? Sd2Unet : Sd1Unet) with { InChannels = inChannels };
        int imageSize = sd2 ? 768 : 512;
        using (var unet = UNet2DConditionModel.FromConfig(unetConfig)) { Perturb(unet, seed); unet.SavePretrained(Path.Combine(folder, "unet")); }
        using (var vae = AutoencoderKL.FromConfig(Vae(imageSize))) { Perturb(vae, seed + 1); vae.SavePretrained(Path.Combine(folder, "vae")); }
        using (var text = new CLIPTextModel(Text(sd2))) { Perturb(text, seed + 2); text.SavePretrained(Path.Combine(folder, "text_encoder")); }
        ClipVocabulary.WriteTokenizer(Path.Combine(folder, "tokenizer"), sd2 ? "!" : ClipVocabulary.EndOfText);
        using (var scheduler = SchedulerFactory.FromJson(Scheduler(sd2 ? "v_prediction" : "epsilon"))) scheduler.SavePretrained(Path.Combine(folder, "scheduler"));
        File.WriteAllText(Path.Combine(folder, "model_index.json"), new JsonObject
        {
            ["_class_name"] = "StableDiffusionPipeline", ["_diffusers_version"] = "0.25.1",
            ["scheduler"] = new JsonArray("diffusers", "PNDMScheduler"), ["text_encoder"] = new JsonArray("transformers", "CLIPTextModel"),
            ["tokenizer"] = new JsonArray("transformers", "CLIPTokenizer"), ["unet"] = new JsonArray("diffusers", "UNet2DConditionModel"),
            ["vae"] = new JsonArray("diffusers", "AutoencoderKL"),
        }.ToJsonString());
    }

    /// <summary>Adds seeded noise to every parameter, so that no two weights of a kind are equal (zero biases and unit norms would hide swaps).</summary>
    public static void Perturb(nn.Module module, int seed)
    {
        using var g = new Generator((ulong)seed);
        using var noGrad = torch.no_grad();
        foreach (var (_, p) in module.named_parameters())
        {
            using var noise = torch.randn(p.shape, generator: g) * 0.1;
            p.add_(noise);
        }
    }

    /// <summary>Every weight file of a component folder, by key.</summary>
    public static Dictionary<string, Tensor> Weights(string componentFolder) =>
        WeightLoader.ReadFile(new[] { "diffusion_pytorch_model.safetensors", "model.safetensors" }
            .Select(n => Path.Combine(componentFolder, n)).First(File.Exists));
}
