using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>AdaGroupNorm</c> (models/normalization.py, v0.25.1): a GroupNorm without weights of its own whose scale
/// and shift come from the time embedding: <c>x = group_norm(x) * (1 + scale) + shift</c> with
/// <c>scale, shift = linear(act(emb)).chunk(2)</c>. One weight layer, <c>linear</c> (embedding_dim → 2 · out_dim).
/// </summary>
public sealed class AdaGroupNorm : nn.Module
{
    private readonly Linear linear;
    private readonly Func<Tensor, Tensor>? _act;

    /// <summary>diffusers' <c>num_groups</c>.</summary>
    public int NumGroups { get; }
    /// <summary>diffusers' <c>eps</c>.</summary>
    public double Eps { get; }

    /// <summary>Builds the norm from diffusers' constructor arguments (same names and defaults, in .NET casing).</summary>
    public AdaGroupNorm(int embeddingDim, int outDim, int numGroups, string? actFn = null, double eps = 1e-5)
        : base(nameof(AdaGroupNorm))
    {
        if (numGroups <= 0 || outDim % numGroups != 0)
            throw new ArgumentException($"AdaGroupNorm: {outDim} channels cannot be split into {numGroups} groups");
        NumGroups = numGroups;
        Eps = eps;
        _act = actFn is null ? null : Activations.Get(actFn);
        linear = Layers.Linear(embeddingDim, outDim * 2);
        RegisterComponents();
    }

    /// <summary>The normed <paramref name="x"/> (B, C, H, W), scaled and shifted by <paramref name="emb"/> (B, embedding_dim).</summary>
    public Tensor Forward(Tensor x, Tensor emb)
    {
        using var scope = torch.NewDisposeScope();
        var e = _act is null ? emb : _act(emb);
        e = linear.forward(e).unsqueeze(-1).unsqueeze(-1);
        var chunks = e.chunk(2, dim: 1);
        var normed = nn.functional.group_norm(x, NumGroups, eps: Eps);
        return scope.MoveToOuter(normed * (chunks[0] + 1) + chunks[1]);
    }
}
