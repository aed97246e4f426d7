using System.Text.Json;
using System.Text.Json.Serialization;
using DiffusersSharp.Loading;

namespace DiffusersSharp.Models;

/// <summary>
/// The <c>config.json</c> of a diffusers <c>ControlNetModel</c>: every argument of diffusers 0.25.1's
/// <c>ControlNetModel.__init__</c>, with its default. Keys that take "an int or a list" (one value per down block) are
/// arrays here; a single value in the file becomes a one-element array (meaning: every block) and is written back as a
/// single value; a one-entry list in the file for several down blocks is refused when it is read, as diffusers refuses
/// it (<see cref="PerBlockLists"/>). Checked when a model is built (<see cref="ControlNetModelConfigValidation"/>).
/// </summary>
public sealed record ControlNetModelConfig : DiffusersConfig
{
    /// <summary>Channels of the noisy latent input.</summary>
    [JsonPropertyName("in_channels")] public int InChannels { get; init; } = 4;

    /// <summary>Channels of the control image (3: RGB).</summary>
    [JsonPropertyName("conditioning_channels")] public int ConditioningChannels { get; init; } = 3;

    /// <summary>Whether the sinusoidal time projection puts cos before sin.</summary>
    [JsonPropertyName("flip_sin_to_cos")] public bool FlipSinToCos { get; init; } = true;

    /// <summary>The time projection's frequency shift.</summary>
    [JsonPropertyName("freq_shift")] public int FreqShift { get; init; }

    /// <summary>The down blocks, by diffusers' type name (the <see cref="UNet2DBlocks"/> registry).</summary>
    [JsonPropertyName("down_block_types")]
    public string[] DownBlockTypes { get; init; } = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"];

    /// <summary>"UNetMidBlock2DCrossAttn" or "UNetMidBlock2D" (diffusers refuses anything else, null included).</summary>
    [JsonPropertyName("mid_block_type")] public string? MidBlockType { get; init; } = "UNetMidBlock2DCrossAttn";

    /// <summary>One bool for every block, or one per down block.</summary>
    [JsonPropertyName("only_cross_attention"), JsonConverter(typeof(BoolOrBoolArrayJsonConverter))]
    public bool[] OnlyCrossAttention { get; init; } = [false];

    /// <summary>Output channels of each down block.</summary>
    [JsonPropertyName("block_out_channels")] public int[] BlockOutChannels { get; init; } = [320, 640, 1280, 1280];

    /// <summary>Resnets per down block (one value for every block in ControlNetModel).</summary>
    [JsonPropertyName("layers_per_block")] public int LayersPerBlock { get; init; } = 2;

    /// <summary>Padding of the downsampling convolutions.</summary>
    [JsonPropertyName("downsample_padding")] public int DownsamplePadding { get; init; } = 1;

    /// <summary>The mid block's output scale factor.</summary>
    [JsonPropertyName("mid_block_scale_factor")] public double MidBlockScaleFactor { get; init; } = 1;

    /// <summary>The activation of the resnets and the time embedding.</summary>
    [JsonPropertyName("act_fn")] public string ActFn { get; init; } = "silu";

    /// <summary>Groups of the GroupNorms.</summary>
    [JsonPropertyName("norm_num_groups")] public int? NormNumGroups { get; init; } = 32;

    /// <summary>Epsilon of the GroupNorms.</summary>
    [JsonPropertyName("norm_eps")] public double NormEps { get; init; } = 1e-5;

    /// <summary>Width of the encoder hidden states (the text encoder's hidden size); one value in ControlNetModel.</summary>
    [JsonPropertyName("cross_attention_dim")] public int CrossAttentionDim { get; init; } = 1280;

    /// <summary>
    /// Transformer blocks per attention layer of the down blocks (and of the mid block: the last entry, its first layer's
    /// depth for a list): one value for every block, or one entry per down block, each an int or a list with a depth per
    /// layer (the nested form of asymmetric UNets, which <see cref="ControlNetModel.FromUnet"/> copies). A longer list is
    /// read as diffusers reads it: down block i takes entry i, the mid block the last entry.
    /// </summary>
    [JsonPropertyName("transformer_layers_per_block"), JsonConverter(typeof(TransformerLayersPerBlockJsonConverter))]
    public TransformerDepth[] TransformerLayersPerBlock { get; init; } = [1];

