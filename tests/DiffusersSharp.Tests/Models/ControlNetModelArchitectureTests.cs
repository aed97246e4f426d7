using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>
/// The published ControlNet configs built on the meta device (shapes only): lllyasviel/sd-controlnet-canny and
/// diffusers/controlnet-canny-sdxl-1.0. Their parameter counts are checked against their composition: the parameters
/// of the matching UNet's conv_in, time/added embeddings, down blocks and mid block (built from the published UNet
/// config), plus the conditioning embedding and one 1×1 zero convolution per skip state and for the mid block, counted
/// by hand. And the config checks: bad values are refused naming the key.
/// </summary>
[Collection(DefaultDeviceCollection.Name)]
public class ControlNetModelArchitectureTests(ITestOutputHelper log)
{
    // lllyasviel/sd-controlnet-canny config.json
    internal const string Sd15CannyConfig = """
        {
          "_class_name": "ControlNetModel", "_diffusers_version": "0.16.0.dev0", "act_fn": "silu", "attention_head_dim": 8,
          "block_out_channels": [320, 640, 1280, 1280], "class_embed_type": null,
          "conditioning_embedding_out_channels": [16, 32, 96, 256], "controlnet_conditioning_channel_order": "rgb",
          "cross_attention_dim": 768,
          "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
          "downsample_padding": 1, "flip_sin_to_cos": true, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
          "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32, "num_class_embeds": null,
          "only_cross_attention": false, "projection_class_embeddings_input_dim": null, "resnet_time_scale_shift": "default",
          "upcast_attention": false, "use_linear_projection": false
        }
        """;

    // diffusers/controlnet-canny-sdxl-1.0 config.json
    internal const string SdxlCannyConfig = """
        {
          "_class_name": "ControlNetModel", "_diffusers_version": "0.20.0.dev0", "act_fn": "silu",
          "addition_embed_type": "text_time", "addition_embed_type_num_heads": 64, "addition_time_embed_dim": 256,
          "attention_head_dim": [5, 10, 20], "block_out_channels": [320, 640, 1280], "class_embed_type": null,
          "conditioning_channels": 3, "conditioning_embedding_out_channels": [16, 32, 96, 256],
          "controlnet_conditioning_channel_order": "rgb", "cross_attention_dim": 2048,
          "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"], "downsample_padding": 1,
          "encoder_hid_dim": null, "encoder_hid_dim_type": null, "flip_sin_to_cos": true, "freq_shift": 0,
          "global_pool_conditions": false, "in_channels": 4, "layers_per_block": 2, "mid_block_scale_factor": 1,
          "norm_eps": 1e-05, "norm_num_groups": 32, "num_attention_heads": null, "num_class_embeds": null,
          "only_cross_attention": false, "projection_class_embeddings_input_dim": 2816,
          "resnet_time_scale_shift": "default", "transformer_layers_per_block": [1, 2, 10], "upcast_attention": null,
          "use_linear_projection": true
        }
        """;

    private static readonly string[] SharedWithUnet = ["conv_in", "time_embedding", "add_embedding", "down_blocks", "mid_block"];

    /// <summary>Parameters of a 3×3 conv (with bias) and a 1×1 conv C → C (with bias).</summary>
    private static long Conv3(long cin, long cout) => cin * cout * 9 + cout;
    private static long Zero(long c) => c * c + c;

    private static long ComposedCount(UNet2DConditionModel unet, int[] skipChannels, int[] condChannels, int condIn, int firstChannels)
    {
        long shared = unet.named_parameters().Where(p => SharedWithUnet.Contains(p.name.Split('.')[0])).Sum(p => p.parameter.numel());
        long embedding = Conv3(condIn, condChannels[0]) + Conv3(condChannels[^1], firstChannels);
        for (int i = 0; i < condChannels.Length - 1; i++)
            embedding += Conv3(condChannels[i], condChannels[i]) + Conv3(condChannels[i], condChannels[i + 1]);
        long zeros = skipChannels.Sum(c => Zero(c));
        return shared + embedding + zeros;
    }

    [Fact]
    public void TheSd15CannyConfigBuildsWhatItsUNetAndTheControlPartsAddUpTo()
    {
        var config = ConfigJson.Parse<ControlNetModelConfig>(Sd15CannyConfig, "sd-controlnet-canny/config.json");
        using var net = UNet2DConditionModelArchitectureTests.OnMeta(() => ControlNetModel.FromConfig(config));
        Assert.Equal(DeviceType.META, net.Device.type);
        var unetConfig = ConfigJson.Parse<UNet2DConditionModelConfig>(UNet2DConditionModelArchitectureTests.Sd15Config, "sd15/unet/config.json");
        using var unet = UNet2DConditionModelArchitectureTests.OnMeta(() => UNet2DConditionModel.FromConfig(unetConfig));
        // skip states: conv_in, 3 × (2 resnets + downsampler), 2 resnets of the last block; then the mid block
        int[] skips = [320, 320, 320, 320, 640, 640, 640, 1280, 1280, 1280, 1280, 1280, 1280];
        long expected = ComposedCount(unet, skips, [16, 32, 96, 256], 3, 320);
        log.WriteLine($"sd-controlnet-canny: {net.NumParameters():N0} parameters");
        Assert.Equal(expected, net.NumParameters());
        Assert.Equal(12, net.NumDownResiduals);
        Assert.Equal(3, net.ConditioningDownsamplings);
    }

