using System.Text.Json.Serialization;
using DiffusersSharp.Loading;

namespace DiffusersSharp.Models;

/// <summary>
/// The <c>config.json</c> of a diffusers <c>UNet2DConditionModel</c>: every argument of diffusers 0.25.1's
/// <c>UNet2DConditionModel.__init__</c>, with its default. Keys that take "an int or a list" (one value per
/// block) are arrays here; a single value in the file becomes a one-element array (meaning: every block) and
/// is written back as a single value.
/// </summary>
public sealed record UNet2DConditionModelConfig : DiffusersConfig
{
    [JsonPropertyName("sample_size"), JsonConverter(typeof(IntOrIntArrayJsonConverter))]
    public int[]? SampleSize { get; init; }

    [JsonPropertyName("in_channels")] public int InChannels { get; init; } = 4;
    [JsonPropertyName("out_channels")] public int OutChannels { get; init; } = 4;
    [JsonPropertyName("center_input_sample")] public bool CenterInputSample { get; init; }
    [JsonPropertyName("flip_sin_to_cos")] public bool FlipSinToCos { get; init; } = true;
    [JsonPropertyName("freq_shift")] public int FreqShift { get; init; }

    [JsonPropertyName("down_block_types")]
    public string[] DownBlockTypes { get; init; } = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"];

    /// <summary>"UNetMidBlock2DCrossAttn", "UNetMidBlock2D" or null (no mid block).</summary>
    [JsonPropertyName("mid_block_type")] public string? MidBlockType { get; init; } = "UNetMidBlock2DCrossAttn";

    [JsonPropertyName("up_block_types")]
    public string[] UpBlockTypes { get; init; } = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"];

    /// <summary>One bool for every block, or one per down block.</summary>
    [JsonPropertyName("only_cross_attention"), JsonConverter(typeof(BoolOrBoolArrayJsonConverter))]
    public bool[] OnlyCrossAttention { get; init; } = [false];

    [JsonPropertyName("block_out_channels")] public int[] BlockOutChannels { get; init; } = [320, 640, 1280, 1280];

    [JsonPropertyName("layers_per_block"), JsonConverter(typeof(IntOrIntArrayJsonConverter))]
    public int[] LayersPerBlock { get; init; } = [2];

    [JsonPropertyName("downsample_padding")] public int DownsamplePadding { get; init; } = 1;
    [JsonPropertyName("mid_block_scale_factor")] public double MidBlockScaleFactor { get; init; } = 1;
    [JsonPropertyName("dropout")] public double Dropout { get; init; }
    [JsonPropertyName("act_fn")] public string ActFn { get; init; } = "silu";

    /// <summary>Groups of the GroupNorms; null: no norm/activation before <c>conv_out</c>.</summary>
    [JsonPropertyName("norm_num_groups")] public int? NormNumGroups { get; init; } = 32;

    [JsonPropertyName("norm_eps")] public double NormEps { get; init; } = 1e-5;

    [JsonPropertyName("cross_attention_dim"), JsonConverter(typeof(IntOrIntArrayJsonConverter))]
    public int[] CrossAttentionDim { get; init; } = [1280];

    /// <summary>Transformer blocks per attention layer: one value for every block, or one per down block.</summary>
    [JsonPropertyName("transformer_layers_per_block"), JsonConverter(typeof(IntOrIntArrayJsonConverter))]
    public int[] TransformerLayersPerBlock { get; init; } = [1];

    /// <summary>Per up block, per layer transformer depths (asymmetric UNets); null: the reverse of the down blocks'.</summary>
    [JsonPropertyName("reverse_transformer_layers_per_block")]
    public int[][]? ReverseTransformerLayersPerBlock { get; init; }

    [JsonPropertyName("encoder_hid_dim")] public int? EncoderHidDim { get; init; }

    /// <summary>null or "text_proj" (a linear from encoder_hid_dim to cross_attention_dim).</summary>
    [JsonPropertyName("encoder_hid_dim_type")] public string? EncoderHidDimType { get; init; }

    /// <summary>
    /// Read by diffusers 0.25.1 as the <b>number of heads</b> of the cross-attention blocks (a historical
    /// misnomer: <c>num_attention_heads = num_attention_heads or attention_head_dim</c>); one value or one per
    /// block (SD 2.x: [5, 10, 20, 20]).
    /// </summary>
    [JsonPropertyName("attention_head_dim"), JsonConverter(typeof(IntOrIntArrayJsonConverter))]
    public int[] AttentionHeadDim { get; init; } = [8];

