namespace DiffusersSharp.Models;

/// <summary>
/// The arguments of diffusers' <c>get_down_block</c> / <c>get_up_block</c> (and of the mid block a
/// <c>mid_block_type</c> names), with diffusers' defaults: what a UNet hands <see cref="UNet2DBlocks"/> to build
/// one block. Each block type reads the ones it uses (the up-only and down-only values are ignored by the other side).
/// </summary>
public sealed record UNetBlockArgs
{
    /// <summary>diffusers' <c>num_layers</c>: resnets (and attention layers) in the block.</summary>
    public int NumLayers { get; init; } = 1;
    /// <summary>
    /// diffusers' <c>in_channels</c>: channels entering the block (up blocks: the skip connection's channels).
    /// </summary>
    public int InChannels { get; init; }
    /// <summary>diffusers' <c>out_channels</c>: channels the block's resnets produce.</summary>
    public int OutChannels { get; init; }

    /// <summary>Up blocks: the channels of the hidden states coming from the block below.</summary>
    public int PrevOutputChannel { get; init; }

    /// <summary>
    /// diffusers' <c>temb_channels</c>: width of the time embedding the resnets add; null: no time embedding (the
    /// VAE).
    /// </summary>
    public int? TembChannels { get; init; }
    /// <summary>diffusers' <c>add_downsample</c>: the down block ends with a stride-2 downsampler.</summary>
    public bool AddDownsample { get; init; }
    /// <summary>diffusers' <c>add_upsample</c>: the up block ends with a ×2 upsampler.</summary>
    public bool AddUpsample { get; init; }
    /// <summary>diffusers' <c>resnet_eps</c>: epsilon of the resnets' GroupNorms.</summary>
    public double ResnetEps { get; init; } = 1e-6;
    /// <summary>diffusers' <c>resnet_act_fn</c>: the resnets' activation ("swish" = "silu", "mish", "gelu").</summary>
    public string ResnetActFn { get; init; } = "swish";

    /// <summary>Up blocks: the block's index in the up path.</summary>
    public int? ResolutionIdx { get; init; }

    /// <summary>Transformer depth of each layer's Transformer2DModel: one value for every layer, or one per layer.</summary>
    public int[]? TransformerLayersPerBlock { get; init; }

    /// <summary>diffusers' <c>num_attention_heads</c>: heads of the block's attention or transformer layers.</summary>
    public int? NumAttentionHeads { get; init; }
    /// <summary>
    /// diffusers' <c>resnet_groups</c>: groups of the resnets' GroupNorms; null: the block's default (32).
    /// </summary>
    public int? ResnetGroups { get; init; }
    /// <summary>
    /// diffusers' <c>cross_attention_dim</c>: width of the encoder hidden states a cross-attention block reads.
    /// </summary>
    public int? CrossAttentionDim { get; init; }
    /// <summary>
    /// diffusers' <c>downsample_padding</c>: padding of the downsampling convolution; null: the block's default (1).
    /// </summary>
    public int? DownsamplePadding { get; init; }
    /// <summary>diffusers' <c>dual_cross_attention</c>: not supported; the UNet config check refuses true.</summary>
    public bool DualCrossAttention { get; init; }
    /// <summary>
    /// diffusers' <c>use_linear_projection</c>: linear <c>proj_in</c>/<c>proj_out</c> in the transformers instead of
    /// 1×1 convolutions.
    /// </summary>
    public bool UseLinearProjection { get; init; }
    /// <summary>
    /// diffusers' <c>only_cross_attention</c>: the transformers' first attention attends to the encoder states, not
    /// to itself.
    /// </summary>
    public bool OnlyCrossAttention { get; init; }
    /// <summary>
    /// diffusers' <c>upcast_attention</c>, handed to the attention layers (recorded; SDPA ignores it, as in diffusers).
    /// </summary>
    public bool UpcastAttention { get; init; }
    /// <summary>
    /// diffusers' <c>resnet_time_scale_shift</c>: "default" (time embedding added) or "scale_shift" (FiLM-style).
    /// </summary>
    public string ResnetTimeScaleShift { get; init; } = "default";
    /// <summary>
    /// diffusers' <c>attention_type</c>: "default" (the only one supported here; "gated" belongs to GLIGEN).
    /// </summary>
    public string AttentionType { get; init; } = "default";
    /// <summary>
    /// diffusers' <c>resnet_skip_time_act</c>: the resnets project the time embedding without activating it first.
    /// </summary>
    public bool ResnetSkipTimeAct { get; init; }
    /// <summary>diffusers' <c>resnet_out_scale_factor</c>: the resnets divide their output by this.</summary>
    public double ResnetOutScaleFactor { get; init; } = 1.0;
    /// <summary>
    /// diffusers' <c>attention_head_dim</c>: channels per attention head in the attention blocks of UNet2DModel;
    /// null: the block's channels.
    /// </summary>
    public int? AttentionHeadDim { get; init; }
    /// <summary>diffusers' <c>downsample_type</c>: "conv" or "resnet" (AttnDownBlock2D); null: "conv".</summary>
    public string? DownsampleType { get; init; }
    /// <summary>diffusers' <c>upsample_type</c>: "conv" or "resnet" (AttnUpBlock2D); null: "conv".</summary>
    public string? UpsampleType { get; init; }
    /// <summary>diffusers' <c>dropout</c>: dropout probability in the resnets (only active in training).</summary>
    public double Dropout { get; init; }

    /// <summary>Mid blocks: diffusers' <c>mid_block_scale_factor</c>.</summary>
    public double OutputScaleFactor { get; init; } = 1.0;
}
