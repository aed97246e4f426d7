namespace DiffusersSharp.Models;

/// <summary>
/// The arguments of diffusers' <c>get_down_block</c> / <c>get_up_block</c> (and of the mid block a
/// <c>mid_block_type</c> names), with diffusers' defaults: what a UNet hands <see cref="UNet2DBlocks"/> to build
/// one block. Each block type reads the ones it uses (the up-only and down-only values are ignored by the other side).
/// </summary>
public sealed record UNetBlockArgs
{
    public int NumLayers { get; init; } = 1;
    public int InChannels { get; init; }
    public int OutChannels { get; init; }

    /// <summary>Up blocks: the channels of the hidden states coming from the block below.</summary>
    public int PrevOutputChannel { get; init; }

    public int? TembChannels { get; init; }
    public bool AddDownsample { get; init; }
    public bool AddUpsample { get; init; }
    public double ResnetEps { get; init; } = 1e-6;
    public string ResnetActFn { get; init; } = "swish";

    /// <summary>Up blocks: the block's index in the up path.</summary>
    public int? ResolutionIdx { get; init; }

    /// <summary>Transformer depth of each layer's Transformer2DModel: one value for every layer, or one per layer.</summary>
    public int[]? TransformerLayersPerBlock { get; init; }

    public int? NumAttentionHeads { get; init; }
    public int? ResnetGroups { get; init; }
    public int? CrossAttentionDim { get; init; }
    public int? DownsamplePadding { get; init; }
    public bool DualCrossAttention { get; init; }
    public bool UseLinearProjection { get; init; }
    public bool OnlyCrossAttention { get; init; }
    public bool UpcastAttention { get; init; }
    public string ResnetTimeScaleShift { get; init; } = "default";
    public string AttentionType { get; init; } = "default";
    public bool ResnetSkipTimeAct { get; init; }
    public double ResnetOutScaleFactor { get; init; } = 1.0;
    public int? AttentionHeadDim { get; init; }
    public string? DownsampleType { get; init; }
    public string? UpsampleType { get; init; }
    public double Dropout { get; init; }

    /// <summary>Mid blocks: diffusers' <c>mid_block_scale_factor</c>.</summary>
    public double OutputScaleFactor { get; init; } = 1.0;
}
