using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>KDownsample2D</c> (models/downsampling.py, v0.25.1): reflect padding of 1, then each channel on its own
/// through the 4×4 kernel k·kᵀ (k = [1, 3, 3, 1] / 8) at stride 2. No weights (the kernel is a non-persistent buffer in
/// diffusers): a depthwise convolution here, which diffusers writes as a full one with the kernel on the diagonal.
/// </summary>
public sealed class KDownsample2D : nn.Module<Tensor, Tensor>
{
    private static readonly double[] Kernel1D = [1 / 8.0, 3 / 8.0, 3 / 8.0, 1 / 8.0];

    /// <summary>diffusers' <c>pad_mode</c> (only "reflect" is used by the K blocks).</summary>
    public string PadMode { get; }

    /// <summary>Builds the layer (diffusers' <c>pad_mode</c>: "reflect").</summary>
    public KDownsample2D(string padMode = "reflect") : base(nameof(KDownsample2D))
    {
        if (padMode != "reflect")
            throw new ArgumentException($"KDownsample2D: pad_mode '{padMode}' is not supported by DiffusersSharp (supported: reflect)");
        PadMode = padMode;
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor inputs)
    {
        using var scope = torch.NewDisposeScope();
        var padded = nn.functional.pad(inputs, [1, 1, 1, 1], PaddingModes.Reflect);
        var weight = KKernel.Depthwise(Kernel1D, 1.0, inputs);
        return scope.MoveToOuter(nn.functional.conv2d(padded, weight, strides: [2, 2], groups: inputs.shape[1]));
    }
}
