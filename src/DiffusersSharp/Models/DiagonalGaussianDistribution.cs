using DiffusersSharp.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>DiagonalGaussianDistribution</c> (models/autoencoders/vae.py, v0.25.1): the VAE posterior.
/// <c>parameters</c> (B, 2C, H, W) splits into mean and log-variance (clamped to [-30, 20]); std = exp(logvar / 2).
/// Owns its tensors: dispose it when done.
/// </summary>
public sealed class DiagonalGaussianDistribution : IDisposable
{
    /// <summary>The encoder's moments [B, 2·C, H, W]: mean and log-variance concatenated on channels.</summary>
    public Tensor Parameters { get; }
    /// <summary>The mean (first half of the channels).</summary>
    public Tensor Mean { get; }
    /// <summary>The log-variance, clamped to [-30, 20] as diffusers does.</summary>
    public Tensor LogVar { get; }
    /// <summary>exp(0.5 · logvar); zeros when <see cref="Deterministic"/>.</summary>
    public Tensor Std { get; }
    /// <summary>exp(logvar); zeros when <see cref="Deterministic"/>.</summary>
    public Tensor Var { get; }
    /// <summary>A deterministic distribution: sampling returns the mean.</summary>
    public bool Deterministic { get; }

    /// <summary>
    /// Splits <paramref name="parameters"/> into mean and log-variance (diffusers' constructor); takes ownership of
    /// it.
    /// </summary>
    public DiagonalGaussianDistribution(Tensor parameters, bool deterministic = false)
    {
        // The distribution owns its tensors (disposed by Dispose), whatever dispose scope it is built in.
        using var scope = torch.NewDisposeScope();
        Parameters = parameters.DetachFromDisposeScope();
        var chunks = parameters.chunk(2, dim: 1);
        Mean = chunks[0].DetachFromDisposeScope();
        LogVar = torch.clamp(chunks[1], -30.0, 20.0).DetachFromDisposeScope();
        Deterministic = deterministic;
        if (deterministic)
        {
            Std = torch.zeros_like(Mean).DetachFromDisposeScope();
            Var = torch.zeros_like(Mean).DetachFromDisposeScope();
        }
        else
        {
            Std = torch.exp(0.5 * LogVar).DetachFromDisposeScope();
            Var = torch.exp(LogVar).DetachFromDisposeScope();
        }
    }

    /// <summary>
    /// <c>mean + std · ε</c> with ε = <c>randn_tensor(mean.shape, generator)</c> in the parameters' dtype (drawn on
    /// the CPU for a CPU generator, then moved to the parameters' device, as diffusers does).
    /// </summary>
    public Tensor Sample(Generator? generator = null) =>
        Sample(generator is null ? null : new[] { generator });

    /// <summary><see cref="Sample(Generator?)"/> with one generator per batch item (diffusers' list of generators).</summary>
    public Tensor Sample(IReadOnlyList<Generator>? generators)
    {
        using var scope = torch.NewDisposeScope();
        var noise = Runtime.TorchUtils.RandnTensor(Mean.shape, generators, Parameters.dtype, Parameters.device);
        return (Mean + Std * noise).MoveToOuterDisposeScope();
    }

    /// <summary>The mean (diffusers' <c>mode()</c>); a new handle the caller may dispose.</summary>
    public Tensor Mode() => TorchUtils.Scoped(() => Mean.alias());

    /// <summary>KL divergence to the standard normal (or to <paramref name="other"/>), summed over dims 1..3.</summary>
    public Tensor Kl(DiagonalGaussianDistribution? other = null)
    {
        if (Deterministic) return torch.tensor(new[] { 0.0f });
        using var scope = torch.NewDisposeScope();
        var dims = new long[] { 1, 2, 3 };
        var kl = other is null
            ? 0.5 * torch.sum(Mean.pow(2) + Var - 1.0 - LogVar, dims)
            : 0.5 * torch.sum((Mean - other.Mean).pow(2) / other.Var + Var / other.Var - 1.0 - LogVar + other.LogVar, dims);
        return kl.MoveToOuterDisposeScope();
    }

    /// <summary>Negative log-likelihood of <paramref name="sample"/>, summed over <paramref name="dims"/> (default 1..3).</summary>
    public Tensor Nll(Tensor sample, long[]? dims = null)
    {
        if (Deterministic) return torch.tensor(new[] { 0.0f });
        using var scope = torch.NewDisposeScope();
        double logTwoPi = Math.Log(2.0 * Math.PI);
        var nll = 0.5 * torch.sum(logTwoPi + LogVar + (sample - Mean).pow(2) / Var, dims ?? new long[] { 1, 2, 3 });
        return nll.MoveToOuterDisposeScope();
    }

    /// <summary>Disposes the tensors of the distribution.</summary>
    public void Dispose()
    {
        Mean.Dispose();
        LogVar.Dispose();
        Std.Dispose();
        Var.Dispose();
        Parameters.Dispose();
    }
}
