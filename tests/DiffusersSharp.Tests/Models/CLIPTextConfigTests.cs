using System.Text.Json.Nodes;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>
/// CLIPTextConfig read from a full CLIPModel config: transformers 4.36's <c>CLIPTextConfig.from_pretrained</c> takes
/// <c>config_dict["text_config"]</c> when <c>config_dict.get("model_type") == "clip"</c> (configuration_clip.py).
/// </summary>
public class CLIPTextConfigTests
{
    private const string Expected = "tiny-sd-expected.safetensors";

    // shaped like openai/clip-vit-large-patch14's config.json (a CLIPModel): top-level keys of the composite, the text
    // encoder's config under text_config (transformers writes every key there), the vision tower's under vision_config
    private const string FullClipConfig = """
        {
          "architectures": ["CLIPModel"], "initializer_factor": 1.0, "logit_scale_init_value": 2.6592,
          "model_type": "clip", "projection_dim": 768, "torch_dtype": "float32", "transformers_version": null,
          "text_config": {
            "attention_dropout": 0.0, "bos_token_id": 0, "eos_token_id": 2, "hidden_act": "quick_gelu",
            "hidden_size": 768, "initializer_factor": 1.0, "initializer_range": 0.02, "intermediate_size": 3072,
            "layer_norm_eps": 1e-05, "max_position_embeddings": 77, "model_type": "clip_text_model",
            "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 1, "projection_dim": 768, "vocab_size": 49408
          },
          "text_config_dict": {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12, "num_hidden_layers": 12, "projection_dim": 768},
          "vision_config": {"hidden_size": 1024, "intermediate_size": 4096, "model_type": "clip_vision_model", "num_attention_heads": 16, "num_hidden_layers": 24, "patch_size": 14, "projection_dim": 768}
        }
        """;

    [Fact]
    public void AFullClipModelConfigIsReadFromItsTextConfigAndItsOwnKeysAreDropped()
    {
        var c = ConfigJson.Parse<CLIPTextConfig>(FullClipConfig, "config.json");
        c.Validate("config.json");
        Assert.Equal((768, 12, 12, 3072, "quick_gelu", 768, 2, 49408),
            (c.HiddenSize, c.NumAttentionHeads, c.NumHiddenLayers, c.IntermediateSize, c.HiddenAct, c.ProjectionDim, c.EosTokenId!.Value, c.VocabSize));
        Assert.Equal("clip_text_model", c.ModelType);
        // transformers keeps none of the composite's keys: the sub-config alone is the config
        Assert.Null(c.Extra);

        // only model_type "clip" is unwrapped: a text encoder's own config that carries a text_config key is read as it is
        var own = ConfigJson.Parse<CLIPTextConfig>("""{"model_type": "clip_text_model", "hidden_size": 64, "text_config": {"hidden_size": 32}}""", "config.json");
        Assert.Equal(64, own.HiddenSize);
        Assert.True(own.Extra!.ContainsKey("text_config"));
    }

    /// <summary>A folder <paramref name="name"/> whose config.json is a CLIPModel config around tiny-sd's text encoder (projection_dim 8).</summary>
    private static string WriteFullClipConfig(TempDir dir, string name)
    {
        string folder = Path.Combine(dir.Path, name);
        Directory.CreateDirectory(folder);
        var text = JsonNode.Parse(File.ReadAllText(Golden.Path("tiny-sd", "text_encoder", "config.json")))!.AsObject();
        text["projection_dim"] = 8;
        text["architectures"] = null;   // as in openai/clip-vit-large-patch14's text_config
        var full = new JsonObject
        {
            ["architectures"] = new JsonArray("CLIPModel"),
            ["model_type"] = "clip",
            ["projection_dim"] = 8,
            ["logit_scale_init_value"] = 2.6592,
            ["text_config"] = text,
            ["vision_config"] = new JsonObject { ["hidden_size"] = 16, ["model_type"] = "clip_vision_model" },
        };
        File.WriteAllText(Path.Combine(folder, "config.json"), full.ToJsonString());
        return folder;
    }

