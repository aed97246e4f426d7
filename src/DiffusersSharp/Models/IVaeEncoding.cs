using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// What <see cref="IVae.Encode"/> returns: a latent posterior (<see cref="AutoencoderKLOutput"/>) or the latents
/// themselves (<see cref="AutoencoderTinyOutput"/>). Disposing it frees what it holds.
/// </summary>
public interface IVaeEncoding : IDisposable
{
    /// <summary>
    /// diffusers' <c>retrieve_latents(encoder_output, generator)</c>: a posterior sample drawn with
    /// <paramref name="generators"/> (none, one, or one per batch item) when there is a distribution, else the
    /// latents (nothing drawn). <paramref name="trace"/> sees what the encoding holds besides (the posterior's
    /// <c>mean</c> and <c>std</c>). The result is the caller's (not scaled by <c>scaling_factor</c>).
    /// </summary>
    Tensor RetrieveLatents(IReadOnlyList<Generator>? generators, Action<string, Tensor>? trace = null);

    /// <summary>
    /// diffusers' <c>retrieve_latents(encoder_output, sample_mode="argmax")</c>: the posterior's mode (its mean) when
    /// there is a distribution, else the latents; nothing is drawn. <paramref name="trace"/> as in
    /// <see cref="RetrieveLatents"/>. The result is the caller's (not scaled by <c>scaling_factor</c>).
    /// </summary>
    Tensor ModeLatents(Action<string, Tensor>? trace = null);
}
