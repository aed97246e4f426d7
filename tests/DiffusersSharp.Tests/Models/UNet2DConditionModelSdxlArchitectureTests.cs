using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>
/// The published SDXL UNet configs built on the meta device (shapes only, no 10 GB of weights): the base model's
/// parameter count, the per-block transformer depths (reversed for the up path) and the added embedding; the
/// refiner and the inpainting model build too.
/// </summary>
[Collection(DefaultDeviceCollection.Name)]
public class UNet2DConditionModelSdxlArchitectureTests
{
    // stabilityai/stable-diffusion-xl-base-1.0 unet/config.json
    internal const string SdxlBaseConfig = """
        {
          "_class_name": "UNet2DConditionModel", "_diffusers_version": "0.19.0.dev0", "act_fn": "silu",
          "addition_embed_type": "text_time", "addition_embed_type_num_heads": 64, "addition_time_embed_dim": 256,
          "attention_head_dim": [5, 10, 20], "block_out_channels": [320, 640, 1280], "center_input_sample": false,
          "class_embed_type": null, "class_embeddings_concat": false, "conv_in_kernel": 3, "conv_out_kernel": 3,
          "cross_attention_dim": 2048, "cross_attention_norm": null,
          "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
          "downsample_padding": 1, "dual_cross_attention": false, "encoder_hid_dim": null, "encoder_hid_dim_type": null,
          "flip_sin_to_cos": true, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
          "mid_block_only_cross_attention": null, "mid_block_scale_factor": 1, "mid_block_type": "UNetMidBlock2DCrossAttn",
          "norm_eps": 1e-05, "norm_num_groups": 32, "num_attention_heads": null, "num_class_embeds": null,
          "only_cross_attention": false, "out_channels": 4, "projection_class_embeddings_input_dim": 2816,
          "resnet_out_scale_factor": 1.0, "resnet_skip_time_act": false, "resnet_time_scale_shift": "default",
          "sample_size": 128, "time_cond_proj_dim": null, "time_embedding_act_fn": null, "time_embedding_dim": null,
          "time_embedding_type": "positional", "timestep_post_act": null, "transformer_layers_per_block": [1, 2, 10],
          "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"], "upcast_attention": null,
          "use_linear_projection": true
        }
        """;

    // stabilityai/stable-diffusion-xl-refiner-1.0 unet/config.json
    internal const string SdxlRefinerConfig = """
        {
          "_class_name": "UNet2DConditionModel", "_diffusers_version": "0.19.0.dev0", "act_fn": "silu",
          "addition_embed_type": "text_time", "addition_embed_type_num_heads": 64, "addition_time_embed_dim": 256,
          "attention_head_dim": [6, 12, 24, 24], "block_out_channels": [384, 768, 1536, 1536],
          "center_input_sample": false, "class_embed_type": null, "class_embeddings_concat": false,
          "conv_in_kernel": 3, "conv_out_kernel": 3, "cross_attention_dim": 1280, "cross_attention_norm": null,
          "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
          "downsample_padding": 1, "dual_cross_attention": false, "encoder_hid_dim": null, "encoder_hid_dim_type": null,
          "flip_sin_to_cos": true, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
          "mid_block_only_cross_attention": null, "mid_block_scale_factor": 1, "mid_block_type": "UNetMidBlock2DCrossAttn",
          "norm_eps": 1e-05, "norm_num_groups": 32, "num_attention_heads": null, "num_class_embeds": null,
          "only_cross_attention": false, "out_channels": 4, "projection_class_embeddings_input_dim": 2560,
          "resnet_out_scale_factor": 1.0, "resnet_skip_time_act": false, "resnet_time_scale_shift": "default",
          "sample_size": 128, "time_cond_proj_dim": null, "time_embedding_act_fn": null, "time_embedding_dim": null,
          "time_embedding_type": "positional", "timestep_post_act": null, "transformer_layers_per_block": 4,
          "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
          "upcast_attention": null, "use_linear_projection": true
        }
        """;

    private static UNet2DConditionModel OnMeta(UNet2DConditionModelConfig config) =>
        UNet2DConditionModelArchitectureTests.OnMeta(() => UNet2DConditionModel.FromConfig(config));