    /// <summary>With <see cref="EncoderHidDimType"/> "text_proj": the width projected to cross_attention_dim.</summary>
    [JsonPropertyName("encoder_hid_dim")] public int? EncoderHidDim { get; init; }

    /// <summary>null or "text_proj" (diffusers sets "text_proj" when only <see cref="EncoderHidDim"/> is given).</summary>
    [JsonPropertyName("encoder_hid_dim_type")] public string? EncoderHidDimType { get; init; }

    /// <summary>
    /// The number of heads of the attention blocks unless <see cref="NumAttentionHeads"/> is set (diffusers' historical
    /// misnomer); one value or one per down block.
    /// </summary>
    [JsonPropertyName("attention_head_dim"), JsonConverter(typeof(IntOrIntArrayJsonConverter))]
    public int[] AttentionHeadDim { get; init; } = [8];

    /// <summary>The number of heads (ControlNetModel accepts it, unlike the UNet of 0.25.1); null: <see cref="AttentionHeadDim"/>.</summary>
    [JsonPropertyName("num_attention_heads"), JsonConverter(typeof(IntOrIntArrayJsonConverter))]
    public int[]? NumAttentionHeads { get; init; }

    /// <summary>Linear (true) or 1×1-convolution (false) projections around the transformers.</summary>
    [JsonPropertyName("use_linear_projection")] public bool UseLinearProjection { get; init; }

    /// <summary>null (a table when <see cref="NumClassEmbeds"/> is set), "timestep", "identity" or "projection".</summary>
    [JsonPropertyName("class_embed_type")] public string? ClassEmbedType { get; init; }

    /// <summary>null or "text_time" (SDXL ControlNets: <c>add_time_proj</c> / <c>add_embedding</c>, as the SDXL UNet).</summary>
    [JsonPropertyName("addition_embed_type")] public string? AdditionEmbedType { get; init; }

    /// <summary>"text_time": the width of the sinusoidal embedding of each time id.</summary>
    [JsonPropertyName("addition_time_embed_dim")] public int? AdditionTimeEmbedDim { get; init; }

    /// <summary>Size of the class-label table (with a null <see cref="ClassEmbedType"/>).</summary>
    [JsonPropertyName("num_class_embeds")] public int? NumClassEmbeds { get; init; }

    /// <summary>diffusers' flag for float16 attention; changes nothing here. null (as SDXL configs write it) means false.</summary>
    [JsonPropertyName("upcast_attention")] public bool? UpcastAttention { get; init; } = false;

    /// <summary>"default" or "scale_shift".</summary>
    [JsonPropertyName("resnet_time_scale_shift")] public string ResnetTimeScaleShift { get; init; } = "default";

    /// <summary>Input width of the "projection" class embedding and of "text_time"'s <c>add_embedding</c>.</summary>
    [JsonPropertyName("projection_class_embeddings_input_dim")] public int? ProjectionClassEmbeddingsInputDim { get; init; }

    /// <summary>"rgb" or "bgr" (the control image's channels are flipped first).</summary>
    [JsonPropertyName("controlnet_conditioning_channel_order")] public string ControlnetConditioningChannelOrder { get; init; } = "rgb";

    /// <summary>Channels of the conditioning embedding's convolutions; each entry after the first halves the image size.</summary>
    [JsonPropertyName("conditioning_embedding_out_channels")]
    public int[] ConditioningEmbeddingOutChannels { get; init; } = [16, 32, 96, 256];

    /// <summary>The residuals are averaged over height and width (shuffle ControlNets); implies guess mode in the pipelines.</summary>
    [JsonPropertyName("global_pool_conditions")] public bool GlobalPoolConditions { get; init; }

    /// <summary>Heads of the "text" addition embedding (not ported; kept for round trips).</summary>
    [JsonPropertyName("addition_embed_type_num_heads")] public int AdditionEmbedTypeNumHeads { get; init; } = 64;

    /// <summary>A one-entry list for a per-block key is refused for several down blocks (<see cref="PerBlockLists"/>).</summary>
    internal override void CheckJsonForm(JsonElement root, string source) =>
        PerBlockLists.CheckJsonForm(root, source, DownBlockTypes?.Length, ControlNetModelConfigValidation.PerBlockKeys);
}
