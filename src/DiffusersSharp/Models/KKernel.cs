using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>The 2-D kernel of <see cref="KDownsample2D"/> / <see cref="KUpsample2D"/>, one copy per channel.</summary>
internal static class KKernel
{
    /// <summary>
    /// (C, 1, 4, 4): (gain · k)ᵀ(gain · k) in float32 as diffusers builds it, cast to <paramref name="like"/>'s dtype and
    /// device, for a depthwise convolution over <paramref name="like"/>'s C channels.
    /// </summary>
    public static Tensor Depthwise(double[] kernel1D, double gain, Tensor like)
    {
        using var scope = torch.NewDisposeScope();
        var k = torch.tensor(kernel1D.Select(v => (float)v).ToArray()).unsqueeze(0) * (float)gain;
        var k2 = k.t().matmul(k).to(like.dtype, like.device);
        return scope.MoveToOuter(k2.reshape(1, 1, 4, 4).expand(like.shape[1], 1, 4, 4).contiguous());
    }
}
