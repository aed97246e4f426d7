using System.Runtime.CompilerServices;
using DiffusersSharp.Runtime;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Runtime;

/// <summary>
/// The test host's hold on temporaries (Support/HoldTestTensorsAttribute): TorchSharp lets the garbage collector
/// finalise a tensor nothing references while libtorch still reads it, so each synchronous test runs in a dispose scope.
/// </summary>
public class TemporaryTensorTests
{
    /// <summary>A tensor made and dropped: only the weak reference returned points to it.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WeakReference<Tensor> Dropped() => new(torch.ones(4).abs());

    private static void Collect()
    {
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true);
    }

    [Fact]
    public void WithoutAScope_ADroppedTemporaryIsFinalised()
    {
        // what the hold prevents: on a thread of its own (no scope), a collection finalises the dropped tensor, which
        // frees its native tensor even if a libtorch call were still reading it
        WeakReference<Tensor>? weak = null;
        var thread = new Thread(() =>
        {
            weak = Dropped();
            Collect();
        });
        thread.Start();
        thread.Join();
        Assert.False(weak!.TryGetTarget(out _), "a tensor nothing references survived a full collection");
    }

    [Fact]
    public void ASynchronousTest_HoldsItsTemporariesUntilItEnds()
    {
        Assert.NotNull(HoldTestTensorsAttribute.Held);
        var weak = Dropped();
        Collect();
        Assert.True(weak.TryGetTarget(out var t), "the test's temporary was finalised while the test ran");
        Assert.False(t!.IsInvalid);
        Assert.True(HoldTestTensorsAttribute.Held!.Contains(t));
    }

    [Fact]
    public void AfterTheTest_ItsTensorsAreValidAndNoLongerHeld()
    {
        // Before and After by hand on a thread of their own, as xunit calls them around a test
        var hold = new HoldTestTensorsAttribute();
        var method = typeof(TemporaryTensorTests).GetMethod(nameof(ASynchronousTest_HoldsItsTemporariesUntilItEnds))!;
        var asyncMethod = typeof(TemporaryTensorTests).GetMethod(nameof(AnAsyncMethod), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!;
        Tensor? kept = null;
        bool heldDuring = false, heldAfter = true, heldForAsync = true;
        var thread = new Thread(() =>
        {
            hold.Before(method);
            kept = torch.ones(3);
            heldDuring = HoldTestTensorsAttribute.Held?.Contains(kept) == true;
            hold.After(method);
            heldAfter = HoldTestTensorsAttribute.Held is not null;
            hold.Before(asyncMethod);
            heldForAsync = HoldTestTensorsAttribute.Held is not null;
            hold.After(asyncMethod);
        });
        thread.Start();
        thread.Join();
        Assert.True(heldDuring, "the tensor was not held during the test");
        Assert.False(heldAfter, "the hold outlived the test");
        Assert.False(heldForAsync, "an async test was held (its continuations may run on another thread)");
        Assert.False(kept!.IsInvalid, "the hold disposed a tensor the test kept");
        Assert.Equal(3f, kept.sum().item<float>());
        kept.Dispose();
    }

    [Fact]
    public void TorchUtilsScoped_FreesItsTemporariesAndHandsOutItsResult()
    {
        // the library's own code that may run with no scope open computes through it (a LoRA file's finiteness check,
        // the trainer's saved weights, a single file's transposed projection, ...)
        using var a = torch.tensor(new float[] { -1, 2, -3 });
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        using var r = TorchUtils.Scoped(() => (a * 2).abs() + 1);
        Assert.Equal(before + 1, DisposeScopeManager.Statistics.ThreadTotalLiveCount);   // the result only
        Assert.Equal(new float[] { 3, 5, 7 }, r.data<float>().ToArray());
        long live = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        Assert.True(TorchUtils.Scoped(() => torch.isfinite(a).all().item<bool>()));
        Assert.Equal(live, DisposeScopeManager.Statistics.ThreadTotalLiveCount);          // a value: nothing left
    }

    private static async Task AnAsyncMethod() => await Task.Yield();
}
