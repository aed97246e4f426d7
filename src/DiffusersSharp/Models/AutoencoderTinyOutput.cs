using DiffusersSharp.Runtime;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>The output of <see cref="AutoencoderTiny.Encode"/>: the encoder's <c>Latents</c> (no distribution; dispose it).</summary>
public sealed record AutoencoderTinyOutput(Tensor Latents) : IVaeEncoding
{
    /// <summary>The latents themselves (a new handle on them); nothing is drawn.</summary>
    public Tensor RetrieveLatents(IReadOnlyList<Generator>? generators, Action<string, Tensor>? trace = null) => TorchUtils.Scoped(() => Latents.alias());

    /// <summary>The latents themselves (a new handle on them), as <see cref="RetrieveLatents"/>.</summary>
    public Tensor ModeLatents(Action<string, Tensor>? trace = null) => TorchUtils.Scoped(() => Latents.alias());

    /// <summary>Disposes the latents.</summary>
    public void Dispose() => Latents.Dispose();
}
