using System.Text.Json.Serialization;
using DiffusersSharp.Loading;

namespace DiffusersSharp.Models;

/// <summary>
/// The <c>config.json</c> of a diffusers <c>AutoencoderTiny</c> (TAESD): every argument of diffusers 0.25.1's
/// <c>AutoencoderTiny.__init__</c>, with its default (the defaults are <c>madebyollin/taesd</c>'s architecture), plus
/// the <c>block_out_channels</c> the model registers (= <c>decoder_block_out_channels</c>; the pipelines read it for
/// <c>vae_scale_factor</c>).
/// </summary>
public sealed record AutoencoderTinyConfig : DiffusersConfig
{
    /// <summary><c>in_channels</c>: channels of the images the encoder takes.</summary>
    [JsonPropertyName("in_channels")] public int InChannels { get; init; } = 3;
    /// <summary><c>out_channels</c>: channels of the images the decoder returns.</summary>
    [JsonPropertyName("out_channels")] public int OutChannels { get; init; } = 3;
    /// <summary><c>encoder_block_out_channels</c>: channels of each encoder stage.</summary>
    [JsonPropertyName("encoder_block_out_channels")] public int[] EncoderBlockOutChannels { get; init; } = [64, 64, 64, 64];
    /// <summary><c>decoder_block_out_channels</c>: channels of each decoder stage.</summary>
    [JsonPropertyName("decoder_block_out_channels")] public int[] DecoderBlockOutChannels { get; init; } = [64, 64, 64, 64];
    /// <summary><c>act_fn</c>: the activation inside the blocks ("relu").</summary>
    [JsonPropertyName("act_fn")] public string ActFn { get; init; } = "relu";
    /// <summary><c>latent_channels</c>: channels of the latent space (4 for SD's latents).</summary>
    [JsonPropertyName("latent_channels")] public int LatentChannels { get; init; } = 4;
    /// <summary>
    /// <c>upsampling_scaling_factor</c>: the factor of each of the decoder's nearest-neighbour upsamplings.
    /// </summary>
    [JsonPropertyName("upsampling_scaling_factor")] public int UpsamplingScalingFactor { get; init; } = 2;
    /// <summary><c>num_encoder_blocks</c>: AutoencoderTinyBlocks in each encoder stage.</summary>
    [JsonPropertyName("num_encoder_blocks")] public int[] NumEncoderBlocks { get; init; } = [1, 3, 3, 3];
    /// <summary><c>num_decoder_blocks</c>: AutoencoderTinyBlocks in each decoder stage.</summary>
    [JsonPropertyName("num_decoder_blocks")] public int[] NumDecoderBlocks { get; init; } = [3, 3, 3, 1];

    /// <summary>Raw latents are mapped to [0, 1] as <c>x / (2 · latent_magnitude) + latent_shift</c> (<see cref="AutoencoderTiny.ScaleLatents"/>).</summary>
    [JsonPropertyName("latent_magnitude")] public double LatentMagnitude { get; init; } = 3;
    /// <summary>
    /// <c>latent_shift</c>: the offset of <see cref="LatentMagnitude"/>'s mapping of raw latents to [0, 1].
    /// </summary>
    [JsonPropertyName("latent_shift")] public double LatentShift { get; init; } = 0.5;

    /// <summary>TAESD runs in the dtype it is given (diffusers registers <c>force_upcast = False</c> whatever the file says).</summary>
    [JsonPropertyName("force_upcast")] public bool ForceUpcast { get; init; }

    /// <summary>Latents are multiplied by it after encoding and divided by it before decoding (by the pipelines); 1.0 for TAESD.</summary>
    [JsonPropertyName("scaling_factor")] public double ScalingFactor { get; init; } = 1.0;

    /// <summary>What diffusers registers as <c>block_out_channels</c>: the decoder's (null in a hand-made config: taken from <see cref="DecoderBlockOutChannels"/>).</summary>
    [JsonPropertyName("block_out_channels")] public int[]? BlockOutChannels { get; init; }
}