    [Fact]
    public void ThePublishedSdxlCannyConfigBuildsOnTheMetaDevice()
    {
        var config = ConfigJson.Parse<ControlNetModelConfig>(SdxlCannyConfig, "controlnet-canny-sdxl-1.0/config.json");
        Assert.Null(config.UpcastAttention);
        Assert.Equal("UNetMidBlock2DCrossAttn", config.MidBlockType); // absent in the file: diffusers' default
        using var net = UNet2DConditionModelArchitectureTests.OnMeta(() => ControlNetModel.FromConfig(config));
        var unetConfig = ConfigJson.Parse<UNet2DConditionModelConfig>(UNet2DConditionModelSdxlArchitectureTests.SdxlBaseConfig, "sdxl-base/unet/config.json");
        using var unet = UNet2DConditionModelArchitectureTests.OnMeta(() => UNet2DConditionModel.FromConfig(unetConfig));
        int[] skips = [320, 320, 320, 320, 640, 640, 640, 1280, 1280, 1280];
        long expected = ComposedCount(unet, skips, [16, 32, 96, 256], 3, 320);
        log.WriteLine($"controlnet-canny-sdxl-1.0: {net.NumParameters():N0} parameters");
        Assert.Equal(expected, net.NumParameters());
        Assert.Equal(9, net.NumDownResiduals);
        var p = net.named_parameters().ToDictionary(x => x.name, x => x.parameter.shape);
        Assert.Equal(new long[] { 1280, 2816 }, p["add_embedding.linear_1.weight"]);
        Assert.Equal(new long[] { 1280, 2048 }, p["down_blocks.2.attentions.1.transformer_blocks.9.attn2.to_k.weight"]);
        Assert.False(p.ContainsKey("down_blocks.2.attentions.1.transformer_blocks.10.attn2.to_k.weight"));
        Assert.Equal(new long[] { 1280, 1280 }, p["mid_block.attentions.0.proj_in.weight"]);
        Assert.Equal(new long[] { 320, 256, 3, 3 }, p["controlnet_cond_embedding.conv_out.weight"]);
        Assert.Equal(new long[] { 1280, 1280, 1, 1 }, p["controlnet_mid_block.weight"]);
        Assert.Equal(new long[] { 640, 640, 1, 1 }, p["controlnet_down_blocks.6.weight"]);
    }

