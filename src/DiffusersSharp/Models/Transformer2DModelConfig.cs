using System.Text.Json.Serialization;
using DiffusersSharp.Loading;

namespace DiffusersSharp.Models;

/// <summary>
/// The <c>config.json</c> of a top-level diffusers <c>Transformer2DModel</c> (models/transformer_2d.py, v0.25.1): every
/// argument of its <c>__init__</c>, with its default. DiffusersSharp builds the patch-input (DiT) form from it,
/// <see cref="DiTTransformer2DModel"/>.
/// </summary>
public sealed record Transformer2DModelConfig : DiffusersConfig
{
    /// <summary><c>num_attention_heads</c>: heads of each attention.</summary>
    [JsonPropertyName("num_attention_heads")] public int NumAttentionHeads { get; init; } = 16;
    /// <summary><c>attention_head_dim</c>: channels per head (the token width is heads × this).</summary>
    [JsonPropertyName("attention_head_dim")] public int AttentionHeadDim { get; init; } = 88;
    /// <summary><c>in_channels</c>: channels of the input latent.</summary>
    [JsonPropertyName("in_channels")] public int? InChannels { get; init; }
    /// <summary><c>out_channels</c>: channels of the output (null: <c>in_channels</c>; twice it for a learned sigma).</summary>
    [JsonPropertyName("out_channels")] public int? OutChannels { get; init; }
    /// <summary><c>num_layers</c>: transformer blocks.</summary>
    [JsonPropertyName("num_layers")] public int NumLayers { get; init; } = 1;
    /// <summary><c>dropout</c>: attention and feed-forward dropout (training only).</summary>
    [JsonPropertyName("dropout")] public double Dropout { get; init; }
    /// <summary><c>norm_num_groups</c>: GroupNorm groups of the continuous input (unused by patch input).</summary>
    [JsonPropertyName("norm_num_groups")] public int NormNumGroups { get; init; } = 32;
    /// <summary><c>cross_attention_dim</c>: width of encoder states for cross-attention (null: none).</summary>
    [JsonPropertyName("cross_attention_dim")] public int? CrossAttentionDim { get; init; }
    /// <summary><c>attention_bias</c>: the q/k/v projections have biases.</summary>
    [JsonPropertyName("attention_bias")] public bool AttentionBias { get; init; }
    /// <summary><c>sample_size</c>: height and width of the latent (required for patch input).</summary>
    [JsonPropertyName("sample_size")] public int? SampleSize { get; init; }
    /// <summary><c>num_vector_embeds</c>: classes of discrete (VQ) input; not ported.</summary>
    [JsonPropertyName("num_vector_embeds")] public int? NumVectorEmbeds { get; init; }
    /// <summary><c>patch_size</c>: side of the square patches of patch input (DiT: 2).</summary>
    [JsonPropertyName("patch_size")] public int? PatchSize { get; init; }
    /// <summary><c>activation_fn</c>: the feed-forward activation (DiT: "gelu-approximate").</summary>
    [JsonPropertyName("activation_fn")] public string ActivationFn { get; init; } = "geglu";
    /// <summary><c>num_embeds_ada_norm</c>: class labels of the ada-norm embedding (DiT: 1000; the row after them is the null class).</summary>
    [JsonPropertyName("num_embeds_ada_norm")] public int? NumEmbedsAdaNorm { get; init; }
    /// <summary><c>use_linear_projection</c>: linear proj_in/proj_out of the continuous input (unused by patch input).</summary>
    [JsonPropertyName("use_linear_projection")] public bool UseLinearProjection { get; init; }
    /// <summary><c>only_cross_attention</c>: the first attention attends to the encoder states.</summary>
    [JsonPropertyName("only_cross_attention")] public bool OnlyCrossAttention { get; init; }
    /// <summary><c>double_self_attention</c>: a second self-attention instead of the cross-attention.</summary>
    [JsonPropertyName("double_self_attention")] public bool DoubleSelfAttention { get; init; }
    /// <summary><c>upcast_attention</c>: attention scores in float32.</summary>
    [JsonPropertyName("upcast_attention")] public bool UpcastAttention { get; init; }
    /// <summary><c>norm_type</c>: "layer_norm", "ada_norm", "ada_norm_zero" (DiT), "ada_norm_single" (PixArt).</summary>
    [JsonPropertyName("norm_type")] public string NormType { get; init; } = "layer_norm";
    /// <summary><c>norm_elementwise_affine</c>: the blocks' layer norms have weights (DiT: false).</summary>
    [JsonPropertyName("norm_elementwise_affine")] public bool NormElementwiseAffine { get; init; } = true;
    /// <summary><c>norm_eps</c>: epsilon of the blocks' layer norms.</summary>
    [JsonPropertyName("norm_eps")] public double NormEps { get; init; } = 1e-5;
    /// <summary><c>attention_type</c>: "default" (or GLIGEN's "gated", not ported).</summary>
    [JsonPropertyName("attention_type")] public string AttentionType { get; init; } = "default";
    /// <summary><c>caption_channels</c>: PixArt's caption projection (null: none); not ported.</summary>
    [JsonPropertyName("caption_channels")] public int? CaptionChannels { get; init; }
}