    /// <summary>Must be null in diffusers 0.25.1 (it raises otherwise; see <see cref="AttentionHeadDim"/>).</summary>
    [JsonPropertyName("num_attention_heads"), JsonConverter(typeof(IntOrIntArrayJsonConverter))]
    public int[]? NumAttentionHeads { get; init; }

    [JsonPropertyName("dual_cross_attention")] public bool DualCrossAttention { get; init; }
    [JsonPropertyName("use_linear_projection")] public bool UseLinearProjection { get; init; }

    /// <summary>null (a table when <see cref="NumClassEmbeds"/> is set), "timestep", "identity", "projection" or "simple_projection".</summary>
    [JsonPropertyName("class_embed_type")] public string? ClassEmbedType { get; init; }

    /// <summary>
    /// null or "text_time" (SDXL: the pooled text embedding and the micro-conditioning time ids, embedded by
    /// <c>add_time_proj</c> / <c>add_embedding</c>); Kandinsky's "text", "text_image", "image", "image_hint" are not ported.
    /// </summary>
    [JsonPropertyName("addition_embed_type")] public string? AdditionEmbedType { get; init; }

    /// <summary>"text_time": the width of the sinusoidal embedding of each time id.</summary>
    [JsonPropertyName("addition_time_embed_dim")] public int? AdditionTimeEmbedDim { get; init; }
    [JsonPropertyName("num_class_embeds")] public int? NumClassEmbeds { get; init; }

    /// <summary>
    /// diffusers' flag for float16 attention; like diffusers' scaled-dot-product processor it changes nothing here.
    /// null (as the SDXL configs write it) means false; absent is false, diffusers' default.
    /// </summary>
    [JsonPropertyName("upcast_attention")] public bool? UpcastAttention { get; init; } = false;

    [JsonPropertyName("resnet_time_scale_shift")] public string ResnetTimeScaleShift { get; init; } = "default";
    [JsonPropertyName("resnet_skip_time_act")] public bool ResnetSkipTimeAct { get; init; }
    [JsonPropertyName("resnet_out_scale_factor")] public double ResnetOutScaleFactor { get; init; } = 1.0;

    /// <summary>"positional" or "fourier".</summary>
    [JsonPropertyName("time_embedding_type")] public string TimeEmbeddingType { get; init; } = "positional";

    [JsonPropertyName("time_embedding_dim")] public int? TimeEmbeddingDim { get; init; }
    [JsonPropertyName("time_embedding_act_fn")] public string? TimeEmbeddingActFn { get; init; }
    [JsonPropertyName("timestep_post_act")] public string? TimestepPostAct { get; init; }
    [JsonPropertyName("time_cond_proj_dim")] public int? TimeCondProjDim { get; init; }
    [JsonPropertyName("conv_in_kernel")] public int ConvInKernel { get; init; } = 3;
    [JsonPropertyName("conv_out_kernel")] public int ConvOutKernel { get; init; } = 3;
    /// <summary>
    /// Input width of the "projection" class embeddings and of "text_time"'s <c>add_embedding</c> (SDXL: text_embeds
    /// width + number of time ids × addition_time_embed_dim, e.g. 1280 + 6 × 256 = 2816).
    /// </summary>
    [JsonPropertyName("projection_class_embeddings_input_dim")] public int? ProjectionClassEmbeddingsInputDim { get; init; }

    /// <summary>Only "default" is supported.</summary>
    [JsonPropertyName("attention_type")] public string AttentionType { get; init; } = "default";

    [JsonPropertyName("class_embeddings_concat")] public bool ClassEmbeddingsConcat { get; init; }

    /// <summary>Used by UNetMidBlock2DSimpleCrossAttn only (not ported); kept for round trips.</summary>
    [JsonPropertyName("mid_block_only_cross_attention")] public bool? MidBlockOnlyCrossAttention { get; init; }

    /// <summary>Used by the SimpleCrossAttn blocks only (not ported); kept for round trips.</summary>
    [JsonPropertyName("cross_attention_norm")] public string? CrossAttentionNorm { get; init; }

    [JsonPropertyName("addition_embed_type_num_heads")] public int AdditionEmbedTypeNumHeads { get; init; } = 64;
}
