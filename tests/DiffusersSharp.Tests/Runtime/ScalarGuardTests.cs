using System.Reflection;
using DiffusersSharp.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Runtime;

/// <summary>The guard's counters are process-wide: these tests run alone.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ScalarGuardCollection
{
    public const string Name = "ScalarGuard";
}

/// <summary>
/// The Scalar guard (Runtime/ScalarGuard.cs, build/native/scalar_guard.c): a TorchSharp Scalar that another thread (the
/// finalizer) disposes stays readable until the thread that made it is between two native calls.
/// </summary>
[Collection(ScalarGuardCollection.Name)]
public class ScalarGuardTests
{
    private static readonly FieldInfo HandleField =
        typeof(Scalar).GetField("handle", BindingFlags.NonPublic | BindingFlags.Instance)
        ?? throw new InvalidOperationException("TorchSharp's Scalar has no 'handle' field");

    private static readonly MethodInfo AddScalarInPlace =
        typeof(torch).Assembly.GetType("TorchSharp.PInvoke.NativeMethods")?.GetMethod(
            "THSTensor_add_scalar_", BindingFlags.NonPublic | BindingFlags.Static)
        ?? throw new InvalidOperationException("TorchSharp has no THSTensor_add_scalar_");

    static ScalarGuardTests()
    {
        using var bind = ones(1); // TorchSharp binds its entry points (through the resolver) at first use
        using var scalar = 1.ToScalar();
    }

    /// <summary>The guard's counters; makes no Scalar (a Scalar made here would free this thread's waiting ones).</summary>
    private static (long Waiting, long EverDeferred, long Tracked) Stats()
    {
        return ScalarGuard.Statistics() ?? throw new Xunit.Sdk.XunitException($"the guard is off: {ScalarGuard.Status}");
    }

