using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>The output of <see cref="UNet2DConditionModel"/>: <c>Sample</c>, (batch, out_channels, height, width).</summary>
public sealed record UNet2DConditionOutput(Tensor Sample);
