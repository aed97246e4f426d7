using System.Text.Json.Serialization;
using DiffusersSharp.Loading;

namespace DiffusersSharp.Models;

/// <summary>
/// The <c>config.json</c> of a diffusers <c>UNet2DModel</c>: every argument of diffusers 0.25.1's
/// <c>UNet2DModel.__init__</c>, with its default.
/// </summary>
public sealed record UNet2DModelConfig : DiffusersConfig
{
    /// <summary>Height and width of the sample: one int, or [height, width]; null when unknown.</summary>
    [JsonPropertyName("sample_size"), JsonConverter(typeof(IntOrIntArrayJsonConverter))]
    public int[]? SampleSize { get; init; }

    /// <summary><c>in_channels</c>: channels of the input image.</summary>
    [JsonPropertyName("in_channels")] public int InChannels { get; init; } = 3;
    /// <summary><c>out_channels</c>: channels of the predicted noise / sample.</summary>
    [JsonPropertyName("out_channels")] public int OutChannels { get; init; } = 3;
    /// <summary>
    /// <c>center_input_sample</c>: map the input from [0, 1] to [-1, 1] (<c>2 * sample - 1</c>) before
    /// <c>conv_in</c>.
    /// </summary>
    [JsonPropertyName("center_input_sample")] public bool CenterInputSample { get; init; }

    /// <summary>"positional" (sinusoidal), "fourier" (Gaussian Fourier features of ln t) or "learned" (an embedding table).</summary>
    [JsonPropertyName("time_embedding_type")] public string TimeEmbeddingType { get; init; } = "positional";

    /// <summary>
    /// <c>freq_shift</c>: the frequency shift of the sinusoidal timestep embedding (diffusers'
    /// <c>downscale_freq_shift</c>).
    /// </summary>
    [JsonPropertyName("freq_shift")] public int FreqShift { get; init; }
    /// <summary><c>flip_sin_to_cos</c>: the sinusoidal timestep embedding puts cos before sin.</summary>
    [JsonPropertyName("flip_sin_to_cos")] public bool FlipSinToCos { get; init; } = true;

    /// <summary>
    /// <c>down_block_types</c>: the type name of each down block, resolved through <see cref="UNet2DBlocks"/>.
    /// </summary>
    [JsonPropertyName("down_block_types")]
    public string[] DownBlockTypes { get; init; } = ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"];

    /// <summary>
    /// <c>up_block_types</c>: the type name of each up block, resolved through <see cref="UNet2DBlocks"/>.
    /// </summary>
    [JsonPropertyName("up_block_types")]
    public string[] UpBlockTypes { get; init; } = ["AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"];

    /// <summary>
    /// <c>block_out_channels</c>: output channels of each down block (and, reversed, of each up block).
    /// </summary>
    [JsonPropertyName("block_out_channels")] public int[] BlockOutChannels { get; init; } = [224, 448, 672, 896];
    /// <summary><c>layers_per_block</c>: resnets per down block (up blocks have one more).</summary>
    [JsonPropertyName("layers_per_block")] public int LayersPerBlock { get; init; } = 2;
    /// <summary><c>mid_block_scale_factor</c>: the mid block's resnet output scale factor.</summary>
    [JsonPropertyName("mid_block_scale_factor")] public double MidBlockScaleFactor { get; init; } = 1;
    /// <summary><c>downsample_padding</c>: padding of the stride-2 downsampling convolutions.</summary>
    [JsonPropertyName("downsample_padding")] public int DownsamplePadding { get; init; } = 1;

    /// <summary>"conv" or "resnet" (used by AttnDownBlock2D).</summary>
    [JsonPropertyName("downsample_type")] public string DownsampleType { get; init; } = "conv";

    /// <summary>"conv" or "resnet" (used by AttnUpBlock2D).</summary>
    [JsonPropertyName("upsample_type")] public string UpsampleType { get; init; } = "conv";

    /// <summary><c>dropout</c>: dropout probability in the resnets (only active in training).</summary>
    [JsonPropertyName("dropout")] public double Dropout { get; init; }
    /// <summary>
    /// <c>act_fn</c>: the activation of the resnets and the time embedding ("silu", "mish", "gelu", ...).
    /// </summary>
    [JsonPropertyName("act_fn")] public string ActFn { get; init; } = "silu";

    /// <summary>Channels per attention head; null means one head per block (head dim = the block's channels).</summary>
    [JsonPropertyName("attention_head_dim")] public int? AttentionHeadDim { get; init; } = 8;

    /// <summary>
    /// <c>norm_num_groups</c>: groups of the GroupNorms; null: no norm/activation before <c>conv_out</c>.
    /// </summary>
    [JsonPropertyName("norm_num_groups")] public int? NormNumGroups { get; init; } = 32;
    /// <summary>
    /// <c>attn_norm_num_groups</c>: groups of the mid block attention's GroupNorm; null: <see cref="NormNumGroups"/>.
    /// </summary>
    [JsonPropertyName("attn_norm_num_groups")] public int? AttnNormNumGroups { get; init; }
    /// <summary><c>norm_eps</c>: epsilon of the GroupNorms.</summary>
    [JsonPropertyName("norm_eps")] public double NormEps { get; init; } = 1e-5;

    /// <summary>"default" (add the time embedding) or "scale_shift" (scale and shift after the second norm).</summary>
    [JsonPropertyName("resnet_time_scale_shift")] public string ResnetTimeScaleShift { get; init; } = "default";

    /// <summary><c>add_attention</c>: the mid block has its attention layer.</summary>
    [JsonPropertyName("add_attention")] public bool AddAttention { get; init; } = true;

    /// <summary>null (an embedding table when <see cref="NumClassEmbeds"/> is set), "timestep" or "identity".</summary>
    [JsonPropertyName("class_embed_type")] public string? ClassEmbedType { get; init; }

    /// <summary><c>num_class_embeds</c>: size of the class embedding table (null: no class conditioning).</summary>
    [JsonPropertyName("num_class_embeds")] public int? NumClassEmbeds { get; init; }
    /// <summary><c>num_train_timesteps</c>: size of the "learned" time embedding table; null otherwise.</summary>
    [JsonPropertyName("num_train_timesteps")] public int? NumTrainTimesteps { get; init; }
}
