using System.Runtime.ExceptionServices;
using TorchSharp;

namespace DiffusersSharp.Tests.Support;

/// <summary>
/// Audits that public entry points run their tensor work in a dispose scope (docs/ARCHITECTURE.md, "Tensor ownership").
/// Each call runs on a thread of its own, where no scope is open and TorchSharp's per-thread statistics start at zero
/// (the test thread holds a scope, <see cref="HoldTestTensorsAttribute"/>, which would hide every gap), and counts the
/// tensors made there outside any scope (<c>TensorStatistics.CreatedOutsideScopeCount</c>). A tensor that a scope
/// holds and that is handed out with <c>MoveToOuterDisposeScope</c> (or <c>DetachFromDisposeScope</c>) when no outer
/// scope exists is detached (<c>DetachedFromScopeCount</c>), not counted as made outside: so an entry point that opens
/// its scope before any tensor work counts 0, whatever it returns, and every tensor counted is one that the garbage
/// collector could have finalised while libtorch still read it.
/// </summary>
internal sealed class ScopeAudit
{
    private readonly List<string> _unscoped = [];

    /// <summary>
    /// Runs <paramref name="call"/> on a fresh thread with no scope open (in no-grad mode when <paramref name="noGrad"/>)
    /// and notes it when it made a tensor outside any scope; its result comes back to the caller.
    /// </summary>
    public T Call<T>(string what, Func<T> call, bool noGrad = true)
    {
        var (result, outside) = CountOutside(call, noGrad);
        if (outside != 0) _unscoped.Add($"{what}: {outside} tensor(s) made outside any dispose scope");
        return result;
    }

    /// <inheritdoc cref="Call{T}(string, Func{T}, bool)"/>
    public void Call(string what, Action call, bool noGrad = true) => Call(what, () => { call(); return 0; }, noGrad);

    /// <summary>Fails with every call that made a tensor outside a scope, one a line.</summary>
    public void AssertAllScoped() => Assert.True(_unscoped.Count == 0, "\n" + string.Join("\n", _unscoped));

    /// <summary>
    /// <paramref name="call"/>'s result and the number of tensors it made outside any dispose scope, on a new thread
    /// (its statistics start at 0; the test thread's are not touched).
    /// </summary>
    public static (T Result, long Outside) CountOutside<T>(Func<T> call, bool noGrad = true)
    {
        T result = default!;
        long outside = 0;
        ExceptionDispatchInfo? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                var stats = DisposeScopeManager.Statistics.TensorStatistics;
                long before = stats.CreatedOutsideScopeCount;
                using (noGrad ? torch.no_grad() : null)
                    result = call();
                outside = stats.CreatedOutsideScopeCount - before;
            }
            catch (Exception e)
            {
                error = ExceptionDispatchInfo.Capture(e);
            }
        }, 64 << 20);
        thread.Start();
        thread.Join();
        error?.Throw();
        return (result, outside);
    }
}
