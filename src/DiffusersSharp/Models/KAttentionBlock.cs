using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>KAttentionBlock</c> (models/unet_2d_blocks.py, v0.25.1), a transformer block without feed-forward: an
/// optional self-attention (<c>norm1</c>, an <see cref="AdaGroupNorm"/> of the time embedding, then <c>attn1</c>) and a
/// cross-attention (<c>norm2</c>, then <c>attn2</c> over the layer-normed encoder states), each added to its input;
/// the feature map is flattened to (B, H·W, C) for the attention and back.
/// </summary>
public sealed class KAttentionBlock : nn.Module
{
    private readonly AdaGroupNorm? norm1;
    private readonly Attention? attn1;
    private readonly AdaGroupNorm norm2;
    private readonly Attention attn2;

    /// <summary>diffusers' <c>add_self_attention</c>: the block starts with a self-attention.</summary>
    public bool AddSelfAttention { get; }

    /// <summary>Builds the block from diffusers' constructor arguments (same names and defaults, in .NET casing).</summary>
    public KAttentionBlock(int dim, int numAttentionHeads, int attentionHeadDim, double dropout = 0.0,
        int? crossAttentionDim = null, bool attentionBias = false, bool upcastAttention = false, int tembChannels = 768,
        bool addSelfAttention = false, string? crossAttentionNorm = null, int groupSize = 32)
        : base(nameof(KAttentionBlock))
    {
        AddSelfAttention = addSelfAttention;
        int groups = Math.Max(1, dim / groupSize);
        if (addSelfAttention)
        {
            norm1 = new AdaGroupNorm(tembChannels, dim, groups);
            attn1 = new Attention(dim, heads: numAttentionHeads, dimHead: attentionHeadDim, dropout: dropout, bias: attentionBias);
        }
        norm2 = new AdaGroupNorm(tembChannels, dim, groups);
        attn2 = new Attention(dim, crossAttentionDim: crossAttentionDim, heads: numAttentionHeads, dimHead: attentionHeadDim,
            dropout: dropout, bias: attentionBias, upcastAttention: upcastAttention, crossAttentionNorm: crossAttentionNorm);
        RegisterComponents();
    }

    /// <summary>
    /// The block on <paramref name="hiddenStates"/> (B, C, H, W) with the time embedding <paramref name="emb"/>; the
    /// cross-attention reads <paramref name="encoderHiddenStates"/> with <paramref name="encoderAttentionMask"/> (or, with
    /// no encoder states, attends to the feature map with <paramref name="attentionMask"/>, as diffusers does).
    /// </summary>
    public Tensor Forward(Tensor hiddenStates, Tensor? encoderHiddenStates, Tensor emb, Tensor? attentionMask = null,
        Tensor? encoderAttentionMask = null)
    {
        using var scope = torch.NewDisposeScope();
        var h = new Chain(hiddenStates);
        if (attn1 is not null)
            h.Then(x => x + Attend(attn1, norm1!.Forward(x, emb), null, attentionMask));
        h.Then(x => x + Attend(attn2, norm2.Forward(x, emb), encoderHiddenStates,
            encoderHiddenStates is null ? attentionMask : encoderAttentionMask));
        return scope.MoveToOuter(h.Value);
    }

    /// <summary>diffusers' <c>_to_3d</c>, the attention, <c>_to_4d</c>.</summary>
    private static Tensor Attend(Attention attention, Tensor normed, Tensor? encoderHiddenStates, Tensor? mask)
    {
        long b = normed.shape[0], height = normed.shape[2], width = normed.shape[3];
        var flat = normed.permute(0, 2, 3, 1).reshape(b, height * width, -1);
        var output = attention.Forward(flat, encoderHiddenStates, mask);
        return output.permute(0, 2, 1).reshape(b, -1, height, width);
    }
}
