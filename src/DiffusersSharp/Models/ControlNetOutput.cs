using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>ControlNetOutput</c>: the residuals a ControlNet hands the UNet, already scaled. The caller owns them
/// (dispose the output, or the tensors, when done).
/// </summary>
public sealed class ControlNetOutput(IReadOnlyList<Tensor> downBlockResSamples, Tensor midBlockResSample) : IDisposable
{
    /// <summary>One residual per UNet skip state: conv_in's output, then each down block's resnet/attention and downsampler outputs.</summary>
    public IReadOnlyList<Tensor> DownBlockResSamples { get; } = downBlockResSamples;

    /// <summary>The residual added to the UNet's mid-block output.</summary>
    public Tensor MidBlockResSample { get; } = midBlockResSample;

    /// <summary>Frees the residuals.</summary>
    public void Dispose()
    {
        foreach (var t in DownBlockResSamples) t.Dispose();
        MidBlockResSample.Dispose();
    }
}
