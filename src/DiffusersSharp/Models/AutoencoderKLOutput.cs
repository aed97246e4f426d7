using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>The output of <see cref="AutoencoderKL.Encode"/>: the posterior <c>LatentDist</c> (dispose it, or this).</summary>
public sealed record AutoencoderKLOutput(DiagonalGaussianDistribution LatentDist) : IVaeEncoding
{
    /// <summary>A posterior sample (<c>latent_dist.sample(generator)</c>); <paramref name="trace"/> sees <c>mean</c> and <c>std</c>.</summary>
    public Tensor RetrieveLatents(IReadOnlyList<Generator>? generators, Action<string, Tensor>? trace = null)
    {
        trace?.Invoke("mean", LatentDist.Mean);
        trace?.Invoke("std", LatentDist.Std);
        return LatentDist.Sample(generators);
    }

    /// <summary>The posterior's mode (<c>latent_dist.mode()</c>, its mean); <paramref name="trace"/> sees <c>mean</c> and <c>std</c>.</summary>
    public Tensor ModeLatents(Action<string, Tensor>? trace = null)
    {
        trace?.Invoke("mean", LatentDist.Mean);
        trace?.Invoke("std", LatentDist.Std);
        return LatentDist.Mode();
    }

    /// <summary>Disposes the latent distribution's tensors.</summary>
    public void Dispose() => LatentDist.Dispose();
}
