using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>The output of <see cref="VQModel.Encode"/> (diffusers' <c>VQEncoderOutput</c>): <c>Latents</c> (B, vq_embed_dim, h, w), not quantized.</summary>
public sealed record VQEncoderOutput(Tensor Latents);
