using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>AdaLayerNormZero</c> (models/normalization.py, v0.25.1), adaLN-Zero: the timestep-and-label
/// conditioning (<c>emb</c>, a <see cref="CombinedTimestepLabelEmbeddings"/>) → SiLU → <c>linear</c> (dim → 6·dim), split
/// into shift/scale/gate for the attention and for the MLP; the input is layer-normed (no weights, eps 1e-6) and
/// modulated by the attention's shift and scale. Weight names: <c>emb.*</c>, <c>linear</c>.
/// </summary>
public sealed class AdaLayerNormZero : nn.Module
{
    private readonly CombinedTimestepLabelEmbeddings emb;
    private readonly Linear linear;

    /// <summary>Builds the block from diffusers' constructor arguments (same names, in .NET casing).</summary>
    public AdaLayerNormZero(int embeddingDim, int numEmbeddings) : base(nameof(AdaLayerNormZero))
    {
        EmbeddingDim = embeddingDim;
        emb = new CombinedTimestepLabelEmbeddings(numEmbeddings, embeddingDim);
        linear = Layers.Linear(embeddingDim, 6 * embeddingDim);
        RegisterComponents();
    }

    /// <summary>diffusers' <c>embedding_dim</c>.</summary>
    public int EmbeddingDim { get; }

    /// <summary>The conditioning embedding (diffusers' <c>norm1.emb</c>, which the DiT output layer reuses).</summary>
    public CombinedTimestepLabelEmbeddings Emb => emb;

    /// <summary>
    /// <paramref name="x"/> (B, L, dim) → the modulated norm of x and, each [B, dim], gate_msa, shift_mlp, scale_mlp,
    /// gate_mlp; the caller owns all five.
    /// </summary>
    public (Tensor Normed, Tensor GateMsa, Tensor ShiftMlp, Tensor ScaleMlp, Tensor GateMlp) Forward(Tensor x, Tensor timestep,
        Tensor classLabels)
    {
        using var scope = NewDisposeScope();
        var e = linear.forward(nn.functional.silu(emb.Forward(timestep, classLabels, x.dtype)));
        var c = e.chunk(6, dim: 1);
        var normed = nn.functional.layer_norm(x, [EmbeddingDim], eps: 1e-6) * (1 + c[1].unsqueeze(1)) + c[0].unsqueeze(1);
        return (normed.MoveToOuterDisposeScope(), c[2].MoveToOuterDisposeScope(), c[3].MoveToOuterDisposeScope(),
            c[4].MoveToOuterDisposeScope(), c[5].MoveToOuterDisposeScope());
    }
}
