using System.Runtime;
using DiffusersSharp.Generation;
using DiffusersSharp.Runtime;
using DiffusersSharp.Tests.Generation;

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

    [Fact]
    public void AGenerationServiceRunHoldsCollectionsOffWhileAnotherThreadAllocatesAndEndsTheRegion()
    {
        // the server's and IImageGenerator's engine runs beside threads that allocate: a run is in a region from the text
        // encoder to the PNGs, renewed at every step
        using var service = GenerationService.Load(GenerationServiceTests.Model);
        service.Generate(new GenerationRequest { Prompt = "warm up", Width = 32, Height = 32, Steps = 1, Seed = 1 });
        var atReports = new List<GCLatencyMode>();
        int inRegion = 0, samples = 0;
        bool generating = false;
        using var stop = new CancellationTokenSource();
        var other = new Thread(() =>
        {
            // a request thread: a little garbage every millisecond (~0.3 MB a second, far inside the 64 MB budget), and
            // the GC mode it runs under while the generation is going on
            var keep = new List<byte[]>();
            while (!stop.IsCancellationRequested)
            {
                keep.Add(new byte[256]);
                if (keep.Count == 64) keep.Clear();
                if (Volatile.Read(ref generating))
                {
                    samples++;
                    if (GCSettings.LatencyMode == GCLatencyMode.NoGCRegion) inRegion++;
                }
                Thread.Sleep(1);
            }
        })
        { IsBackground = true };
        other.Start();
        try
        {
            Volatile.Write(ref generating, true);
            var result = service.Generate(
                new GenerationRequest { Prompt = "a red house", GuidanceScale = 5.0, Width = 32, Height = 32, Steps = 8, Seed = 3 },
                new GenerationServiceTests.SyncProgress(_ => atReports.Add(GCSettings.LatencyMode)));
            Volatile.Write(ref generating, false);
            Assert.Single(result.Images);
        }
        finally
        {
            stop.Cancel();
            other.Join();
        }
        Assert.True(atReports.Count >= 8, $"{atReports.Count} progress reports for 8 steps");
        Assert.All(atReports, m => Assert.Equal(GCLatencyMode.NoGCRegion, m));
        // the region held while the other thread allocated (outside it only in the moments a step renews it)
        Assert.True(samples >= 20, $"{samples} samples");
        Assert.True(inRegion >= 0.9 * samples, $"in a no-GC region in {inRegion} of {samples} samples");
        Assert.NotEqual(GCLatencyMode.NoGCRegion, GCSettings.LatencyMode);   // the last region ended with the run
    }
}
