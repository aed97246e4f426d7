using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>GaussianFourierProjection</c> (models/embeddings.py, v0.25.1): Gaussian Fourier features of
/// noise levels, [sin(2π·x·w), cos(2π·x·w)] (x = ln t when <c>log</c>). With <c>set_W_to_weight</c> (the
/// default) the same frozen parameter is registered as both <c>weight</c> and <c>W</c>, as in diffusers.
/// </summary>
public sealed class GaussianFourierProjection : nn.Module
{
    private Parameter weight;
    private Parameter? W;

    public bool Log { get; }
    public bool FlipSinToCos { get; }

    public GaussianFourierProjection(int embeddingSize = 256, double scale = 1.0, bool setWToWeight = true,
        bool log = true, bool flipSinToCos = false)
        : base(nameof(GaussianFourierProjection))
    {
        Log = log;
        FlipSinToCos = flipSinToCos;
        weight = new Parameter(torch.randn(embeddingSize) * scale, requires_grad: false);
        if (setWToWeight)
        {
            W = new Parameter(torch.randn(embeddingSize) * scale, requires_grad: false);
            weight = W;
        }
        RegisterComponents();
    }

    public Tensor Forward(Tensor x)
    {
        if (Log) x = torch.log(x);
        var w = W ?? weight;
        var xProj = x.unsqueeze(1) * w.unsqueeze(0) * 2 * Math.PI;
        return FlipSinToCos
            ? torch.cat(new[] { torch.cos(xProj), torch.sin(xProj) }, dim: -1)
            : torch.cat(new[] { torch.sin(xProj), torch.cos(xProj) }, dim: -1);
    }
}
