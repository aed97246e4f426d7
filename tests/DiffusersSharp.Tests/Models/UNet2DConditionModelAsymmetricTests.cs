using System.Text.Json;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>
/// diffusers 0.25.1's nested <c>transformer_layers_per_block</c> (asymmetric UNets): an entry per down
/// block that is an int or a list with a depth per layer, <c>reverse_transformer_layers_per_block</c> giving the up
/// blocks' entries (unet_2d_condition.py <c>__init__</c>; CrossAttnDownBlock2D / CrossAttnUpBlock2D /
/// UNetMidBlock2DCrossAttn read <c>transformer_layers_per_block[i]</c> per layer).
/// </summary>
public class UNet2DConditionModelAsymmetricTests
{
    private static string Config(string tlpb, string? reverse, string down = "\"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\"") => $$"""
        {
          "_class_name": "UNet2DConditionModel", "block_out_channels": [32, 64], "layers_per_block": 2,
          "down_block_types": [{{down}}], "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
          "attention_head_dim": 2, "cross_attention_dim": 32, "norm_num_groups": 32, "sample_size": 16,
          "transformer_layers_per_block": {{tlpb}}, "reverse_transformer_layers_per_block": {{reverse ?? "null"}}
        }
        """;

    /// <summary>Transformer blocks of every Transformer2DModel, by its name (from the parameter names).</summary>
    private static Dictionary<string, int> Depths(nn.Module unet)
    {
        var names = unet.named_parameters().Select(p => p.name).ToList();
        return names.Where(n => n.EndsWith(".proj_in.weight", StringComparison.Ordinal))
            .Select(n => n[..^".proj_in.weight".Length])
            .ToDictionary(a => a, a => names.Where(n => n.StartsWith(a + ".transformer_blocks.", StringComparison.Ordinal))
                .Select(n => n[(a.Length + ".transformer_blocks.".Length)..].Split('.')[0]).Distinct().Count());
    }

    [Fact]
    public void NestedDepthsGiveEachAttentionLayerItsOwnDepthAndRoundTrip()
    {
        const string Tlpb = "[[1, 2], [3, 0]]", Reverse = "[[0, 2, 1], 1]";
        var config = ConfigJson.Parse<UNet2DConditionModelConfig>(Config(Tlpb, Reverse), "unet/config.json");
        using var unet = UNet2DConditionModel.FromConfig(config, "unet/config.json");
        var expected = new Dictionary<string, int>
        {
            ["down_blocks.0.attentions.0"] = 1, ["down_blocks.0.attentions.1"] = 2,
            ["down_blocks.1.attentions.0"] = 3, ["down_blocks.1.attentions.1"] = 0,
            ["mid_block.attentions.0"] = 3,   // transformer_layers_per_block[-1] for its one layer: [3, 0][0]
            ["up_blocks.0.attentions.0"] = 0, ["up_blocks.0.attentions.1"] = 2, ["up_blocks.0.attentions.2"] = 1,
            ["up_blocks.1.attentions.0"] = 1, ["up_blocks.1.attentions.1"] = 1, ["up_blocks.1.attentions.2"] = 1,
        };
        Assert.Equal(expected.OrderBy(kv => kv.Key), Depths(unet).OrderBy(kv => kv.Key));

        using var dir = new TempDir();
        unet.SavePretrained(dir.Path);
        using (var doc = JsonDocument.Parse(File.ReadAllText(dir.File("config.json"))))
        {
            string Compact(string key) => JsonSerializer.Serialize(doc.RootElement.GetProperty(key));
            Assert.Equal("[[1,2],[3,0]]", Compact("transformer_layers_per_block"));
            Assert.Equal("[[0,2,1],1]", Compact("reverse_transformer_layers_per_block"));
        }
        using var reloaded = UNet2DConditionModel.FromPretrained(dir.Path);
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var x = torch.randn(1, 4, 8, 8, generator: new Generator(1));
        var text = torch.randn(1, 5, 32, generator: new Generator(2));
        var a = unet.Forward(x, 10L, text).Sample;
        Assert.Equal(new long[] { 1, 4, 8, 8 }, a.shape);
        Assert.Equal(0.0, Tol.MaxAbsDiff(a, reloaded.Forward(x, 10L, text).Sample));
    }

