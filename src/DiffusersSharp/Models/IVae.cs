using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// What a pipeline needs of its VAE, whichever kind it is (<see cref="AutoencoderKL"/>, <see cref="AutoencoderTiny"/>):
/// encode images to latents (diffusers' <c>retrieve_latents(vae.encode(x), generator)</c>), decode latents to
/// images, the <c>scaling_factor</c> the pipelines apply around them, and the shape facts the pipelines read from
/// the config (channels, <c>block_out_channels</c> for <c>vae_scale_factor</c>).
/// </summary>
public interface IVae : IDisposable
{
    /// <summary>diffusers' class name (<c>AutoencoderKL</c>, <c>AutoencoderTiny</c>).</summary>
    string ClassName { get; }

    /// <summary>Image channels the encoder takes (<c>in_channels</c>).</summary>
    int InChannels { get; }

    /// <summary>Channels of the latents (<c>latent_channels</c>).</summary>
    int LatentChannels { get; }

    /// <summary>The config's <c>block_out_channels</c>; the pipelines' <c>vae_scale_factor</c> is <c>2^(count - 1)</c>.</summary>
    IReadOnlyList<int> BlockOutChannels { get; }

    /// <summary>Latents are multiplied by it after encoding and divided by it before decoding (by the pipelines).</summary>
    double ScalingFactor { get; }

    /// <summary>The dtype of the weights.</summary>
    ScalarType DType { get; }

    /// <summary>The device of the weights.</summary>
    Device Device { get; }

    /// <summary>Encodes images in [-1, 1] (B, in_channels, H, W); dispose the result.</summary>
    IVaeEncoding Encode(Tensor images);

    /// <summary>Decodes latents (not rescaled) into images in [-1, 1] (dispose its <c>Sample</c>).</summary>
    DecoderOutput Decode(Tensor latents);

    /// <summary>Puts the model in evaluation mode (no dropout; what the pipelines run).</summary>
    void SetEvalMode();

    /// <summary>diffusers' <c>enable_tiling</c>: encode and decode in overlapping tiles blended at the seams (each kind's own rule).</summary>
    void EnableTiling(bool useTiling = true);

    /// <summary>diffusers' <c>disable_tiling</c>.</summary>
    void DisableTiling();

    /// <summary>diffusers' <c>enable_slicing</c>: encode and decode a batch item by item.</summary>
    void EnableSlicing();

    /// <summary>diffusers' <c>disable_slicing</c>.</summary>
    void DisableSlicing();
}