    private static Dictionary<string, int> TransformerDepths(UNet2DConditionModel unet) =>
        unet.named_modules().Where(m => m.module is Transformer2DModel)
            .ToDictionary(m => m.name, m => ((Transformer2DModel)m.module).Blocks.Count());

    [Fact]
    public void SdxlBaseConfig_Builds2_567_463_684Parameters()
    {
        var config = ConfigJson.Parse<UNet2DConditionModelConfig>(SdxlBaseConfig, "sdxl-base/unet/config.json");
        Assert.Null(config.UpcastAttention);
        using var unet = OnMeta(config);
        Assert.Equal(DeviceType.META, unet.Device.type);
        Assert.Equal(2_567_463_684L, unet.NumParameters());

        // transformer_layers_per_block [1, 2, 10] per down block, the mid block takes the last, the up path the reverse
        var depths = TransformerDepths(unet);
        Assert.Equal(2, depths["down_blocks.1.attentions.1"]);
        Assert.Equal(10, depths["down_blocks.2.attentions.0"]);
        Assert.Equal(10, depths["mid_block.attentions.0"]);
        Assert.Equal(10, depths["up_blocks.0.attentions.2"]);
        Assert.Equal(2, depths["up_blocks.1.attentions.0"]);
        Assert.DoesNotContain(depths.Keys, k => k.StartsWith("down_blocks.0", StringComparison.Ordinal) || k.StartsWith("up_blocks.2", StringComparison.Ordinal));

        var p = unet.named_parameters().ToDictionary(x => x.name, x => x.parameter.shape);
        Assert.Equal(new long[] { 1280, 2816 }, p["add_embedding.linear_1.weight"]);
        Assert.Equal(new long[] { 1280, 1280 }, p["add_embedding.linear_2.weight"]);
        Assert.Equal(new long[] { 640, 2048 }, p["down_blocks.1.attentions.0.transformer_blocks.1.attn2.to_k.weight"]);
        Assert.Equal(new long[] { 1280, 1280 }, p["up_blocks.0.attentions.0.proj_in.weight"]); // linear projection
    }

    [Fact]
    public void SdxlRefinerConfig_BuildsWithFourTransformerBlocksPerAttention()
    {
        var config = ConfigJson.Parse<UNet2DConditionModelConfig>(SdxlRefinerConfig, "sdxl-refiner/unet/config.json");
        Assert.Equal(new TransformerDepth[] { 4 }, config.TransformerLayersPerBlock);
        using var unet = OnMeta(config);
        var depths = TransformerDepths(unet);
        Assert.Equal(2 * 2 + 1 + 2 * 3, depths.Count);
        Assert.All(depths.Values, d => Assert.Equal(4, d));
        var heads = unet.named_modules().Where(m => m.module is Transformer2DModel)
            .ToDictionary(m => m.name, m => ((Transformer2DModel)m.module).NumAttentionHeads);
        Assert.Equal(12, heads["down_blocks.1.attentions.0"]);
        Assert.Equal(24, heads["mid_block.attentions.0"]);
        Assert.Equal(24, heads["up_blocks.1.attentions.2"]);
        var p = unet.named_parameters().ToDictionary(x => x.name, x => x.parameter.shape);
        Assert.Equal(new long[] { 1536, 2560 }, p["add_embedding.linear_1.weight"]);
        Assert.Equal(new long[] { 768, 1280 }, p["down_blocks.1.attentions.0.transformer_blocks.3.attn2.to_v.weight"]);
    }

    [Fact]
    public void SdxlInpaintingConfig_TakesNineInputChannels()
    {
        // diffusers/stable-diffusion-xl-1.0-inpainting-0.1: the base config with in_channels 9
        var config = ConfigJson.Parse<UNet2DConditionModelConfig>(SdxlBaseConfig, "sdxl-inpainting/unet/config.json") with { InChannels = 9 };
        using var unet = OnMeta(config);
        Assert.Equal(2_567_463_684L + 320 * 5 * 9, unet.NumParameters());
    }
}
