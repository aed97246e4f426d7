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

    [Fact]
    public void AControlNetFromANestedUNetIsRefused()
    {
        var config = ConfigJson.Parse<UNet2DConditionModelConfig>(Config("[[1, 2], [3, 0]]", "[[0, 2, 1], 1]"), "unet/config.json");
        using var unet = UNet2DConditionModel.FromConfig(config, "unet/config.json");
        var e = Assert.Throws<ConfigException>(() => ControlNetModel.FromUnet(unet));
        Assert.Equal("ControlNetModel.FromUnet: the UNet's transformer_layers_per_block gives depths per layer ([[1, 2], [3, 0]]); DiffusersSharp's ControlNetModel takes one depth per block", e.Message);
    }
}
