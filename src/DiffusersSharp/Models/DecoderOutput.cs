using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>The output of <see cref="AutoencoderKL.Decode"/>: the decoded image batch <c>Sample</c> (B, C, H, W).</summary>
public sealed record DecoderOutput(Tensor Sample);
