using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>CLIPTextModel / CLIPTextModelWithProjection against transformers 4.36 (golden tiny-sd text encoder).</summary>
public class CLIPTextModelTests
{
    private const string Expected = "tiny-sd-expected.safetensors";
    private static readonly Lazy<CLIPTextModel> Tiny = new(() => CLIPTextModel.FromPretrained(Golden.Path("tiny-sd"), "text_encoder"));

    private static Tensor Ids() => Golden.Tensor(Expected, "tokenizer/input_ids");

    [Fact]
    public void ConfigIsReadFromTheFolder()
    {
        var c = Tiny.Value.Config;
        Assert.Equal((32, 37, 5, 4, 77, 1000), (c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.NumAttentionHeads, c.MaxPositionEmbeddings, c.VocabSize));
        Assert.Equal("quick_gelu", c.HiddenAct);
        Assert.Equal(999, c.EosTokenId);
        Assert.Equal(512, c.ProjectionDim);
    }

    [Fact]
    public void LastHiddenStateAndPooledOutputMatchTransformers()
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        using var output = Tiny.Value.Forward(Ids());
        Tol.Close(output.LastHiddenState, Golden.Tensor(Expected, "text_encoder/last_hidden_state"), Tol.ModelAbs, "last_hidden_state");
        Tol.Close(output.PoolerOutput, Golden.Tensor(Expected, "text_encoder/pooler_output"), Tol.ModelAbs, "pooler_output");
        Assert.Null(output.HiddenStates);
    }

    [Fact]
    public void HiddenStatesPerLayerMatchTransformersAndClipSkipNormIsTheFinalNorm()
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var ids = Ids()[..2];
        using var output = Tiny.Value.Forward(ids, outputHiddenStates: true);
        var expected = Golden.Tensor(Expected, "text_encoder/hidden_states_prompts01");
        Assert.NotNull(output.HiddenStates);
        Assert.Equal(6, output.HiddenStates!.Count);
        for (int k = 0; k < 6; k++)
            Tol.Close(output.HiddenStates[k], expected[k], Tol.ModelAbs, $"hidden_states[{k}]");
        // clip_skip = 0 path of diffusers: final_layer_norm(hidden_states[-1]) is last_hidden_state.
        Tol.Close(Tiny.Value.FinalLayerNorm(output.HiddenStates[^1]), output.LastHiddenState, 0, "final norm of hidden_states[-1]");
    }

    [Fact]
    public void AttentionMaskOfOnesChangesNothingAndPaddingDoesNotReachRealTokens()
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var ids = Ids();
        var mask = Golden.Tensor(Expected, "tokenizer/attention_mask");
        using var plain = Tiny.Value.Forward(ids);
        using var ones = Tiny.Value.Forward(ids, torch.ones_like(mask));
        Tol.Close(ones.LastHiddenState, plain.LastHiddenState, 1e-6, "all-ones mask");
        using var masked = Tiny.Value.Forward(ids, mask);
        // The causal mask already keeps padding (after EOS) from real tokens: equal where mask == 1.
        var keep = mask.unsqueeze(-1).to(ScalarType.Bool);
        Tol.Close(masked.LastHiddenState.masked_fill(keep.logical_not(), 0), plain.LastHiddenState.masked_fill(keep.logical_not(), 0), 1e-6, "padding mask");
        Tol.Close(masked.PoolerOutput, plain.PoolerOutput, 1e-6, "pooled with padding mask");
    }

    [Fact]
    public void LegacyPositionIdsInTheFileAreIgnored()
    {
        using var dir = new TempDir();
        string folder = Path.Combine(dir.Path, "text_encoder");
        Directory.CreateDirectory(folder);
        File.Copy(Golden.Path("tiny-sd", "text_encoder", "config.json"), Path.Combine(folder, "config.json"));
        using (var f = SafetensorsFile.Open(Golden.Path("tiny-sd", "text_encoder", "model.safetensors")))
        {
            var all = f.LoadAll();
            all["text_model.embeddings.position_ids"] = torch.arange(77, dtype: ScalarType.Int64).unsqueeze(0);
            SafetensorsFile.Save(Path.Combine(folder, "model.safetensors"), all);
        }
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var model = CLIPTextModel.FromPretrained(dir.Path, "text_encoder");
        using var output = model.Forward(Ids());
        Tol.Close(output.LastHiddenState, Golden.Tensor(Expected, "text_encoder/last_hidden_state"), Tol.ModelAbs, "last_hidden_state");
    }

    /// <summary>
    /// Writes the tiny-sd text encoder's weights and a random <c>text_projection.weight</c> [8, 32] drawn with
    /// <paramref name="seed"/> as <c>{folder}/model.safetensors</c>; returns the projection (in the caller's dispose scope).
    /// </summary>
    internal static Tensor SaveWeightsWithProjection(string folder, ulong seed)
    {
        var projection = torch.randn(8, 32, generator: new Generator(seed));
        using var f = SafetensorsFile.Open(Golden.Path("tiny-sd", "text_encoder", "model.safetensors"));
        var all = f.LoadAll();
        all["text_projection.weight"] = projection;
        SafetensorsFile.Save(Path.Combine(folder, "model.safetensors"), all);
        return projection;
    }

    [Fact]
    public void WithProjectionAppliesTextProjectionToThePooledOutput()
    {
        using var dir = new TempDir();
        string folder = Path.Combine(dir.Path, "text_encoder_2");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"),
            File.ReadAllText(Golden.Path("tiny-sd", "text_encoder", "config.json")).Replace("\"projection_dim\": 512", "\"projection_dim\": 8"));
        using var scope = torch.NewDisposeScope();
        var projection = SaveWeightsWithProjection(folder, seed: 3);
        using var noGrad = torch.no_grad();
        var model = CLIPTextModelWithProjection.FromPretrained(dir.Path, "text_encoder_2");
        using var output = model.Forward(Ids());
        var pooled = Golden.Tensor(Expected, "text_encoder/pooler_output");
        Tol.Close(output.TextEmbeds, pooled.matmul(projection.t()), 1e-5, "text_embeds");
        Tol.Close(output.LastHiddenState, Golden.Tensor(Expected, "text_encoder/last_hidden_state"), Tol.ModelAbs, "last_hidden_state");
    }

    /// <summary>
    /// A text encoder folder of tiny-sd's config (projection_dim 8) with <paramref name="architectures"/> and weights
    /// holding, besides the text encoder's, a CLIPModel's other tensors and the legacy position_ids buffer.
    /// </summary>
    private static string WriteWithClipModelTensors(TempDir dir, string architectures)
    {
        string folder = Path.Combine(dir.Path, "text_encoder");
        Directory.CreateDirectory(folder);
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Golden.Path("tiny-sd", "text_encoder", "config.json")))!.AsObject();
        config["projection_dim"] = 8;
        config["architectures"] = System.Text.Json.Nodes.JsonNode.Parse(architectures);
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString());
        using var scope = torch.NewDisposeScope();
        using var f = SafetensorsFile.Open(Golden.Path("tiny-sd", "text_encoder", "model.safetensors"));
        var all = f.LoadAll();
        all["text_model.embeddings.position_ids"] = torch.arange(77, dtype: ScalarType.Int64).unsqueeze(0);
        all["text_projection.weight"] = torch.randn(8, 32, generator: new Generator(3));
        all["vision_model.embeddings.patch_embedding.weight"] = torch.ones(16, 3, 2, 2);
        all["vision_model.embeddings.position_ids"] = torch.arange(5).unsqueeze(0);
        all["visual_projection.weight"] = torch.ones(8, 16);
        all["logit_scale"] = torch.tensor(2.6592f);
        SafetensorsFile.Save(Path.Combine(folder, "model.safetensors"), all);
        return folder;
    }

    [Fact]
    public void SavePretrainedStampsArchitecturesAndTorchDtypeAsTransformersDoes()
    {
        // transformers' save_pretrained: config.architectures = [the saved class], config.torch_dtype = the weights' dtype
        // (tiny-sdxl's text_encoder_2 config says ["CLIPTextModelWithProjection"] and "float32"; saved as the model without
        // the projection, in bf16)
        using var dir = new TempDir();
        using var scope = torch.NewDisposeScope();
        var model = CLIPTextModel.FromPretrained(Golden.Path("tiny-sdxl"), "text_encoder_2",
            new LoadOptions { Dtype = ScalarType.BFloat16, Log = _ => { } });
        string folder = Path.Combine(dir.Path, "saved");
        model.SavePretrained(folder);
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "config.json")))!.AsObject();
        Assert.Equal(["CLIPTextModel"], config["architectures"]!.AsArray().Select(a => (string?)a));
        Assert.Equal("bfloat16", (string?)config["torch_dtype"]);
        Assert.Equal("clip_text_model", (string?)config["model_type"]);
    }

    [Fact]
    public void TensorsTheModelLacksAreOneWarningWhenTheConfigsArchitecturesNameItsClass()
    {
        // transformers 4.36: "Some weights of the model checkpoint at … were not used when initializing CLIPTextModel"
        // is logger.warning when config.architectures lists the class, logger.info (not shown) when not; the model's
        // non-persistent position_ids buffer is never among them
        using var dir = new TempDir();
        string folder = WriteWithClipModelTensors(dir, """["CLIPTextModel"]""");
        string file = Path.Combine(folder, "model.safetensors");
        var log = new List<string>();
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var model = CLIPTextModel.FromPretrained(dir.Path, "text_encoder", new LoadOptions { Log = log.Add });
        Assert.Equal([$"{file}: 5 weight(s) of the file are not in CLIPTextModel and were not loaded: logit_scale [], "
            + "text_projection.weight [8, 32], vision_model.embeddings.patch_embedding.weight [16, 3, 2, 2], "
            + "vision_model.embeddings.position_ids [1, 5], visual_projection.weight [8, 16]"], log);
        using (var output = model.Forward(Ids()))
            Tol.Close(output.LastHiddenState, Golden.Tensor(Expected, "text_encoder/last_hidden_state"), Tol.ModelAbs, "last_hidden_state");

        // CLIPTextModelWithProjection is not the class the config names: the same kind of tensors, no warning
        log.Clear();
        using (var output = CLIPTextModelWithProjection.FromPretrained(dir.Path, "text_encoder", new LoadOptions { Log = log.Add }).Forward(Ids()))
            Tol.Close(output.LastHiddenState, Golden.Tensor(Expected, "text_encoder/last_hidden_state"), Tol.ModelAbs, "last_hidden_state");
        Assert.Empty(log);

        // and the other way round
        WriteWithClipModelTensors(dir, """["CLIPTextModelWithProjection"]""");
        CLIPTextModel.FromPretrained(dir.Path, "text_encoder", new LoadOptions { Log = log.Add });
        Assert.Empty(log);
        CLIPTextModelWithProjection.FromPretrained(dir.Path, "text_encoder", new LoadOptions { Log = log.Add });
        Assert.Equal([$"{file}: 4 weight(s) of the file are not in CLIPTextModelWithProjection and were not loaded: logit_scale [], "
            + "vision_model.embeddings.patch_embedding.weight [16, 3, 2, 2], vision_model.embeddings.position_ids [1, 5], "
            + "visual_projection.weight [8, 16]"], log);
    }

    [Fact]
    public void WithProjectionOnAPlainTextEncoderNamesTheMissingWeight()
    {
        var ex = Assert.Throws<WeightsException>(() => CLIPTextModelWithProjection.FromPretrained(Golden.Path("tiny-sd"), "text_encoder"));
        Assert.Contains("missing keys: text_projection.weight", ex.Message);
        Assert.Contains("model.safetensors", ex.Message);
    }

    [Fact]
    public void Bfloat16LoadRunsInBfloat16()
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var model = CLIPTextModel.FromPretrained(Golden.Path("tiny-sd"), "text_encoder", new() { Dtype = ScalarType.BFloat16 });
        Assert.Equal(ScalarType.BFloat16, model.Dtype);
        using var output = model.Forward(Ids());
        Assert.Equal(ScalarType.BFloat16, output.LastHiddenState.dtype);
        Tol.Close(output.LastHiddenState, Golden.Tensor(Expected, "text_encoder/last_hidden_state"), 0.1, "bf16 last_hidden_state");
    }

    [Fact]
    public void LegacyEosTokenId2PoolsAtTheLargestInputId()
    {
        // Configs of OpenAI / OpenCLIP checkpoints say eos_token_id 2: transformers then pools at argmax(input_ids),
        // which for these prompts (EOS 999 is the largest id) is the first EOS, so the golden pooled output holds.
        using var dir = new TempDir();
        string folder = Path.Combine(dir.Path, "text_encoder");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"),
            File.ReadAllText(Golden.Path("tiny-sd", "text_encoder", "config.json")).Replace("\"eos_token_id\": 999", "\"eos_token_id\": 2"));
        File.Copy(Golden.Path("tiny-sd", "text_encoder", "model.safetensors"), Path.Combine(folder, "model.safetensors"));
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var model = CLIPTextModel.FromPretrained(dir.Path, "text_encoder");
        Assert.Equal(2, model.Config.EosTokenId);
        using var output = model.Forward(Ids());
        Tol.Close(output.PoolerOutput, Golden.Tensor(Expected, "text_encoder/pooler_output"), Tol.ModelAbs, "pooler_output (argmax)");
    }

    [Theory]
    // The public text_encoder/config.json of runwayml/stable-diffusion-v1-5 and stabilityai/stable-diffusion-2-1.
    [InlineData("""{"_name_or_path": "openai/clip-vit-large-patch14", "architectures": ["CLIPTextModel"], "attention_dropout": 0.0, "bos_token_id": 0, "dropout": 0.0, "eos_token_id": 2, "hidden_act": "quick_gelu", "hidden_size": 768, "initializer_factor": 1.0, "initializer_range": 0.02, "intermediate_size": 3072, "layer_norm_eps": 1e-05, "max_position_embeddings": 77, "model_type": "clip_text_model", "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 1, "projection_dim": 768, "torch_dtype": "float32", "transformers_version": "4.22.0.dev0", "vocab_size": 49408}""",
        768, 12, 12, 3072, "quick_gelu", 768)]
    [InlineData("""{"_name_or_path": "hf-models/stable-diffusion-v2-768x768/text_encoder", "architectures": ["CLIPTextModel"], "attention_dropout": 0.0, "bos_token_id": 0, "dropout": 0.0, "eos_token_id": 2, "hidden_act": "gelu", "hidden_size": 1024, "initializer_factor": 1.0, "initializer_range": 0.02, "intermediate_size": 4096, "layer_norm_eps": 1e-05, "max_position_embeddings": 77, "model_type": "clip_text_model", "num_attention_heads": 16, "num_hidden_layers": 23, "pad_token_id": 1, "projection_dim": 512, "torch_dtype": "float32", "transformers_version": "4.25.0.dev0", "vocab_size": 49408}""",
        1024, 16, 23, 4096, "gelu", 512)]
    public void RealStableDiffusionConfigsParse(string json, int hidden, int heads, int layers, int intermediate, string act, int projection)
    {
        var c = ConfigJson.Parse<CLIPTextConfig>(json, "config.json");
        c.Validate("config.json");
        Assert.Equal((hidden, heads, layers, intermediate, act, projection, 2, 49408),
            (c.HiddenSize, c.NumAttentionHeads, c.NumHiddenLayers, c.IntermediateSize, c.HiddenAct, c.ProjectionDim, c.EosTokenId!.Value, c.VocabSize));
        Assert.True(c.Extra!.ContainsKey("architectures"));
    }

    [Fact]
    public void SavePretrainedRoundTripsConfigAndWeights()
    {
        using var dir = new TempDir();
        string folder = Path.Combine(dir.Path, "text_encoder");
        Tiny.Value.SavePretrained(folder);

        using (var original = Golden.Json(Path.Combine("tiny-sd", "text_encoder", "config.json")))
        using (var saved = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "config.json"))))
        {
            foreach (var p in original.RootElement.EnumerateObject())
            {
                var v = saved.RootElement.GetProperty(p.Name);
                if (p.Value.ValueKind == System.Text.Json.JsonValueKind.Number) Assert.Equal(p.Value.GetDouble(), v.GetDouble());
                else Assert.Equal(p.Value.GetRawText().Replace(" ", "").Replace("\n", ""), v.GetRawText().Replace(" ", "").Replace("\r", "").Replace("\n", ""));
            }
            Assert.False(saved.RootElement.TryGetProperty("_class_name", out _));
        }
        using (var a = SafetensorsFile.Open(Golden.Path("tiny-sd", "text_encoder", "model.safetensors")))
        using (var b = SafetensorsFile.Open(Path.Combine(folder, "model.safetensors")))
        {
            Assert.Equal(a.Keys.OrderBy(k => k, StringComparer.Ordinal), b.Keys.OrderBy(k => k, StringComparer.Ordinal));
            Assert.Equal("pt", b.Metadata["format"]);
            foreach (var k in a.Keys)
            {
                using var x = a.Load(k);
                using var y = b.Load(k);
                Tol.Close(y, x, 0, k);
            }
        }
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var reloaded = CLIPTextModel.FromPretrained(dir.Path, "text_encoder");
        using var output = reloaded.Forward(Ids());
        using var reference = Tiny.Value.Forward(Ids());
        Tol.Close(output.LastHiddenState, reference.LastHiddenState, 0, "reloaded last_hidden_state");
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void ModelLoadedInsideADisposeScopeKeepsItsWeights(ScalarType dtype)
    {
        // TorchSharp puts tensors made inside a scope into it, parameters of native modules included.
        CLIPTextModel model;
        using (torch.NewDisposeScope())
            model = CLIPTextModel.FromPretrained(Golden.Path("tiny-sd"), "text_encoder", new() { Dtype = dtype });
        using (var f = SafetensorsFile.Open(Golden.Path("tiny-sd", "text_encoder", "model.safetensors")))
            Assert.Equal(f.Keys.OrderBy(k => k, StringComparer.Ordinal), model.named_parameters().Select(p => p.name).OrderBy(k => k, StringComparer.Ordinal));
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        using var output = model.Forward(Ids());
        Tol.Close(output.LastHiddenState, Golden.Tensor(Expected, "text_encoder/last_hidden_state"), dtype == ScalarType.Float32 ? Tol.ModelAbs : 0.1, "last_hidden_state");
    }

    [Fact]
    public void UnsupportedActivationIsNamed()
    {
        using var dir = new TempDir();
        string folder = Path.Combine(dir.Path, "text_encoder");
        Directory.CreateDirectory(folder);
        string cfg = Path.Combine(folder, "config.json");
        File.WriteAllText(cfg, File.ReadAllText(Golden.Path("tiny-sd", "text_encoder", "config.json")).Replace("\"quick_gelu\"", "\"mish\""));
        var ex = Assert.Throws<ConfigException>(() => CLIPTextModel.FromPretrained(dir.Path, "text_encoder"));
        Assert.Equal($"{cfg}: hidden_act 'mish' is not supported (quick_gelu, gelu, gelu_new, gelu_pytorch_tanh, relu, silu, swish)", ex.Message);
        Assert.Equal("hidden_act", ex.Key);
    }

    [Fact]
    public void TooManyTokensAreRefused()
    {
        using var scope = torch.NewDisposeScope();
        var ids = torch.zeros(1, 78, dtype: ScalarType.Int64);
        var ex = Assert.Throws<ArgumentException>(() => Tiny.Value.Forward(ids));
        Assert.StartsWith("input_ids has 78 tokens but the text encoder has 77 positions (max_position_embeddings)", ex.Message);
    }

    [Fact]
    public void TokenIdsOutsideTheVocabularyAreNamed()
    {
        // libtorch's lookup says "index out of range in self" (as in transformers), with no word of which id
        using var ids = torch.tensor(new long[,] { { 998, 1000, 5, -1, 999 } });
        var ex = Assert.Throws<ArgumentException>(() => Tiny.Value.Forward(ids));
        Assert.Equal("input_ids hold token ids 1000, -1, outside the text encoder's vocabulary of 1000 tokens [0, vocab_size); " +
                     "was the prompt tokenized with this model's tokenizer? (Parameter 'inputIds')", ex.Message);
        using var withProjection = CLIPTextModelWithProjection.FromPretrained(Golden.Path("tiny-sdxl"), "text_encoder_2");
        using var one = torch.tensor(new long[,] { { 998, 1000, 999 } });
        Assert.StartsWith("input_ids hold token id 1000, outside the text encoder's vocabulary of 1000 tokens",
            Assert.Throws<ArgumentException>(() => withProjection.Forward(one)).Message);
    }

    [Fact]
    public void EmptyAndFloatingPointTokenIdsAreRefused()
    {
        // no token: the pooling's argmax failed in torch; float ids were truncated without a word (transformers fails)
        using var empty = torch.zeros(1, 0, dtype: ScalarType.Int64);
        Assert.Equal("input_ids hold no token (shape [1, 0]); the pooled output is read at the end-of-text token: tokenize the prompt " +
                     "(an empty prompt gives BOS and EOS) (Parameter 'inputIds')",
            Assert.Throws<ArgumentException>(() => Tiny.Value.Forward(empty)).Message);
        using var floats = torch.full(1, 5, 1.5f);
        Assert.Equal("input_ids must be integer token ids, got Float32 (Parameter 'inputIds')",
            Assert.Throws<ArgumentException>(() => Tiny.Value.Forward(floats)).Message);
    }
}
