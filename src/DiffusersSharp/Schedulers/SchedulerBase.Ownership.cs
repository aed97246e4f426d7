using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>The tensors a scheduler owns (the sigma table here), and its disposal (docs/ARCHITECTURE.md, "Tensor ownership").</summary>
public abstract partial class SchedulerBase
{
    // every tensor the scheduler holds (by reference: Release takes one out, Dispose frees what is left)
    private readonly HashSet<Tensor> _owned = new(ReferenceEqualityComparer.Instance);
    private bool _disposed;
    private Tensor? _sigmas;

    /// <summary>The sigma schedule of the sigma-based schedulers and the VP solvers (null for the others, and before their
    /// first <c>SetTimesteps</c>); last entry per diffusers' convention.</summary>
    public Tensor? Sigmas
    {
        get
        {
            ThrowIfDisposed();
            return _sigmas;
        }
    }

    /// <summary>Installs the sigma table <see cref="Sigmas"/> (float32, on <paramref name="device"/>; null: the CPU), freeing the one it replaces.</summary>
    protected void SetSigmas(float[] sigmas, Device? device = null)
    {
        var old = _sigmas;
        _sigmas = Own(torch.tensor(sigmas, ScalarType.Float32, device));
        Release(old);
    }

    /// <summary>Installs a float64 sigma table (the consistency-model scheduler's before its first <c>SetTimesteps</c>, as diffusers keeps it).</summary>
    protected void SetSigmas(double[] sigmas, Device? device = null)
    {
        var old = _sigmas;
        _sigmas = Own(torch.tensor(sigmas, ScalarType.Float64, device));
        Release(old);
    }

    /// <summary>
    /// Takes <paramref name="t"/> as the scheduler's own (out of the caller's dispose scope): it is freed by
    /// <see cref="Release"/> when the class replaces it, else by <see cref="Dispose"/>.
    /// </summary>
    protected Tensor Own(Tensor t)
    {
        ArgumentNullException.ThrowIfNull(t);
        _owned.Add(t.DetachFromDisposeScope());
        return t;
    }

    /// <summary>Stores a tensor as scheduler state: an alias of it that the scheduler owns (<see cref="Own"/>).</summary>
    protected Tensor Keep(Tensor t) => Own(t.alias());

    /// <summary>Frees a tensor the scheduler owns (<see cref="Own"/>, <see cref="Keep"/>) and no longer needs; null: nothing.</summary>
    protected void Release(Tensor? t)
    {
        if (t is null) return;
        _owned.Remove(t);
        t.Dispose();
    }

    /// <summary>
    /// Frees every tensor the scheduler holds (its tables, timesteps, sigmas and step state). From then on its operations
    /// and tensor properties throw <see cref="ObjectDisposedException"/>; its config (<see cref="ClassName"/>,
    /// <see cref="Config"/>, <see cref="StepArguments"/>, <see cref="SavePretrained"/>) stays readable, so a replaced
    /// scheduler's config can still build another (<c>X.FromConfig(old.Config)</c>). A second call does nothing.
    /// </summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var t in _owned) t.Dispose();
        _owned.Clear();
        GC.SuppressFinalize(this);
    }

    /// <summary>Throws <see cref="ObjectDisposedException"/> naming the class once the scheduler is disposed.</summary>
    protected void ThrowIfDisposed()
    {
        if (_disposed)
            throw new ObjectDisposedException(ClassName,
                $"{ClassName} is disposed: its tensors are freed (a pipeline disposes the scheduler it holds when it is disposed); " +
                $"build another, e.g. {ClassName}.FromConfig(scheduler.Config)");
    }

    private Tensor Checked(Tensor t)
    {
        ThrowIfDisposed();
        return t;
    }
}
