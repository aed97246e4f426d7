using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// The image projection of an IP-Adapter (diffusers' <c>encoder_hid_proj</c> with <c>encoder_hid_dim_type</c>
/// "ip_image_proj"): image-encoder output in, <see cref="NumTokens"/> cross-attention states out. One contract for
/// <see cref="ImageProjection"/> (IP-Adapter), <see cref="MLPProjection"/> (full face) and <see cref="Resampler"/> (plus).
/// </summary>
public interface IImageProjection : IDisposable
{
    /// <summary>
    /// What the pipeline's <c>encode_image</c> feeds it: false for the image embeds (B, projection_dim), true for the
    /// encoder's penultimate hidden states (B, tokens, hidden) (diffusers: <c>not isinstance(encoder_hid_proj, ImageProjection)</c>).
    /// </summary>
    bool TakesHiddenStates { get; }

    /// <summary>The states it makes per image (diffusers' <c>num_image_text_embeds</c>, the processors' <c>num_tokens</c>).</summary>
    int NumTokens { get; }

    /// <summary>The projection; the caller owns the result.</summary>
    Tensor Forward(Tensor imageEmbeds);
}