    [Fact]
    public void TextEncodersLoadFromAFolderWhoseConfigIsAFullClipModelConfig()
    {
        using var dir = new TempDir();
        string folder = WriteFullClipConfig(dir, "text_encoder");
        using var scope = torch.NewDisposeScope();
        var projection = CLIPTextModelTests.SaveWeightsWithProjection(folder, seed: 5);
        using var noGrad = torch.no_grad();
        var model = CLIPTextModelWithProjection.FromPretrained(dir.Path, "text_encoder");
        Assert.Equal((32, 5, 4, 8), (model.Config.HiddenSize, model.Config.NumHiddenLayers, model.Config.NumAttentionHeads, model.Config.ProjectionDim));
        using var output = model.Forward(Golden.Tensor(Expected, "tokenizer/input_ids"));
        Tol.Close(output.LastHiddenState, Golden.Tensor(Expected, "text_encoder/last_hidden_state"), Tol.ModelAbs, "last_hidden_state");
        Tol.Close(output.TextEmbeds, Golden.Tensor(Expected, "text_encoder/pooler_output").matmul(projection.t()), 1e-5, "text_embeds");
    }

    [Fact]
    public void TextEncodersLoadFromAFullClipModelCheckpointWithItsVisionTower()
    {
        // openai/clip-vit-large-patch14 as a text encoder: its config is a CLIPModel's and its weights hold the vision
        // tower, the visual projection and the logit scale, which transformers leaves out (unexpected keys, reported at
        // info level: CLIPTextModelTests.TensorsTheModelLacksAreOneWarningWhenTheConfigsArchitecturesNameItsClass)
        using var dir = new TempDir();
        string folder = WriteFullClipConfig(dir, "clip");
        using var scope = torch.NewDisposeScope();
        var projection = torch.randn(8, 32, generator: new Generator(7));
        using (var f = SafetensorsFile.Open(Golden.Path("tiny-sd", "text_encoder", "model.safetensors")))
        {
            var all = f.LoadAll();
            all["text_projection.weight"] = projection;
            all["vision_model.embeddings.patch_embedding.weight"] = torch.ones(16, 3, 2, 2);
            all["vision_model.embeddings.position_ids"] = torch.arange(5).unsqueeze(0);
            all["vision_model.post_layernorm.weight"] = torch.ones(16);
            all["visual_projection.weight"] = torch.ones(8, 16);
            all["logit_scale"] = torch.tensor(2.6592f);
            SafetensorsFile.Save(Path.Combine(folder, "model.safetensors"), all);
        }
        using var noGrad = torch.no_grad();
        var ids = Golden.Tensor(Expected, "tokenizer/input_ids");
        var log = new List<string>();
        var withProjection = CLIPTextModelWithProjection.FromPretrained(dir.Path, "clip", new LoadOptions { Log = log.Add });
        using (var output = withProjection.Forward(ids))
        {
            Tol.Close(output.LastHiddenState, Golden.Tensor(Expected, "text_encoder/last_hidden_state"), Tol.ModelAbs, "last_hidden_state");
            Tol.Close(output.TextEmbeds, Golden.Tensor(Expected, "text_encoder/pooler_output").matmul(projection.t()), 1e-5, "text_embeds");
        }
        var plain = CLIPTextModel.FromPretrained(dir.Path, "clip", new LoadOptions { Log = log.Add });
        using (var output = plain.Forward(ids))
            Tol.Close(output.PoolerOutput, Golden.Tensor(Expected, "text_encoder/pooler_output"), Tol.ModelAbs, "pooler_output");

        // transformers logs the unused tensors at info level only: the text_config's architectures name neither class
        Assert.Empty(log);
    }

    [Theory]
    [InlineData("""{"model_type": "clip", "hidden_size": 32}""",
        "config key 'text_config' is missing: model_type 'clip' is a composite config, and CLIPTextConfig is read from its 'text_config' object")]
    [InlineData("""{"model_type": "clip", "text_config": null}""",
        "config key 'text_config' must be an object ({\"key\": value, …}), not null: model_type 'clip' is a composite config, and CLIPTextConfig is read from its 'text_config' object")]
    public void AClipModelConfigWithoutATextConfigObjectIsRefused(string json, string message)
    {
        var e = Assert.Throws<ConfigException>(() => ConfigJson.Parse<CLIPTextConfig>(json, "te/config.json"));
        Assert.Equal($"te/config.json: {message}", e.Message);
        Assert.Equal("text_config", e.Key);
    }

    [Fact]
    public void AWrongValueInsideTheTextConfigNamesItsFullKey()
    {
        var e = Assert.Throws<ConfigException>(() => ConfigJson.Parse<CLIPTextConfig>(
            """{"model_type": "clip", "text_config": {"hidden_size": "wide"}}""", "te/config.json"));
        Assert.Equal("te/config.json: config key 'text_config.hidden_size' has a value of the wrong type or form for CLIPTextConfig: expected an integer (-2147483648 to 2147483647)", e.Message);
        Assert.Equal("text_config.hidden_size", e.Key);
    }
}
