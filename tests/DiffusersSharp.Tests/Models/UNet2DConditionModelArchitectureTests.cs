using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>Tests that switch TorchSharp's process-wide default device run alone, after the parallel ones.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class DefaultDeviceCollection
{
    public const string Name = "default device (not parallel)";
}

/// <summary>
/// The real Stable Diffusion UNet shapes, built from their public configs on the meta device (shapes only, no
/// memory): parameter counts of SD 1.5 and SD 2.1, the SD 2.x head layout and linear projections. (libtorch
/// has no meta convolution, so forward passes are tested on the tiny golden UNet.)
/// </summary>
[Collection(DefaultDeviceCollection.Name)]
public class UNet2DConditionModelArchitectureTests
{
    // runwayml/stable-diffusion-v1-5 unet/config.json
    internal const string Sd15Config = """
        {
          "_class_name": "UNet2DConditionModel", "_diffusers_version": "0.6.0", "act_fn": "silu",
          "attention_head_dim": 8, "block_out_channels": [320, 640, 1280, 1280], "center_input_sample": false,
          "cross_attention_dim": 768,
          "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
          "downsample_padding": 1, "flip_sin_to_cos": true, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
          "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 4, "sample_size": 64,
          "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
        }
        """;

    // stabilityai/stable-diffusion-2-1 unet/config.json
    internal const string Sd21Config = """
        {
          "_class_name": "UNet2DConditionModel", "_diffusers_version": "0.10.0.dev0", "act_fn": "silu",
          "attention_head_dim": [5, 10, 20, 20], "block_out_channels": [320, 640, 1280, 1280],
          "center_input_sample": false, "cross_attention_dim": 1024,
          "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
          "downsample_padding": 1, "dual_cross_attention": false, "flip_sin_to_cos": true, "freq_shift": 0,
          "in_channels": 4, "layers_per_block": 2, "mid_block_scale_factor": 1, "norm_eps": 1e-05,
          "norm_num_groups": 32, "num_class_embeds": null, "only_cross_attention": false, "out_channels": 4,
          "sample_size": 96,
          "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
          "upcast_attention": true, "use_linear_projection": true
        }
        """;

    internal static T OnMeta<T>(Func<T> build)
    {
        var previous = torch.get_default_device();
        torch.set_default_device(torch.META);
        try { return build(); }
        finally { torch.set_default_device(previous); }
    }

    private static List<Transformer2DModel> Transformers(UNet2DConditionModel unet) =>
        unet.named_modules().Select(m => m.module).OfType<Transformer2DModel>().ToList();

    [Fact]
    public void Sd15Config_Builds859_5MParameters_WithEightHeads()
    {
        var config = ConfigJson.Parse<UNet2DConditionModelConfig>(Sd15Config, "sd15/unet/config.json");
        using var unet = OnMeta(() => UNet2DConditionModel.FromConfig(config));
        Assert.Equal(DeviceType.META, unet.Device.type);
        Assert.Equal(859_520_964L, unet.NumParameters());
        var transformers = Transformers(unet);
        Assert.Equal(16, transformers.Count); // 3 down × 2, 1 mid, 3 up × 3
        Assert.All(transformers, t => Assert.Equal(8, t.NumAttentionHeads));
        Assert.All(transformers, t => Assert.False(t.UseLinearProjection));
        Assert.Equal(new[] { 40, 80, 160 }, transformers.Select(t => t.AttentionHeadDim).Distinct().Order());
        var p = unet.named_parameters().ToDictionary(x => x.name, x => x.parameter.shape);
        Assert.Equal(new long[] { 320, 320, 1, 1 }, p["down_blocks.0.attentions.0.proj_in.weight"]);
        Assert.Equal(new long[] { 320, 768 }, p["down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight"]);
        Assert.Equal(new long[] { 2560, 320 }, p["down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj.weight"]);
        Assert.Equal(new long[] { 320, 1280 }, p["down_blocks.0.attentions.0.transformer_blocks.0.ff.net.2.weight"]);
        Assert.Equal(new long[] { 1280, 2560, 3, 3 }, p["up_blocks.0.resnets.0.conv1.weight"]);
        Assert.Equal(new long[] { 1280, 320 }, p["time_embedding.linear_1.weight"]);
    }

    [Fact]
    public void Sd21Config_UsesLinearProjectionAndHeadCountsPerBlock()
    {
        var config = ConfigJson.Parse<UNet2DConditionModelConfig>(Sd21Config, "sd21/unet/config.json");
        Assert.Equal(new[] { 5, 10, 20, 20 }, config.AttentionHeadDim);
        Assert.True(config.UseLinearProjection);
        Assert.True(config.UpcastAttention);
        using var unet = OnMeta(() => UNet2DConditionModel.FromConfig(config));
        Assert.Equal(865_910_724L, unet.NumParameters());
        var transformers = Transformers(unet);
        Assert.All(transformers, t => Assert.True(t.UseLinearProjection));
        Assert.All(transformers, t => Assert.Equal(64, t.AttentionHeadDim));
        var byName = unet.named_modules().Where(m => m.module is Transformer2DModel)
            .ToDictionary(m => m.name, m => ((Transformer2DModel)m.module).NumAttentionHeads);
        Assert.Equal(5, byName["down_blocks.0.attentions.0"]);
        Assert.Equal(10, byName["down_blocks.1.attentions.1"]);
        Assert.Equal(20, byName["down_blocks.2.attentions.0"]);
        Assert.Equal(20, byName["mid_block.attentions.0"]);
        Assert.Equal(20, byName["up_blocks.1.attentions.0"]); // reversed: up block 1 ↔ down block 2
        Assert.Equal(10, byName["up_blocks.2.attentions.2"]);
        Assert.Equal(5, byName["up_blocks.3.attentions.0"]);
        var p = unet.named_parameters().ToDictionary(x => x.name, x => x.parameter.shape);
        Assert.Equal(new long[] { 320, 320 }, p["down_blocks.0.attentions.0.proj_in.weight"]);
        Assert.Equal(new long[] { 1280, 1280 }, p["mid_block.attentions.0.proj_out.weight"]);
        Assert.Equal(new long[] { 320, 1024 }, p["up_blocks.3.attentions.0.transformer_blocks.0.attn2.to_v.weight"]);
    }

    [Fact]
    public void Sd2InpaintingConfig_TakesNineInputChannels()
    {
        var config = ConfigJson.Parse<UNet2DConditionModelConfig>(Sd21Config, "sd2-inpainting/unet/config.json") with { InChannels = 9 };
        using var unet = OnMeta(() => UNet2DConditionModel.FromConfig(config));
        var p = unet.named_parameters().ToDictionary(x => x.name, x => x.parameter.shape);
        Assert.Equal(new long[] { 320, 9, 3, 3 }, p["conv_in.weight"]);
        Assert.Equal(865_910_724L + 320 * 5 * 9, unet.NumParameters());
    }
}
