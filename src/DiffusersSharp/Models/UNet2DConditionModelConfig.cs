using System.Text.Json;
using System.Text.Json.Serialization;
using DiffusersSharp.Loading;

namespace DiffusersSharp.Models;

/// <summary>
/// The <c>config.json</c> of a diffusers <c>UNet2DConditionModel</c>: every argument of diffusers 0.25.1's
/// <c>UNet2DConditionModel.__init__</c>, with its default. Keys that take "an int or a list" (one value per
/// block) are arrays here; a single value in the file becomes a one-element array (meaning: every block) and
/// is written back as a single value. A list in the file needs an entry per down block: a one-entry list for several
/// blocks is refused when the file is read, as diffusers refuses it (<see cref="PerBlockLists"/>).
/// </summary>
public sealed record UNet2DConditionModelConfig : DiffusersConfig
{
    /// <summary>
    /// <c>sample_size</c>: height and width of the latents the model was trained on (one value, or [height, width]);
    /// null if the file has none.
    /// </summary>
    [JsonPropertyName("sample_size"), JsonConverter(typeof(IntOrIntArrayJsonConverter))]
    public int[]? SampleSize { get; init; }

    /// <summary>
    /// <c>in_channels</c>: channels of the input sample (4 latent channels; 9 for inpainting UNets).
    /// </summary>
    [JsonPropertyName("in_channels")] public int InChannels { get; init; } = 4;
    /// <summary><c>out_channels</c>: channels of the predicted noise / sample.</summary>
    [JsonPropertyName("out_channels")] public int OutChannels { get; init; } = 4;
    /// <summary>
    /// <c>center_input_sample</c>: map the input from [0, 1] to [-1, 1] (<c>2 * sample - 1</c>) before
    /// <c>conv_in</c>.
    /// </summary>
    [JsonPropertyName("center_input_sample")] public bool CenterInputSample { get; init; }
    /// <summary><c>flip_sin_to_cos</c>: the sinusoidal timestep embedding puts cos before sin.</summary>
    [JsonPropertyName("flip_sin_to_cos")] public bool FlipSinToCos { get; init; } = true;
    /// <summary>
    /// <c>freq_shift</c>: the frequency shift of the timestep embedding (diffusers' <c>downscale_freq_shift</c>).
    /// </summary>
    [JsonPropertyName("freq_shift")] public int FreqShift { get; init; }

    /// <summary>
    /// <c>down_block_types</c>: the type name of each down block, resolved through <see cref="UNet2DBlocks"/>.
    /// </summary>
    [JsonPropertyName("down_block_types")]
    public string[] DownBlockTypes { get; init; } = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"];

    /// <summary>"UNetMidBlock2DCrossAttn", "UNetMidBlock2D" or null (no mid block).</summary>
    [JsonPropertyName("mid_block_type")] public string? MidBlockType { get; init; } = "UNetMidBlock2DCrossAttn";

    /// <summary>
    /// <c>up_block_types</c>: the type name of each up block, resolved through <see cref="UNet2DBlocks"/>.
    /// </summary>
    [JsonPropertyName("up_block_types")]
    public string[] UpBlockTypes { get; init; } = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"];

    /// <summary>One bool for every block, or one per down block.</summary>
    [JsonPropertyName("only_cross_attention"), JsonConverter(typeof(BoolOrBoolArrayJsonConverter))]
    public bool[] OnlyCrossAttention { get; init; } = [false];

    /// <summary>
    /// <c>block_out_channels</c>: output channels of each down block (and, reversed, of each up block).
    /// </summary>
    [JsonPropertyName("block_out_channels")] public int[] BlockOutChannels { get; init; } = [320, 640, 1280, 1280];

    /// <summary>
    /// <c>layers_per_block</c>: resnets per down block (up blocks have one more); one value or one per block.
    /// </summary>
    [JsonPropertyName("layers_per_block"), JsonConverter(typeof(IntOrIntArrayJsonConverter))]
    public int[] LayersPerBlock { get; init; } = [2];

