using System.Text.Json.Serialization;
using DiffusersSharp.Loading;

namespace DiffusersSharp.Models;

/// <summary>
/// The <c>config.json</c> of a diffusers <c>AutoencoderKL</c>: every argument of diffusers 0.25.1's
/// <c>AutoencoderKL.__init__</c>, with its default.
/// </summary>
public sealed record AutoencoderKLConfig : DiffusersConfig
{
    [JsonPropertyName("in_channels")] public int InChannels { get; init; } = 3;
    [JsonPropertyName("out_channels")] public int OutChannels { get; init; } = 3;
    [JsonPropertyName("down_block_types")] public string[] DownBlockTypes { get; init; } = ["DownEncoderBlock2D"];
    [JsonPropertyName("up_block_types")] public string[] UpBlockTypes { get; init; } = ["UpDecoderBlock2D"];
    [JsonPropertyName("block_out_channels")] public int[] BlockOutChannels { get; init; } = [64];
    [JsonPropertyName("layers_per_block")] public int LayersPerBlock { get; init; } = 1;
    [JsonPropertyName("act_fn")] public string ActFn { get; init; } = "silu";
    [JsonPropertyName("latent_channels")] public int LatentChannels { get; init; } = 4;
    [JsonPropertyName("norm_num_groups")] public int NormNumGroups { get; init; } = 32;

    /// <summary>Image size the VAE was trained on (one int or [height, width]); sets the tile size of tiled encode/decode.</summary>
    [JsonPropertyName("sample_size"), JsonConverter(typeof(IntOrIntArrayJsonConverter))]
    public int[]? SampleSize { get; init; } = [32];

    /// <summary>Latents are multiplied by it after encoding and divided by it before decoding (by the pipelines).</summary>
    [JsonPropertyName("scaling_factor")] public double ScalingFactor { get; init; } = 0.18215;

    /// <summary>Pipelines run this VAE in float32 even when the rest is float16/bfloat16.</summary>
    [JsonPropertyName("force_upcast")] public bool ForceUpcast { get; init; } = true;
}
