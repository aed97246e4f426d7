using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>GaussianFourierProjection</c> (models/embeddings.py, v0.25.1): Gaussian Fourier features of
/// noise levels, [sin(2π·x·w), cos(2π·x·w)] (x = ln t when <c>log</c>). One frozen parameter,
/// <c>weight</c>. With <c>set_W_to_weight</c> (the default) diffusers registers that same parameter a second
/// time as <c>W</c>, so its state dicts carry both keys: <see cref="WAlias"/> tells loaders and savers so.
/// </summary>
public sealed class GaussianFourierProjection : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;

    /// <summary>
    /// diffusers' <c>log</c>: the input is ln(t) (as UNet2DModel's "fourier" time embedding passes).
    /// </summary>
    public bool Log { get; }
    /// <summary>diffusers' <c>flip_sin_to_cos</c>: cos features before sin.</summary>
    public bool FlipSinToCos { get; }

    /// <summary>True when diffusers' state dict also holds this weight under the name <c>W</c>.</summary>
    public bool WAlias { get; }

    /// <summary>The frequencies (before the 2π factor).</summary>
    public Parameter Weight => weight;

    /// <summary>
    /// Builds the block from diffusers' constructor arguments (same names and defaults, in .NET casing).
    /// </summary>
    public GaussianFourierProjection(int embeddingSize = 256, double scale = 1.0, bool setWToWeight = true,
        bool log = true, bool flipSinToCos = false)
        : base(nameof(GaussianFourierProjection))
    {
        Log = log;
        FlipSinToCos = flipSinToCos;
        WAlias = setWToWeight;
        // diffusers draws one randn for `weight`, then (set_W_to_weight) another for `W` and keeps that one; none when a
        // checkpoint's load overwrites it (Layers.LeaveUninitialized)
        if (Layers.LeaveUninitialized)
            weight = new Parameter(torch.empty(embeddingSize), requires_grad: false);
        else
        {
            using var first = torch.randn(embeddingSize);
            weight = new Parameter(setWToWeight ? torch.randn(embeddingSize) * scale : first * scale, requires_grad: false);
        }
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x) => Forward(x);

    /// <summary>
    /// The sin/cos Fourier features of <paramref name="x"/> [B] → [B, 2 · embedding_size]; the caller owns the
    /// result.
    /// </summary>
    public Tensor Forward(Tensor x)
    {
        if (Log) x = torch.log(x);
        var xProj = x.unsqueeze(1) * weight.unsqueeze(0) * 2 * Math.PI;
        return FlipSinToCos
            ? torch.cat(new[] { torch.cos(xProj), torch.sin(xProj) }, dim: -1)
            : torch.cat(new[] { torch.sin(xProj), torch.cos(xProj) }, dim: -1);
    }
}
