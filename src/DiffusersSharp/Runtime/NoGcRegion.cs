using System.Runtime;

namespace DiffusersSharp.Runtime;

/// <summary>
/// Holds garbage collections off while a unit of torch work runs that other threads allocate beside (a training
/// step, whose background loader decodes the next batch meanwhile).
/// <para>
/// Why: TorchSharp 0.107 passes short-lived <c>Scalar</c>s (the <c>alpha = 1</c> of every <c>a + b</c>, the
/// factors inside AdamW, …) to libtorch as raw handles and does not keep the managed object alive for the
/// call; <c>Scalar</c> has a finalizer. When another thread (a background image loader, a progress bar's
/// render thread, the host application) allocates and triggers a collection while this thread is inside
/// such a native call, the finalizer thread can free the Scalar under libtorch's feet: it then reads freed
/// memory (seen here after ~3000 training steps: "Expected false to be true … toFloat", raised from
/// <c>at::add</c>). A collection triggered by this thread's own allocations happens between native calls and
/// is harmless, so the region only has to cover the time the work runs. <c>GenerationService</c> (what the server
/// and the <c>IImageGenerator</c> run, beside threads that allocate) runs each generation in regions renewed at
/// every step. The pipelines themselves do not: the CLI allocates on one thread (it redraws its progress bar on
/// that thread too), and a region per step costs resident memory (the runtime keeps the budget committed: +40 MB
/// over 1000 small steps).
/// </para>
/// <para>
/// On Linux the Scalar guard (<see cref="ScalarGuard"/>) closes the race for every thread; these regions are what
/// remains where it is off (other platforms, <c>DIFFUSERS_SHARP_NO_SCALAR_GUARD=1</c>).
/// </para>
/// <para>
/// Best effort: if other threads allocate more than the budget inside the region, the runtime collects
/// anyway and the region ends early; nested regions are no-ops; a budget the runtime refuses is halved until
/// it is accepted. Starting a region may run one blocking collection (cheap: the managed heap of this
/// library is a few MB). Opt out with <c>DIFFUSERS_SHARP_NO_GC_REGION=1</c>.
/// </para>
/// </summary>
public readonly struct NoGcRegion : IDisposable
{
    /// <summary>The default budget: what other threads may allocate during one step before a GC happens anyway.</summary>
    public const long DefaultBudgetBytes = 64L << 20;

    private static readonly bool Disabled = Environment.GetEnvironmentVariable("DIFFUSERS_SHARP_NO_GC_REGION") is "1" or "true";
    private static long _budget = long.MaxValue; // lowered to the largest budget the runtime accepted
    private readonly bool _active;

    private NoGcRegion(bool active) => _active = active;

    /// <summary>Whether the region is in effect (false: disabled, nested, or refused by the runtime).</summary>
    public bool IsActive => _active;

    /// <summary>Starts a region (see the type's remarks); dispose it when the work is done.</summary>
    public static NoGcRegion Enter(long budgetBytes = DefaultBudgetBytes)
    {
        if (Disabled || GCSettings.LatencyMode == GCLatencyMode.NoGCRegion) return default;
        for (long budget = Math.Min(budgetBytes, Interlocked.Read(ref _budget)); budget >= 1L << 20; budget /= 2)
        {
            try
            {
                bool ok = GC.TryStartNoGCRegion(budget);
                if (budget < budgetBytes) Interlocked.Exchange(ref _budget, budget);
                return new NoGcRegion(ok);
            }
            catch (ArgumentOutOfRangeException) { }    // budget larger than this runtime allows: halve it
            catch (InvalidOperationException) { return default; } // another thread already started one
        }
        return default;
    }

    /// <summary>Ends the region if it is still in effect (a collection may have ended it already).</summary>
    public void Dispose()
    {
        if (!_active || GCSettings.LatencyMode != GCLatencyMode.NoGCRegion) return;
        try { GC.EndNoGCRegion(); }
        catch (InvalidOperationException) { } // a collection ended it (budget exceeded): nothing to undo
    }
}
