using System.Text.Json.Serialization;
using DiffusersSharp.Loading;

namespace DiffusersSharp.Models;

/// <summary>
/// The <c>config.json</c> of a diffusers <c>AutoencoderKL</c>: every argument of diffusers 0.25.1's
/// <c>AutoencoderKL.__init__</c>, with its default.
/// </summary>
public sealed record AutoencoderKLConfig : DiffusersConfig
{
    /// <summary><c>in_channels</c>: channels of the images the encoder takes.</summary>
    [JsonPropertyName("in_channels")] public int InChannels { get; init; } = 3;
    /// <summary><c>out_channels</c>: channels of the images the decoder returns.</summary>
    [JsonPropertyName("out_channels")] public int OutChannels { get; init; } = 3;
    /// <summary><c>down_block_types</c>: the encoder's block types ("DownEncoderBlock2D").</summary>
    [JsonPropertyName("down_block_types")] public string[] DownBlockTypes { get; init; } = ["DownEncoderBlock2D"];
    /// <summary><c>up_block_types</c>: the decoder's block types ("UpDecoderBlock2D").</summary>
    [JsonPropertyName("up_block_types")] public string[] UpBlockTypes { get; init; } = ["UpDecoderBlock2D"];
    /// <summary>
    /// <c>block_out_channels</c>: output channels of each encoder block (reversed for the decoder); their count sets
    /// the 2^(n-1) downscale.
    /// </summary>
    [JsonPropertyName("block_out_channels")] public int[] BlockOutChannels { get; init; } = [64];
    /// <summary><c>layers_per_block</c>: resnets per encoder block (decoder blocks have one more).</summary>
    [JsonPropertyName("layers_per_block")] public int LayersPerBlock { get; init; } = 1;
    /// <summary><c>act_fn</c>: the activation of the resnets and before the output convolutions.</summary>
    [JsonPropertyName("act_fn")] public string ActFn { get; init; } = "silu";
    /// <summary><c>latent_channels</c>: channels of the latent space (4 in SD).</summary>
    [JsonPropertyName("latent_channels")] public int LatentChannels { get; init; } = 4;
    /// <summary><c>norm_num_groups</c>: groups of the GroupNorms.</summary>
    [JsonPropertyName("norm_num_groups")] public int NormNumGroups { get; init; } = 32;

    /// <summary>Image size the VAE was trained on (one int or [height, width]); sets the tile size of tiled encode/decode.</summary>
    [JsonPropertyName("sample_size"), JsonConverter(typeof(IntOrIntArrayJsonConverter))]
    public int[]? SampleSize { get; init; } = [32];

    /// <summary>Latents are multiplied by it after encoding and divided by it before decoding (by the pipelines).</summary>
    [JsonPropertyName("scaling_factor")] public double ScalingFactor { get; init; } = 0.18215;

    /// <summary>Pipelines run this VAE in float32 even when the rest is float16/bfloat16.</summary>
    [JsonPropertyName("force_upcast")] public bool ForceUpcast { get; init; } = true;
}
