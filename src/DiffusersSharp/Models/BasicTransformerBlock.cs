using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>BasicTransformerBlock</c> (models/attention.py, v0.25.1) with <c>norm_type = "layer_norm"</c>:
/// norm1 → attn1 (self-attention; over <c>encoder_hidden_states</c> when <c>only_cross_attention</c>) + residual,
/// norm2 → attn2 (cross-attention; self-attention when <c>double_self_attention</c>) + residual, norm3 →
/// <see cref="FeedForward"/> + residual. Weight names: <c>norm1</c>, <c>attn1</c>, <c>norm2</c>, <c>attn2</c>,
/// <c>norm3</c>, <c>ff.net.0.proj</c>, <c>ff.net.2</c>. The ada-norm variants, positional embeddings and the
/// gated (GLIGEN) fuser are not ported and are refused.
/// </summary>
public sealed class BasicTransformerBlock : nn.Module
{
    private readonly LayerNorm norm1;
    private readonly Attention attn1;
    private readonly LayerNorm? norm2;
    private readonly Attention? attn2;
    private readonly LayerNorm norm3;
    private readonly FeedForward ff;

    /// <summary>diffusers' <c>dim</c>: channels of the token states.</summary>
    public int Dim { get; }
    /// <summary>
    /// diffusers' <c>only_cross_attention</c>: the first attention attends to the encoder states instead of to
    /// itself.
    /// </summary>
    public bool OnlyCrossAttention { get; }

    /// <summary>Test hook: ("attn1" | "attn2" | "ff", output of that submodule before its residual add).</summary>
    internal Action<string, Tensor>? DebugHook { get; set; }

    /// <summary>
    /// Builds the block from diffusers' constructor arguments (same names and defaults, in .NET casing).
    /// </summary>
    public BasicTransformerBlock(int dim, int numAttentionHeads, int attentionHeadDim, double dropout = 0.0,
        int? crossAttentionDim = null, string activationFn = "geglu", int? numEmbedsAdaNorm = null,
        bool attentionBias = false, bool onlyCrossAttention = false, bool doubleSelfAttention = false,
        bool upcastAttention = false, bool normElementwiseAffine = true, string normType = "layer_norm",
        double normEps = 1e-5, bool finalDropout = false, string attentionType = "default",
        int? ffInnerDim = null, bool ffBias = true, bool attentionOutBias = true)
        : base(nameof(BasicTransformerBlock))
    {
        if (normType != "layer_norm")
            throw new ArgumentException($"BasicTransformerBlock: norm_type '{normType}' is not supported by DiffusersSharp (supported: layer_norm)");
        if (numEmbedsAdaNorm is not null)
            throw new ArgumentException("BasicTransformerBlock: num_embeds_ada_norm (ada_norm) is not supported by DiffusersSharp");
        if (attentionType != "default")
            throw new ArgumentException($"BasicTransformerBlock: attention_type '{attentionType}' is not supported by DiffusersSharp (supported: default)");
        Dim = dim;
        OnlyCrossAttention = onlyCrossAttention;

        norm1 = nn.LayerNorm(dim, normEps, elementwise_affine: normElementwiseAffine, dtype: Layers.BuildDType);
        attn1 = new Attention(dim, heads: numAttentionHeads, dimHead: attentionHeadDim, dropout: dropout,
            bias: attentionBias, crossAttentionDim: onlyCrossAttention ? crossAttentionDim : null,
            upcastAttention: upcastAttention, outBias: attentionOutBias);
        if (crossAttentionDim is not null || doubleSelfAttention)
        {
            norm2 = nn.LayerNorm(dim, normEps, elementwise_affine: normElementwiseAffine, dtype: Layers.BuildDType);
            attn2 = new Attention(dim, crossAttentionDim: doubleSelfAttention ? null : crossAttentionDim,
                heads: numAttentionHeads, dimHead: attentionHeadDim, dropout: dropout, bias: attentionBias,
                upcastAttention: upcastAttention, outBias: attentionOutBias);
        }
        norm3 = nn.LayerNorm(dim, normEps, elementwise_affine: normElementwiseAffine, dtype: Layers.BuildDType);
        ff = new FeedForward(dim, dropout: dropout, activationFn: activationFn, finalDropout: finalDropout,
            innerDim: ffInnerDim, bias: ffBias);
        RegisterComponents();
    }

    /// <param name="hiddenStates">(B, L, dim).</param>
    /// <param name="attentionMask">Mask of the self-attention (additive bias (B, 1, L) or as Attention takes it).</param>
    /// <param name="encoderHiddenStates">(B, S, cross_attention_dim) for the cross-attention; null: attn2 attends to itself.</param>
    /// <param name="encoderAttentionMask">Mask of the cross-attention.</param>
    public Tensor Forward(Tensor hiddenStates, Tensor? attentionMask = null, Tensor? encoderHiddenStates = null,
        Tensor? encoderAttentionMask = null)
    {
        bool inPlace = Activations.InPlaceOk;
        var h = new Chain(hiddenStates);
        Tensor Residual(string name, Tensor output, Tensor x)
        {
            DebugHook?.Invoke(name, output);
            return inPlace ? output.add_(x) : output + x;
        }

        // 1. self-attention
        h.Then(x => Residual("attn1", attn1.Forward(norm1.forward(x), OnlyCrossAttention ? encoderHiddenStates : null, attentionMask), x));
        if (h.Value.dim() == 4) h.Then(x => x.squeeze(1));

        // 2. cross-attention
        if (attn2 is not null)
            h.Then(x => Residual("attn2", attn2.Forward(norm2!.forward(x), encoderHiddenStates, encoderAttentionMask), x));

        // 3. feed-forward
        h.Then(x => Residual("ff", ff.Forward(norm3.forward(x)), x));
        if (h.Value.dim() == 4) h.Then(x => x.squeeze(1));
        return h.Value;
    }
}
