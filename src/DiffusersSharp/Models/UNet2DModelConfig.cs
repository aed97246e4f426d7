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

    [JsonPropertyName("in_channels")] public int InChannels { get; init; } = 3;
    [JsonPropertyName("out_channels")] public int OutChannels { get; init; } = 3;
    [JsonPropertyName("center_input_sample")] public bool CenterInputSample { get; init; }

    /// <summary>"positional" (sinusoidal), "fourier" (Gaussian Fourier features of ln t) or "learned" (an embedding table).</summary>
    [JsonPropertyName("time_embedding_type")] public string TimeEmbeddingType { get; init; } = "positional";

    [JsonPropertyName("freq_shift")] public int FreqShift { get; init; }
    [JsonPropertyName("flip_sin_to_cos")] public bool FlipSinToCos { get; init; } = true;

    [JsonPropertyName("down_block_types")]
    public string[] DownBlockTypes { get; init; } = ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"];

    [JsonPropertyName("up_block_types")]
    public string[] UpBlockTypes { get; init; } = ["AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"];

    [JsonPropertyName("block_out_channels")] public int[] BlockOutChannels { get; init; } = [224, 448, 672, 896];
    [JsonPropertyName("layers_per_block")] public int LayersPerBlock { get; init; } = 2;
    [JsonPropertyName("mid_block_scale_factor")] public double MidBlockScaleFactor { get; init; } = 1;
    [JsonPropertyName("downsample_padding")] public int DownsamplePadding { get; init; } = 1;

    /// <summary>"conv" or "resnet" (used by AttnDownBlock2D).</summary>
    [JsonPropertyName("downsample_type")] public string DownsampleType { get; init; } = "conv";

    /// <summary>"conv" or "resnet" (used by AttnUpBlock2D).</summary>
    [JsonPropertyName("upsample_type")] public string UpsampleType { get; init; } = "conv";

    [JsonPropertyName("dropout")] public double Dropout { get; init; }
    [JsonPropertyName("act_fn")] public string ActFn { get; init; } = "silu";

    /// <summary>Channels per attention head; null means one head per block (head dim = the block's channels).</summary>
    [JsonPropertyName("attention_head_dim")] public int? AttentionHeadDim { get; init; } = 8;

    [JsonPropertyName("norm_num_groups")] public int? NormNumGroups { get; init; } = 32;
    [JsonPropertyName("attn_norm_num_groups")] public int? AttnNormNumGroups { get; init; }
    [JsonPropertyName("norm_eps")] public double NormEps { get; init; } = 1e-5;

    /// <summary>"default" (add the time embedding) or "scale_shift" (scale and shift after the second norm).</summary>
    [JsonPropertyName("resnet_time_scale_shift")] public string ResnetTimeScaleShift { get; init; } = "default";

    [JsonPropertyName("add_attention")] public bool AddAttention { get; init; } = true;

    /// <summary>null (an embedding table when <see cref="NumClassEmbeds"/> is set), "timestep" or "identity".</summary>
    [JsonPropertyName("class_embed_type")] public string? ClassEmbedType { get; init; }

    [JsonPropertyName("num_class_embeds")] public int? NumClassEmbeds { get; init; }
    [JsonPropertyName("num_train_timesteps")] public int? NumTrainTimesteps { get; init; }
}