    [Theory]
    [InlineData("[[1, 2], [3, 0]]", null, "reverse_transformer_layers_per_block",
        "Must provide 'reverse_transformer_layers_per_block` if using asymmetrical UNet.")]
    [InlineData("[[1, 2], 3]", null, "reverse_transformer_layers_per_block",
        "Must provide 'reverse_transformer_layers_per_block` if using asymmetrical UNet.")]
    [InlineData("[[1], [3, 0]]", "[1, 1]", "transformer_layers_per_block",
        "down block 0 (CrossAttnDownBlock2D) has 2 attention layers, but its list entry [1] gives 1 depth: a list entry needs one per layer")]
    [InlineData("[[1, 2], [3, 0]]", "[[0, 2], 1]", "reverse_transformer_layers_per_block",
        "up block 0 (CrossAttnUpBlock2D) has 3 attention layers, but its list entry [0, 2] gives 2 depths: a list entry needs one per layer")]
    [InlineData("[[1, 2], [3, 0]]", "[[0, 2, 1]]", "reverse_transformer_layers_per_block",
        "needs an entry per up block (2), got 1: [[0, 2, 1]]")]
    [InlineData("[[1, 2], [3, -1]]", "[1, 1]", "transformer_layers_per_block",
        "transformer_layers_per_block[1][1] must be between 0 and 64, got -1")]
    public void BadNestedDepthsAreRefusedNamingTheKey(string tlpb, string? reverse, string key, string message)
    {
        var config = ConfigJson.Parse<UNet2DConditionModelConfig>(Config(tlpb, reverse), "unet/config.json");
        var e = Assert.Throws<ConfigException>(() => UNet2DConditionModel.FromConfig(config, "unet/config.json"));
        Assert.Equal($"unet/config.json: config key '{key}': {message}", e.Message);
        Assert.Equal(key, e.Key);
    }

    [Fact]
    public void TheMidBlocksListEntryNeedsAFirstDepth()
    {
        // the second down block has no attention, so only the mid block reads transformer_layers_per_block[-1]
        var config = ConfigJson.Parse<UNet2DConditionModelConfig>(
            Config("[[1, 2], []]", "[1, 1]", down: "\"CrossAttnDownBlock2D\", \"DownBlock2D\""), "unet/config.json");
        var e = Assert.Throws<ConfigException>(() => UNet2DConditionModel.FromConfig(config, "unet/config.json"));
        Assert.Equal("unet/config.json: config key 'transformer_layers_per_block': the mid block (UNetMidBlock2DCrossAttn) has 1 attention layer, but its list entry [] gives 0 depths: a list entry needs one per layer", e.Message);
    }

    [Fact]
    public void ANestedValueOfTheWrongTypeNamesTheKey()
    {
        var e = Assert.Throws<ConfigException>(() => ConfigJson.Parse<UNet2DConditionModelConfig>(Config("[[1, \"two\"], 3]", "[1, 1]"), "unet/config.json"));
        Assert.StartsWith("unet/config.json: config key 'transformer_layers_per_block' has a value of the wrong type or form for UNet2DConditionModelConfig", e.Message);
        Assert.EndsWith("expected an integer, or a list of integers and lists of integers", e.Message);
    }

    [Theory]
    [InlineData("[2]", "[2], a list of 1 entry. `down_block_types`: 2 blocks. A list needs an entry per down block; only a bare value (2, not [2]) is for every block.")]
    [InlineData("[[1, 2]]", "[[1, 2]], a list of 1 entry. `down_block_types`: 2 blocks. A list needs an entry per down block; only a bare value is for every block.")]
    public void AOneEntryListOfDepthsForSeveralDownBlocksIsRefused(string tlpb, string message)
    {
        // diffusers broadcasts only a bare int; it indexes a list per down block (transformer_layers_per_block[1]: IndexError)
        var e = Assert.Throws<ConfigException>(() => ConfigJson.Parse<UNet2DConditionModelConfig>(Config(tlpb, "[1, 1]"), "unet/config.json"));
        Assert.Equal("unet/config.json: config key 'transformer_layers_per_block': Must provide the same number of `transformer_layers_per_block` as `down_block_types`. `transformer_layers_per_block`: " + message, e.Message);
        Assert.Equal("transformer_layers_per_block", e.Key);
        // the bare value is for every block
        var bare = ConfigJson.Parse<UNet2DConditionModelConfig>(Config("2", null), "unet/config.json");
        Assert.Equal(new TransformerDepth[] { 2 }, bare.TransformerLayersPerBlock);
        using var unet = UNet2DConditionModel.FromConfig(bare, "unet/config.json");
        Assert.Equal(2, Depths(unet)["down_blocks.1.attentions.1"]);
    }

