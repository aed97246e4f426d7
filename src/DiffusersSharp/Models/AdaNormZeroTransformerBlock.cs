using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>BasicTransformerBlock</c> (models/attention.py, v0.25.1) with <c>norm_type = "ada_norm_zero"</c> and no
/// cross-attention, the block of DiT: <c>norm1</c> (<see cref="AdaLayerNormZero"/>: the modulated norm and the gates from
/// the timestep and class label) → <c>attn1</c> (self-attention), scaled by gate_msa, + residual; <c>norm3</c> (layer
/// norm, weights as <c>norm_elementwise_affine</c>) modulated by the MLP's shift and scale → <c>ff</c>, scaled by
/// gate_mlp, + residual. Weight names: <c>norm1.emb.*</c>, <c>norm1.linear</c>, <c>attn1.*</c>, [<c>norm3</c>],
/// <c>ff.net.0.proj</c>, <c>ff.net.2</c>.
/// </summary>
public sealed class AdaNormZeroTransformerBlock : nn.Module
{
    private readonly AdaLayerNormZero norm1;
    private readonly Attention attn1;
    private readonly TorchSharp.Modules.LayerNorm norm3;
    private readonly FeedForward ff;

    /// <summary>diffusers' <c>dim</c>: channels of the token states.</summary>
    public int Dim { get; }

    /// <summary>Builds the block from diffusers' constructor arguments (same names and defaults, in .NET casing).</summary>
    public AdaNormZeroTransformerBlock(int dim, int numAttentionHeads, int attentionHeadDim, int numEmbedsAdaNorm,
        double dropout = 0.0, string activationFn = "geglu", bool attentionBias = false, bool upcastAttention = false,
        bool normElementwiseAffine = true, double normEps = 1e-5)
        : base(nameof(AdaNormZeroTransformerBlock))
    {
        Dim = dim;
        norm1 = new AdaLayerNormZero(dim, numEmbedsAdaNorm);
        attn1 = new Attention(dim, heads: numAttentionHeads, dimHead: attentionHeadDim, dropout: dropout,
            bias: attentionBias, upcastAttention: upcastAttention);
        norm3 = nn.LayerNorm(dim, normEps, elementwise_affine: normElementwiseAffine, dtype: Layers.BuildDType);
        ff = new FeedForward(dim, dropout: dropout, activationFn: activationFn);
        RegisterComponents();
    }

    /// <summary>The block's ada-norm (its <c>emb</c> conditions the model's output layer).</summary>
    public AdaLayerNormZero Norm1 => norm1;

    /// <summary>(B, L, dim) tokens, [B] timesteps and [B] class labels → (B, L, dim); the caller owns the result.</summary>
    public Tensor Forward(Tensor hiddenStates, Tensor timestep, Tensor classLabels)
    {
        using var scope = NewDisposeScope();
        var (normed, gateMsa, shiftMlp, scaleMlp, gateMlp) = norm1.Forward(hiddenStates, timestep, classLabels);
        var h = gateMsa.unsqueeze(1) * attn1.Forward(normed) + hiddenStates;
        var n = norm3.forward(h) * (1 + scaleMlp.unsqueeze(1)) + shiftMlp.unsqueeze(1);
        return (gateMlp.unsqueeze(1) * ff.Forward(n) + h).MoveToOuterDisposeScope();
    }
}
