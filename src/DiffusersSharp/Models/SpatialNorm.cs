using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>SpatialNorm</c> (models/attention_processor.py, v0.25.1): GroupNorm(32, eps 1e-6) of
/// <c>f</c>, scaled and shifted by 1×1 convolutions of <c>zq</c> resized (nearest) to f's size.
/// </summary>
public sealed class SpatialNorm : nn.Module
{
    private readonly GroupNorm norm_layer;
    private readonly Conv2d conv_y;
    private readonly Conv2d conv_b;

    /// <summary>
    /// A GroupNorm on <paramref name="fChannels"/> modulated by 1×1 convolutions of the quantised latents (<paramref
    /// name="zqChannels"/>).
    /// </summary>
    public SpatialNorm(int fChannels, int zqChannels) : base(nameof(SpatialNorm))
    {
        norm_layer = Layers.GroupNorm(32, fChannels, 1e-6);
        conv_y = Layers.Conv2d(zqChannels, fChannels, kernel_size: 1, stride: 1, padding: 0L);
        conv_b = Layers.Conv2d(zqChannels, fChannels, kernel_size: 1, stride: 1, padding: 0L);
        RegisterComponents();
    }

    /// <summary>
    /// <c>norm(f) · conv_y(zq) + conv_b(zq)</c>, zq resized to f's size; the caller owns the result.
    /// </summary>
    public Tensor Forward(Tensor f, Tensor zq)
    {
        using var scope = torch.NewDisposeScope();   // holds the temporaries while libtorch reads them
        var size = new[] { f.shape[^2], f.shape[^1] };
        zq = nn.functional.interpolate(zq, size: size, mode: InterpolationMode.Nearest);
        var normF = norm_layer.forward(f);
        return scope.MoveToOuter(normF * conv_y.forward(zq) + conv_b.forward(zq));
    }
}
