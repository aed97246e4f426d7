using System.Runtime;
using DiffusersSharp.Runtime;

namespace DiffusersSharp.Tests.Runtime;

/// <summary>The GC mode is process-wide: these tests run alone (no trainer test beside them).</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class NoGcRegionCollection
{
    public const string Name = "NoGcRegion";
}

/// <summary>The no-GC region that the trainer's step runs in (TorchSharp Scalar finalizer race).</summary>
[Collection(NoGcRegionCollection.Name)]
public class NoGcRegionTests
{
    [Fact]
    public void HoldsCollectionsOffUntilDisposedAndDoesNotNest()
    {
        int before = GC.CollectionCount(0);
        using (var region = NoGcRegion.Enter())
        {
            Assert.True(region.IsActive);
            Assert.Equal(GCLatencyMode.NoGCRegion, GCSettings.LatencyMode);
            var garbage = new List<byte[]>();
            for (int i = 0; i < 1000; i++) garbage.Add(new byte[1024]); // 1 MB, well inside the budget
            using (var inner = NoGcRegion.Enter())
                Assert.False(inner.IsActive); // nested: the outer one stays in charge
            Assert.Equal(GCLatencyMode.NoGCRegion, GCSettings.LatencyMode);
            // TryStartNoGCRegion may collect once when the region starts; none happens inside it.
            int inside = GC.CollectionCount(0);
            for (int i = 0; i < 1000; i++) garbage.Add(new byte[1024]);
            Assert.Equal(inside, GC.CollectionCount(0));
            GC.KeepAlive(garbage);
        }
        Assert.NotEqual(GCLatencyMode.NoGCRegion, GCSettings.LatencyMode);
        Assert.True(GC.CollectionCount(0) >= before);
    }

    [Fact]
    public void ARegionEndedByTheRuntimeIsDisposedQuietly()
    {
        var region = NoGcRegion.Enter();
        Assert.True(region.IsActive);
        GC.Collect(); // an induced collection ends the region
        Assert.NotEqual(GCLatencyMode.NoGCRegion, GCSettings.LatencyMode);
        region.Dispose(); // no InvalidOperationException
        Assert.NotEqual(GCLatencyMode.NoGCRegion, GCSettings.LatencyMode);
    }
}