    /// <summary>
    /// Lets the finalizer dispose every Scalar that is garbage now (those of other threads then wait for their makers,
    /// and stay counted) and frees what waits for this thread, so that a test's counts move only with what it does.
    /// </summary>
    private static (long Waiting, long EverDeferred, long Tracked) Quiesce()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        using (1.ToScalar()) { } // this thread's next Scalar frees what waits for it
        return Stats();
    }

    /// <summary>Polls <paramref name="done"/> for up to 10 s (a thread's native exit follows its managed end).</summary>
    private static bool Eventually(Func<bool> done)
    {
        for (var sw = System.Diagnostics.Stopwatch.StartNew(); sw.Elapsed < TimeSpan.FromSeconds(10); Thread.Sleep(5))
            if (done()) return true;
        return done();
    }

    /// <summary>t += value * alpha through TorchSharp's own binding of the native entry point, with raw handles.</summary>
    private static void AddInPlace(Tensor t, IntPtr value, IntPtr alpha) =>
        AddScalarInPlace.Invoke(null, [t.Handle, value, alpha]);

    private static void OnAnotherThread(Action action)
    {
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try { action(); }
            catch (Exception e) { error = e; }
        });
        thread.Start();
        thread.Join();
        if (error is not null) throw new InvalidOperationException("the other thread failed", error);
    }

    [Fact]
    public void TheGuardIsOnAndNamedInTheNativeSetUpSummary()
    {
        Stats();
        Assert.True(ScalarGuard.IsActive);
        Assert.Equal("scalar guard: on", ScalarGuard.Status);
        Assert.EndsWith("; scalar guard: on", NativeSetup.Summary);
    }

    [Fact]
    public void AScalarThatAnotherThreadDisposesStaysReadableUntilItsMakerMakesTheNext()
    {
        var before = Quiesce();
        using var t = zeros(3, dtype: float64);
        using var alpha = 1.ToScalar();
        var value = 2.5.ToScalar();
        var handle = (IntPtr)HandleField.GetValue(value)!;

        OnAnotherThread(value.Dispose); // what the finalizer thread does to a Scalar nobody references
        Assert.Equal(before.Waiting + 1, Stats().Waiting);
        Assert.Equal(before.EverDeferred + 1, Stats().EverDeferred);

        // the maker's op that was running with the handle reads the value the Scalar was made with
        AddInPlace(t, handle, (IntPtr)HandleField.GetValue(alpha)!);
        Assert.Equal([2.5, 2.5, 2.5], t.data<double>().ToArray());

        // the maker's next Scalar frees it
        using var next = 1.0.ToScalar();
        Assert.Equal(before.Waiting, Stats().Waiting);
    }

    [Fact]
    public void AScalarDisposedOnItsMakersThreadIsFreedAtOnce()
    {
        var before = Quiesce();
        var value = 2.5.ToScalar();
        Assert.Equal(before.Tracked + 1, Stats().Tracked);
        value.Dispose();
        var after = Stats();
        Assert.Equal(before.Tracked, after.Tracked);
        Assert.Equal(before.Waiting, after.Waiting);
        Assert.Equal(before.EverDeferred, after.EverDeferred);
    }

    [Fact]
    public void AScalarWaitingForItsMakerIsFreedWhenTheMakerEnds_AndLaterOnesAtOnce()
    {
        var before = Quiesce();
        Scalar? first = null, second = null;
        using var made = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var maker = new Thread(() =>
        {
            first = 1.5f.ToScalar();
            second = 3L.ToScalar();
            made.Set();
            release.Wait();
        });
        maker.Start();
        made.Wait();

        first!.Dispose(); // the maker is alive (waiting): deferred
        Assert.Equal(before.Waiting + 1, Stats().Waiting);

        release.Set();
        maker.Join(); // the maker ends: what waits for it is freed (by its native thread's exit, right after)
        Assert.True(Eventually(() => Stats().Waiting == before.Waiting), $"waiting {Stats().Waiting}, before {before.Waiting}");

        second!.Dispose(); // its maker is gone: freed at once
        var after = Stats();
        Assert.Equal(before.Waiting, after.Waiting);
        Assert.Equal(before.EverDeferred + 1, after.EverDeferred);
        Assert.Equal(before.Tracked, after.Tracked);
    }

    [Fact]
    public void ScalarsTheFinalizerFreesDuringOpsOfAnotherThreadWaitForIt_AndEveryResultIsRight()
    {
        // The race itself: one thread adds tensors (each add makes an alpha = 1 Scalar that is garbage once its handle
        // is read), another allocates and collects, so the finalizer disposes those Scalars while the adds go on.
        // Without the guard the same loop died within seconds in every run (toFloat / "Unknown scalar type"). Bounded
        // by time: in the whole suite's process every collection costs more.
        var before = Quiesce();
        using var x = full(64, 1.0f);
        using var y = full(64, 2.0f);
        int wrong = 0;
        using var stop = new CancellationTokenSource();
        var collector = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                for (int i = 0; i < 1000; i++) _ = new byte[256];
                GC.Collect(0);
            }
        });
        collector.Start();
        Exception? failure = null;
        try
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            for (int i = 0; i < 200_000 && clock.Elapsed < TimeSpan.FromSeconds(3); i++)
            {
                using var sum = x.add(y);
                if (sum.data<float>()[0] != 3.0f) wrong++;
            }
        }
        catch (Exception e)
        {
            failure = e;
        }
        finally
        {
            stop.Cancel();
            collector.Join();
        }
        Assert.Null(failure);
        Assert.Equal(0, wrong);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var during = Stats();
        Assert.True(during.EverDeferred > before.EverDeferred,
            "the finalizer disposed none of this thread's Scalars: the test did not exercise the guard");
        using var next = 1.ToScalar(); // this thread's next Scalar frees what waits for it
        Assert.True(Stats().Waiting <= before.Waiting, $"still waiting: {Stats().Waiting} (before {before.Waiting})");
    }
}