    /// <summary><c>downsample_padding</c>: padding of the stride-2 downsampling convolutions.</summary>
    [JsonPropertyName("downsample_padding")] public int DownsamplePadding { get; init; } = 1;
    /// <summary><c>mid_block_scale_factor</c>: the mid block's resnet output scale factor.</summary>
    [JsonPropertyName("mid_block_scale_factor")] public double MidBlockScaleFactor { get; init; } = 1;
    /// <summary><c>dropout</c>: dropout probability in the resnets (only active in training).</summary>
    [JsonPropertyName("dropout")] public double Dropout { get; init; }
    /// <summary>
    /// <c>act_fn</c>: the activation of the resnets and the time embedding ("silu", "mish", "gelu", ...).
    /// </summary>
    [JsonPropertyName("act_fn")] public string ActFn { get; init; } = "silu";

    /// <summary>Groups of the GroupNorms; null: no norm/activation before <c>conv_out</c>.</summary>
    [JsonPropertyName("norm_num_groups")] public int? NormNumGroups { get; init; } = 32;

    /// <summary><c>norm_eps</c>: epsilon of the GroupNorms.</summary>
    [JsonPropertyName("norm_eps")] public double NormEps { get; init; } = 1e-5;

    /// <summary>
    /// <c>cross_attention_dim</c>: width of the encoder hidden states the cross-attention reads (768 for SD 1.x); one
    /// value or one per block.
    /// </summary>
    [JsonPropertyName("cross_attention_dim"), JsonConverter(typeof(IntOrIntArrayJsonConverter))]
    public int[] CrossAttentionDim { get; init; } = [1280];

    /// <summary>
    /// <c>transformer_layers_per_block</c>: transformer blocks per attention layer of the down blocks (and of the mid
    /// block: the last entry, its first layer's depth for a list): one value for every block, or one entry per down
    /// block, each an int or a list with a depth per layer (the nested form, which needs
    /// <see cref="ReverseTransformerLayersPerBlock"/>). A longer list is read as diffusers reads it: down block i takes
    /// entry i, the mid block the last entry, the up blocks the list reversed (<see cref="PerBlockDepths"/>).
    /// </summary>
    [JsonPropertyName("transformer_layers_per_block"), JsonConverter(typeof(TransformerLayersPerBlockJsonConverter))]
    public TransformerDepth[] TransformerLayersPerBlock { get; init; } = [1];

    /// <summary>
    /// <c>reverse_transformer_layers_per_block</c>: the up blocks' entries in up order (asymmetric UNets), each an int or a
    /// list with a depth per layer; null: the down blocks' entries reversed.
    /// </summary>
    [JsonPropertyName("reverse_transformer_layers_per_block"), JsonConverter(typeof(ReverseTransformerLayersJsonConverter))]
    public TransformerDepth[]? ReverseTransformerLayersPerBlock { get; init; }

    /// <summary>
    /// <c>encoder_hid_dim</c>: width of the encoder hidden states before <see cref="EncoderHidDimType"/>'s
    /// projection; null: no projection.
    /// </summary>
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

    /// <summary>
    /// <c>dual_cross_attention</c>: use a DualTransformer2DModel (two text encoders); not supported, checked false at
    /// load.
    /// </summary>
    [JsonPropertyName("dual_cross_attention")] public bool DualCrossAttention { get; init; }
    /// <summary>
    /// <c>use_linear_projection</c>: the transformers' <c>proj_in</c>/<c>proj_out</c> are linear layers (SD 2.x)
    /// instead of 1×1 convolutions.
    /// </summary>
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
    /// <summary>
    /// <c>num_class_embeds</c>: size of the class-label embedding table when <see cref="ClassEmbedType"/> is null;
    /// null: no class embedding.
    /// </summary>
    [JsonPropertyName("num_class_embeds")] public int? NumClassEmbeds { get; init; }

    /// <summary>
    /// diffusers' flag for float16 attention; like diffusers' scaled-dot-product processor it changes nothing here.
    /// null (as the SDXL configs write it) means false; absent is false, diffusers' default.
    /// </summary>
    [JsonPropertyName("upcast_attention")] public bool? UpcastAttention { get; init; } = false;

