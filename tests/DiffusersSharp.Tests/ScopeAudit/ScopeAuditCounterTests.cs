using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.ScopeAudit;

/// <summary>
/// What the audit counts (<see cref="Support.ScopeAudit"/>), on TorchSharp 0.107's per-thread statistics: every tensor
/// made while no dispose scope is open, temporaries and results alike; not a result that a scope made and handed out
/// with <c>MoveToOuterDisposeScope</c> with no outer scope there (that result is detached, <c>DetachedFromScopeCount</c>).
/// So a call that opens its scope before any tensor work counts 0 whatever it returns, and a result made outside a scope
/// counts like the temporary it cannot be told from.
/// </summary>
public class ScopeAuditCounterTests
{
    [Fact]
    public void TheAuditCountsEveryTensorMadeOutsideAScopeButNotAResultMovedOutOfOne()
    {
        var a = torch.ones(3);
        var b = torch.ones(3);
        // the audit's thread has no scope open, though this test's thread holds one
        Assert.Equal(1, Support.ScopeAudit.CountOutside(() => torch.ones(1)).Outside);
        Assert.Equal(2, Support.ScopeAudit.CountOutside(() => a.add(b.mul(2))).Outside);   // b.mul(2), dropped, and the sum
        Assert.Equal(1, Support.ScopeAudit.CountOutside(() => a.add(1)).Outside);          // a result alone counts too

        long detached = 0;
        var (result, outside) = Support.ScopeAudit.CountOutside(() =>
        {
            var stats = DisposeScopeManager.Statistics.TensorStatistics;
            long before = stats.DetachedFromScopeCount;
            Tensor sum;
            using (torch.NewDisposeScope())
                sum = a.add(b.mul(2)).MoveToOuterDisposeScope();
            detached = stats.DetachedFromScopeCount - before;
            return sum;
        });
        Assert.Equal(0, outside);
        Assert.Equal(1, detached);
        Assert.False(result.IsInvalid);
        Assert.Equal(new float[] { 3, 3, 3 }, result.data<float>().ToArray());
        result.Dispose();

        var audit = new Support.ScopeAudit();
        audit.Call("a.add(b.mul(2))", () => a.add(b.mul(2)));
        var e = Assert.ThrowsAny<Xunit.Sdk.XunitException>(audit.AssertAllScoped);
        Assert.Contains("a.add(b.mul(2)): 2 tensor(s) made outside any dispose scope", e.Message);
    }
}