    [Fact]
    public void AOneElementArrayHoldingAListEntryIsRefusedForSeveralDownBlocks()
    {
        // in a record, [2] is the bare value; a lone list entry has no bare form (the file would say [[1, 2]])
        var config = ConfigJson.Parse<UNet2DConditionModelConfig>(Config("[[1, 2], [3, 0]]", "[1, 1]"), "unet/config.json")
            with
        { TransformerLayersPerBlock = [TransformerDepth.PerLayer(1, 2)] };
        var e = Assert.Throws<ConfigException>(() => UNet2DConditionModel.FromConfig(config, "unet/config.json"));
        Assert.Equal("unet/config.json: config key 'transformer_layers_per_block': Must provide the same number of `transformer_layers_per_block` as `down_block_types`. `transformer_layers_per_block`: [[1, 2]], a list of 1 entry. `down_block_types`: 2 blocks. A list needs an entry per down block; only a bare value is for every block.", e.Message);
    }

    [Fact]
    public void AControlNetFromANestedUNetHasItsDepthsAndWeightsAndRunsItsEncoderHalf()
    {
        var config = ConfigJson.Parse<UNet2DConditionModelConfig>(Config("[[1, 2], [3, 0]]", "[[0, 2, 1], 1]"), "unet/config.json");
        torch.manual_seed(3);
        using var unet = UNet2DConditionModel.FromConfig(config, "unet/config.json");
        using var net = ControlNetModel.FromUnet(unet, conditioningEmbeddingOutChannels: [16, 32]);
        Assert.Equal(config.TransformerLayersPerBlock, net.Config.TransformerLayersPerBlock);
        var expected = new Dictionary<string, int>
        {
            ["down_blocks.0.attentions.0"] = 1, ["down_blocks.0.attentions.1"] = 2,
            ["down_blocks.1.attentions.0"] = 3, ["down_blocks.1.attentions.1"] = 0,
            ["mid_block.attentions.0"] = 3,
        };
        Assert.Equal(expected.OrderBy(kv => kv.Key), Depths(net).OrderBy(kv => kv.Key));

        // every down and mid block tensor is the UNet's (and there is no other)
        using var scope = torch.NewDisposeScope();
        var unetState = unet.state_dict();
        var shared = net.state_dict().Where(kv => kv.Key.StartsWith("down_blocks.", StringComparison.Ordinal) || kv.Key.StartsWith("mid_block.", StringComparison.Ordinal)).ToList();
        Assert.Equal(unetState.Keys.Where(k => k.StartsWith("down_blocks.", StringComparison.Ordinal) || k.StartsWith("mid_block.", StringComparison.Ordinal)).Order(StringComparer.Ordinal),
            shared.Select(kv => kv.Key).Order(StringComparer.Ordinal));
        Assert.Contains(shared, kv => kv.Key == "down_blocks.0.attentions.1.transformer_blocks.1.attn2.to_k.weight");
        foreach (var (name, t) in shared)
            Assert.True(t.allclose(unetState[name], 0, 0), name);

        // with the zero convolutions made identities, the residuals are the UNet's own states (the conditioning
        // embedding's last convolution is zero): conv_in's output, each down block's output and the mid block's
        using (torch.no_grad())
        {
            foreach (var (name, p) in net.named_parameters())
            {
                if (!name.StartsWith("controlnet_down_blocks.", StringComparison.Ordinal) && !name.StartsWith("controlnet_mid_block.", StringComparison.Ordinal)) continue;
                if (name.EndsWith(".weight", StringComparison.Ordinal)) p.copy_(torch.eye(p.shape[0]).view(p.shape));
            }
        }
        var states = new Dictionary<string, Tensor>();
        unet.IntermediateHook = (name, t) => { if (name is "conv_in" or "down_blocks.0" or "down_blocks.1" or "mid_block") states[name] = t.detach().clone().DetachFromDisposeScope(); };
        using var noGrad = torch.no_grad();
        var x = torch.randn(1, 4, 8, 8, generator: new Generator(1));
        var text = torch.randn(1, 5, 32, generator: new Generator(2));
        var image = torch.rand(1, 3, 16, 16, generator: new Generator(4));
        unet.Forward(x, 10L, text);
        using var output = net.Forward(x, 10L, text, image);
        Assert.Equal(6, output.DownBlockResSamples.Count);   // conv_in, 2 + downsampler, 2
        Assert.Equal(new long[] { 1, 64, 4, 4 }, output.MidBlockResSample.shape);
        Assert.True(states["mid_block"].abs().max().item<float>() > 0.1f);
        Tol.Close(output.DownBlockResSamples[0], states["conv_in"], Tol.ModelAbs, "conv_in");
        Tol.Close(output.DownBlockResSamples[3], states["down_blocks.0"], Tol.ModelAbs, "down_blocks.0");
        Tol.Close(output.DownBlockResSamples[5], states["down_blocks.1"], Tol.ModelAbs, "down_blocks.1");
        Tol.Close(output.MidBlockResSample, states["mid_block"], Tol.ModelAbs, "mid_block");
        foreach (var t in states.Values) t.Dispose();

        // its config saves and loads as the nested form
        using var dir = new TempDir();
        net.SavePretrained(dir.Path);
        using (var doc = JsonDocument.Parse(File.ReadAllText(dir.File("config.json"))))
            Assert.Equal("[[1,2],[3,0]]", JsonSerializer.Serialize(doc.RootElement.GetProperty("transformer_layers_per_block")));
        using var reloaded = ControlNetModel.FromPretrained(dir.Path);
        using var again = reloaded.Forward(x, 10L, text, image);
        Assert.Equal(0.0, Tol.MaxAbsDiff(again.MidBlockResSample, output.MidBlockResSample));
    }

