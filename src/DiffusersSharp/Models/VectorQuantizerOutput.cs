using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// What <see cref="VectorQuantizer.Forward"/> returns (diffusers' <c>(z_q, loss, (perplexity, min_encodings,
/// min_encoding_indices))</c>, less the two Nones): <c>Quantized</c> (B, C, H, W), the scalar <c>Loss</c> and the codebook
/// <c>Indices</c> (B·H·W, int64, in (batch, row, column) order).
/// </summary>
public sealed record VectorQuantizerOutput(Tensor Quantized, Tensor Loss, Tensor Indices);
