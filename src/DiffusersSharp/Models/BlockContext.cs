using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// What only some UNet blocks read, passed unchanged to every block of one forward pass (a UNet loop never asks
/// which block it holds): the cross-attention context and masks, per-call attention options, and the T2I-Adapter
/// residual of the block being called. Masks are additive biases (B, 1, S) here; the UNet converts diffusers'
/// 1 = keep / 0 = discard masks once.
/// </summary>
public sealed record BlockContext
{
    /// <summary>A context with nothing in it (blocks without cross-attention need nothing).</summary>
    public static readonly BlockContext Empty = new();

    /// <summary>diffusers' <c>encoder_hidden_states</c> (B, S, cross_attention_dim): keys and values of the cross-attention.</summary>
    public Tensor? EncoderHiddenStates { get; init; }

    /// <summary>diffusers' <c>attention_mask</c> of the self-attention.</summary>
    public Tensor? AttentionMask { get; init; }

    /// <summary>diffusers' <c>encoder_attention_mask</c> of the cross-attention.</summary>
    public Tensor? EncoderAttentionMask { get; init; }

    /// <summary>diffusers' <c>cross_attention_kwargs</c>: options read by the attention and linear layers.</summary>
    public CrossAttentionOptions CrossAttention { get; init; } = CrossAttentionOptions.Default;

    /// <summary>
    /// diffusers' <c>down_intrablock_additional_residuals</c> entry of this block (T2I-Adapter): a block with
    /// cross-attention adds it after its last attention (before downsampling), any other down block to its output.
    /// </summary>
    public Tensor? AdditionalResidual { get; init; }
}
