namespace DiffusersSharp.Models;

/// <summary>The output of <see cref="AutoencoderKL.Encode"/>: the posterior <c>LatentDist</c> (dispose it).</summary>
public sealed record AutoencoderKLOutput(DiagonalGaussianDistribution LatentDist);