    [Theory]
    [InlineData("\"mid_block_type\": \"UNetMidBlock2DSimpleCrossAttn\"", "mid_block_type", "unknown mid_block_type : UNetMidBlock2DSimpleCrossAttn")]
    [InlineData("\"mid_block_type\": null", "mid_block_type", "unknown mid_block_type : None")]
    [InlineData("\"block_out_channels\": [32]", "block_out_channels", "Must provide the same number of `block_out_channels` as `down_block_types`")]
    [InlineData("\"controlnet_conditioning_channel_order\": \"bgra\"", "controlnet_conditioning_channel_order", "unknown `controlnet_conditioning_channel_order`: bgra")]
    [InlineData("\"conditioning_embedding_out_channels\": [16, 0]", "conditioning_embedding_out_channels", "must be between 1 and")]
    [InlineData("\"attention_head_dim\": 3", "attention_head_dim", "64 channels cannot be split into 3 attention heads")]
    [InlineData("\"addition_embed_type\": \"text_time\"", "addition_time_embed_dim", "requires `addition_time_embed_dim` be set")]
    [InlineData("\"layers_per_block\": 0", "layers_per_block", "must be between 1 and")]
    [InlineData("\"down_block_types\": [\"DownBlock2D\", \"SimpleCrossAttnDownBlock2D\"]", "down_block_types", "unknown or unsupported down block type 'SimpleCrossAttnDownBlock2D'")]
    [InlineData("\"transformer_layers_per_block\": [1, [1]]", "transformer_layers_per_block", "down block 1 (CrossAttnDownBlock2D) has 2 attention layers, but its list entry [1] gives 1 depth: a list entry needs one per layer")]
    [InlineData("\"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"], \"transformer_layers_per_block\": [[1, 1], []]", "transformer_layers_per_block", "the mid block (UNetMidBlock2DCrossAttn) has 1 attention layer, but its list entry [] gives 0 depths")]
    [InlineData("\"transformer_layers_per_block\": [1, [1, 65]]", "transformer_layers_per_block", "transformer_layers_per_block[1][1] must be between 0 and 64, got 65")]
    [InlineData("\"class_embed_type\": \"simple_projection\", \"projection_class_embeddings_input_dim\": 8", "class_embed_type",
        "class_embed_type 'simple_projection' is not one ControlNetModel builds (null, timestep, identity or projection); diffusers' ControlNetModel builds no class embedding for it and ignores class_labels")]
    public void ABadConfigValueIsRefusedNamingTheKey(string replacement, string key, string message)
    {
        string path = Support.Golden.Path("tiny-sd-controlnet", "config.json");
        var node = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        var change = System.Text.Json.Nodes.JsonNode.Parse("{" + replacement + "}")!.AsObject();
        foreach (var (k, v) in change.ToList()) { change.Remove(k); node[k] = v; }
        var config = ConfigJson.Parse<ControlNetModelConfig>(node.ToJsonString(), "bad/config.json");
        var e = Assert.Throws<ConfigException>(() => ControlNetModel.FromConfig(config, "bad/config.json"));
        Assert.Equal(key, e.Key);
        Assert.Contains("bad/config.json", e.Message);
        Assert.Contains(message, e.Message);
    }

    [Theory]
    [InlineData("transformer_layers_per_block", "[1]")]
    [InlineData("attention_head_dim", "[2]")]
    [InlineData("num_attention_heads", "[2]")]
    [InlineData("only_cross_attention", "[false]")]
    public void AOneEntryListForSeveralDownBlocksIsRefusedWhereOnlyABareValueIsForEveryBlock(string key, string list)
    {
        // diffusers broadcasts a bare value only; a list is checked against down_block_types or indexed per block
        var node = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Support.Golden.Path("tiny-sd-controlnet", "config.json")))!.AsObject();
        node[key] = System.Text.Json.Nodes.JsonNode.Parse(list);
        var e = Assert.Throws<ConfigException>(() => ConfigJson.Parse<ControlNetModelConfig>(node.ToJsonString(), "bad/config.json"));
        Assert.Equal($"bad/config.json: config key '{key}': Must provide the same number of `{key}` as `down_block_types`. `{key}`: {list}, a list of 1 entry. `down_block_types`: 2 blocks. A list needs an entry per down block; only a bare value ({list[1..^1]}, not {list}) is for every block.", e.Message);
        Assert.Equal(key, e.Key);
        node[key] = System.Text.Json.Nodes.JsonNode.Parse(list[1..^1]);
        using var net = ControlNetModel.FromConfig(ConfigJson.Parse<ControlNetModelConfig>(node.ToJsonString(), "good/config.json"));
        Assert.Equal(6, net.NumDownResiduals);
    }

    [Fact]
    public void AOneElementArrayHoldingAListEntryIsRefusedForSeveralDownBlocks()
    {
        var config = ConfigJson.Parse<ControlNetModelConfig>(File.ReadAllText(Support.Golden.Path("tiny-sd-controlnet", "config.json")), "cn/config.json")
            with
        { TransformerLayersPerBlock = [TransformerDepth.PerLayer(1, 1)] };
        var e = Assert.Throws<ConfigException>(() => ControlNetModel.FromConfig(config, "cn/config.json"));
        Assert.Equal("cn/config.json: config key 'transformer_layers_per_block': Must provide the same number of `transformer_layers_per_block` as `down_block_types`. `transformer_layers_per_block`: [[1, 1]], a list of 1 entry. `down_block_types`: 2 blocks. A list needs an entry per down block; only a bare value is for every block.", e.Message);
    }

    /// <summary>
    /// diffusers' from_unet of a simple_projection UNet (AudioLDM's class embedding) builds a ControlNet without a class
    /// embedding, which drops the UNet's class conditioning without a word: refused, naming the key.
    /// </summary>
    [Fact]
    public void FromUnetRefusesAUNetWithASimpleProjectionClassEmbedding()
    {
        var config = ConfigJson.Parse<UNet2DConditionModelConfig>(UNet2DConditionModelArchitectureTests.Sd15Config, "sd15/unet/config.json")
            with
        { ClassEmbedType = "simple_projection", ProjectionClassEmbeddingsInputDim = 512 };
        using var unet = UNet2DConditionModelArchitectureTests.OnMeta(() => UNet2DConditionModel.FromConfig(config));
        var e = Assert.Throws<ConfigException>(() => ControlNetModel.FromUnet(unet));
        Assert.Equal("class_embed_type", e.Key);
        Assert.Equal("ControlNetModel.FromUnet: config key 'class_embed_type': class_embed_type 'simple_projection' is not one ControlNetModel builds " +
                     "(null, timestep, identity or projection); diffusers' ControlNetModel builds no class embedding for it and ignores class_labels", e.Message);
    }

    [Fact]
    public void FromUnetRefusesAUNetWithPerBlockCrossAttentionDims()
    {
        var config = ConfigJson.Parse<UNet2DConditionModelConfig>(UNet2DConditionModelArchitectureTests.Sd15Config, "sd15/unet/config.json")
            with
        { CrossAttentionDim = [768, 768, 1024, 1024] };
        using var unet = UNet2DConditionModelArchitectureTests.OnMeta(() => UNet2DConditionModel.FromConfig(config));
        var e = Assert.Throws<ConfigException>(() => ControlNetModel.FromUnet(unet));
        Assert.Equal("cross_attention_dim", e.Key);
        Assert.Contains("differs per block ([768, 768, 1024, 1024])", e.Message);
    }
}