    [Fact]
    public void AListLongerThanTheDownBlocksIsReadAsDiffusersIndexesItAndRoundTrips()
    {
        // diffusers 0.25.1 checks no length: down block i takes [i], the mid block [-1], up block i reversed(list)[i]
        var config = ConfigJson.Parse<UNet2DConditionModelConfig>(Config("[1, 2, 0, 3]", null), "unet/config.json");
        using var unet = UNet2DConditionModel.FromConfig(config, "unet/config.json");
        var expected = new Dictionary<string, int>
        {
            ["down_blocks.0.attentions.0"] = 1, ["down_blocks.0.attentions.1"] = 1,
            ["down_blocks.1.attentions.0"] = 2, ["down_blocks.1.attentions.1"] = 2,
            ["mid_block.attentions.0"] = 3,
            ["up_blocks.0.attentions.0"] = 3, ["up_blocks.0.attentions.1"] = 3, ["up_blocks.0.attentions.2"] = 3,
            ["up_blocks.1.attentions.0"] = 0, ["up_blocks.1.attentions.1"] = 0, ["up_blocks.1.attentions.2"] = 0,
        };
        Assert.Equal(expected.OrderBy(kv => kv.Key), Depths(unet).OrderBy(kv => kv.Key));

        using var dir = new TempDir();
        unet.SavePretrained(dir.Path);
        using (var doc = JsonDocument.Parse(File.ReadAllText(dir.File("config.json"))))
            Assert.Equal("[1,2,0,3]", JsonSerializer.Serialize(doc.RootElement.GetProperty("transformer_layers_per_block")));
        using var reloaded = UNet2DConditionModel.FromPretrained(dir.Path);
        Assert.Equal(expected.OrderBy(kv => kv.Key), Depths(reloaded).OrderBy(kv => kv.Key));
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var x = torch.randn(1, 4, 8, 8, generator: new Generator(1));
        var text = torch.randn(1, 5, 32, generator: new Generator(2));
        Assert.Equal(0.0, Tol.MaxAbsDiff(unet.Forward(x, 10L, text).Sample, reloaded.Forward(x, 10L, text).Sample));

        // the ControlNet of it takes the same list, its down blocks [i] and its mid block [-1], and the UNet's weights
        using var net = ControlNetModel.FromUnet(unet, conditioningEmbeddingOutChannels: [16, 32]);
        Assert.Equal(config.TransformerLayersPerBlock, net.Config.TransformerLayersPerBlock);
        Assert.Equal(expected.Where(kv => !kv.Key.StartsWith("up_blocks.", StringComparison.Ordinal)).OrderBy(kv => kv.Key),
            Depths(net).OrderBy(kv => kv.Key));
        var unetState = unet.state_dict();
        foreach (var (name, t) in net.state_dict().Where(kv => kv.Key.StartsWith("mid_block.", StringComparison.Ordinal)))
            Assert.True(t.allclose(unetState[name], 0, 0), name);
        using var cnDir = new TempDir();
        net.SavePretrained(cnDir.Path);
        using var cnReloaded = ControlNetModel.FromPretrained(cnDir.Path);
        Assert.Equal(3, Depths(cnReloaded)["mid_block.attentions.0"]);
    }

