using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// A UNet up block without cross-attention: consumes the last <see cref="NumResnets"/> skip states (the
/// last one first, as diffusers pops them) and optionally upsamples to <c>upsampleSize</c>.
/// </summary>
public interface IUpBlock2D
{
    int NumResnets { get; }

    Tensor Forward(Tensor hiddenStates, IReadOnlyList<Tensor> resHiddenStates, Tensor? temb, long[]? upsampleSize = null);
}
