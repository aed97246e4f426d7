using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>The output of <see cref="Transformer2DModel"/>: <c>Sample</c>, shaped like its input (B, C, H, W).</summary>
public sealed record Transformer2DModelOutput(Tensor Sample);
