using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>KUpsample2D</c> (models/upsampling.py, v0.25.1): reflect padding of 1, then each channel on its own
/// through the transposed 4×4 kernel k·kᵀ (k = [1, 3, 3, 1] / 4) at stride 2 with padding 3: twice the size. No weights.
/// </summary>
public sealed class KUpsample2D : nn.Module<Tensor, Tensor>
{
    private static readonly double[] Kernel1D = [1 / 8.0, 3 / 8.0, 3 / 8.0, 1 / 8.0];

    /// <summary>diffusers' <c>pad_mode</c> (only "reflect" is used by the K blocks).</summary>
    public string PadMode { get; }

    /// <summary>Builds the layer (diffusers' <c>pad_mode</c>: "reflect").</summary>
    public KUpsample2D(string padMode = "reflect") : base(nameof(KUpsample2D))
    {
        if (padMode != "reflect")
            throw new ArgumentException($"KUpsample2D: pad_mode '{padMode}' is not supported by DiffusersSharp (supported: reflect)");
        PadMode = padMode;
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor inputs)
    {
        using var scope = torch.NewDisposeScope();
        var padded = nn.functional.pad(inputs, [1, 1, 1, 1], PaddingModes.Reflect);
        var weight = KKernel.Depthwise(Kernel1D, 2.0, inputs);
        return scope.MoveToOuter(nn.functional.conv_transpose2d(padded, weight, strides: [2, 2], padding: [3, 3], groups: inputs.shape[1]));
    }
}