    /// <summary>
    /// <c>resnet_time_scale_shift</c>: how a resnet adds the time embedding: "default" (added) or "scale_shift"
    /// (FiLM-style).
    /// </summary>
    [JsonPropertyName("resnet_time_scale_shift")] public string ResnetTimeScaleShift { get; init; } = "default";
    /// <summary>
    /// <c>resnet_skip_time_act</c>: the resnets apply the time embedding without the activation before their
    /// projection.
    /// </summary>
    [JsonPropertyName("resnet_skip_time_act")] public bool ResnetSkipTimeAct { get; init; }
    /// <summary><c>resnet_out_scale_factor</c>: the resnets divide their output by this.</summary>
    [JsonPropertyName("resnet_out_scale_factor")] public double ResnetOutScaleFactor { get; init; } = 1.0;

    /// <summary>"positional" or "fourier".</summary>
    [JsonPropertyName("time_embedding_type")] public string TimeEmbeddingType { get; init; } = "positional";

    /// <summary>
    /// <c>time_embedding_dim</c>: width of the time embedding; null: four times the first block's channels.
    /// </summary>
    [JsonPropertyName("time_embedding_dim")] public int? TimeEmbeddingDim { get; init; }
    /// <summary>
    /// <c>time_embedding_act_fn</c>: an activation applied once to the time embedding before the blocks; null: none.
    /// </summary>
    [JsonPropertyName("time_embedding_act_fn")] public string? TimeEmbeddingActFn { get; init; }
    /// <summary>
    /// <c>timestep_post_act</c>: activation after the time embedding's second linear layer; null: none.
    /// </summary>
    [JsonPropertyName("timestep_post_act")] public string? TimestepPostAct { get; init; }
    /// <summary>
    /// <c>time_cond_proj_dim</c>: width of an extra condition projected into the time embedding (LCM's guidance
    /// embedding); null: none.
    /// </summary>
    [JsonPropertyName("time_cond_proj_dim")] public int? TimeCondProjDim { get; init; }
    /// <summary><c>conv_in_kernel</c>: kernel size of <c>conv_in</c>.</summary>
    [JsonPropertyName("conv_in_kernel")] public int ConvInKernel { get; init; } = 3;
    /// <summary><c>conv_out_kernel</c>: kernel size of <c>conv_out</c>.</summary>
    [JsonPropertyName("conv_out_kernel")] public int ConvOutKernel { get; init; } = 3;
    /// <summary>
    /// Input width of the "projection" class embeddings and of "text_time"'s <c>add_embedding</c> (SDXL: text_embeds
    /// width + number of time ids × addition_time_embed_dim, e.g. 1280 + 6 × 256 = 2816).
    /// </summary>
    [JsonPropertyName("projection_class_embeddings_input_dim")] public int? ProjectionClassEmbeddingsInputDim { get; init; }

    /// <summary>Only "default" is supported.</summary>
    [JsonPropertyName("attention_type")] public string AttentionType { get; init; } = "default";

    /// <summary>
    /// <c>class_embeddings_concat</c>: concatenate the class embedding to the time embedding instead of adding it.
    /// </summary>
    [JsonPropertyName("class_embeddings_concat")] public bool ClassEmbeddingsConcat { get; init; }

    /// <summary>Used by UNetMidBlock2DSimpleCrossAttn only (not ported); kept for round trips.</summary>
    [JsonPropertyName("mid_block_only_cross_attention")] public bool? MidBlockOnlyCrossAttention { get; init; }

    /// <summary>Used by the SimpleCrossAttn blocks only (not ported); kept for round trips.</summary>
    [JsonPropertyName("cross_attention_norm")] public string? CrossAttentionNorm { get; init; }

    /// <summary>
    /// <c>addition_embed_type_num_heads</c>: heads of the "text" addition embedding's attention pooling.
    /// </summary>
    [JsonPropertyName("addition_embed_type_num_heads")] public int AdditionEmbedTypeNumHeads { get; init; } = 64;

    /// <summary>A one-entry list for a per-block key is refused for several down blocks (<see cref="PerBlockLists"/>).</summary>
    internal override void CheckJsonForm(JsonElement root, string source) =>
        PerBlockLists.CheckJsonForm(root, source, DownBlockTypes?.Length, UNet2DConditionModelConfigValidation.PerBlockKeys);
}