    [Fact]
    public void AnExtraNestedEntryNeedsTheReverseListAndGivesTheMidBlockItsFirstDepth()
    {
        // diffusers' asymmetric check looks at every entry of the list, the extra ones too
        var e = Assert.Throws<ConfigException>(() => UNet2DConditionModel.FromConfig(
            ConfigJson.Parse<UNet2DConditionModelConfig>(Config("[1, 2, [4, 1]]", null), "unet/config.json"), "unet/config.json"));
        Assert.Equal("unet/config.json: config key 'reverse_transformer_layers_per_block': Must provide 'reverse_transformer_layers_per_block` if using asymmetrical UNet.", e.Message);
        using var unet = UNet2DConditionModel.FromConfig(
            ConfigJson.Parse<UNet2DConditionModelConfig>(Config("[1, 2, [4, 1]]", "[1, [0, 1, 2]]"), "unet/config.json"), "unet/config.json");
        var depths = Depths(unet);
        Assert.Equal((1, 2, 4, 1, 0, 2), (depths["down_blocks.0.attentions.1"], depths["down_blocks.1.attentions.1"], depths["mid_block.attentions.0"],
            depths["up_blocks.0.attentions.2"], depths["up_blocks.1.attentions.0"], depths["up_blocks.1.attentions.2"]));
    }

    [Theory]
    [InlineData("[]", 2, "needs an entry per down block (2), got 0: []", "transformer_layers_per_block must hold between 1 and 12 entries, got 0")]
    [InlineData("[1, 2]", 3, "needs an entry per down block (3), got 2: [1, 2]", "needs an entry per down block (3), got 2: [1, 2]")]
    public void AListShorterThanTheDownBlocksIsRefusedNamingTheKey(string tlpb, int blocks, string message, string controlNetMessage)
    {
        // diffusers indexes transformer_layers_per_block[i] for every down block: an IndexError
        string down = string.Join(", ", Enumerable.Repeat("\"CrossAttnDownBlock2D\"", blocks));
        string up = string.Join(", ", Enumerable.Repeat("\"CrossAttnUpBlock2D\"", blocks));
        string channels = string.Join(", ", Enumerable.Repeat("32", blocks));
        var unetJson = Config(tlpb, null, down).Replace("\"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\"", up, StringComparison.Ordinal)
            .Replace("[32, 64]", $"[{channels}]", StringComparison.Ordinal);
        var config = ConfigJson.Parse<UNet2DConditionModelConfig>(unetJson, "unet/config.json");
        var e = Assert.Throws<ConfigException>(() => UNet2DConditionModel.FromConfig(config, "unet/config.json"));
        Assert.Equal($"unet/config.json: config key 'transformer_layers_per_block': {message}", e.Message);
        Assert.Equal("transformer_layers_per_block", e.Key);

        var cn = ConfigJson.Parse<ControlNetModelConfig>($$"""
            {"block_out_channels": [{{channels}}], "down_block_types": [{{down}}], "layers_per_block": 1, "attention_head_dim": 2,
             "cross_attention_dim": 32, "norm_num_groups": 32, "conditioning_embedding_out_channels": [16, 32],
             "transformer_layers_per_block": {{tlpb}}}
            """, "cn/config.json");
        e = Assert.Throws<ConfigException>(() => ControlNetModel.FromConfig(cn, "cn/config.json"));
        Assert.Equal($"cn/config.json: config key 'transformer_layers_per_block': {controlNetMessage}", e.Message);
    }
}
