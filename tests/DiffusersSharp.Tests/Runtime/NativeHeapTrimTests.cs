using DiffusersSharp.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Runtime;

/// <summary>The resident set is process-wide: these tests run alone.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class NativeHeapCollection
{
    public const string Name = "NativeHeap";
}

/// <summary>
/// <see cref="NativeSetup.TrimBeforeLargeStage"/>: inside a <see cref="NativeSetup.MapLargeBlocks"/> scope, a stage of
/// mapped-size activations first hands the heap's free memory back to the OS; smaller stages, and any stage outside
/// such a scope, leave it resident.
/// </summary>
[Collection(NativeHeapCollection.Name)]
public class NativeHeapTrimTests
{
    private const int Blocks = 32;
    private const long BlockBytes = 4L << 20;                // heap-sized: below the 32 MB from which fp32 blocks are mapped
    private const long Freed = Blocks * BlockBytes;          // 128 MB

    [Fact]
    public void TrimsOnlyBeforeAStageOfMappedSizeInsideTheScope()
    {
        bool tuned = NativeSetup.Summary.Contains("mmap threshold raised");

        FreeResidentHeapBlocks();
        long before = Rss();
        NativeSetup.TrimBeforeLargeStage(1L << 30);          // outside any scope: nothing happens
        Assert.True(before - Rss() < Freed / 4, $"outside a scope the RSS fell {(before - Rss()) >> 20} MB");

        using (NativeSetup.MapLargeBlocks(elementSize: 4))
        {
            long kept = Rss();
            NativeSetup.TrimBeforeLargeStage(BlockBytes);      // a stage of heap-sized activations: nothing happens
            Assert.True(kept - Rss() < Freed / 4, $"a small stage's call let the RSS fall {(kept - Rss()) >> 20} MB");

            NativeSetup.TrimBeforeLargeStage(32L << 20);       // a stage of mapped activations: the free heap goes back
            long dropped = kept - Rss();
            // at least half: in the whole suite's process other threads' allocations may take some of the freed blocks
            if (tuned)
                Assert.True(dropped >= Freed / 2, $"the RSS fell only {dropped >> 20} MB of the {Freed >> 20} MB freed");
            else
                Assert.True(dropped < Freed / 4, $"without the malloc tuning the RSS fell {dropped >> 20} MB");
        }
    }

    /// <summary>Allocates and touches 128 MB of heap-sized tensors, then frees them: resident, free heap memory.</summary>
    private static void FreeResidentHeapBlocks()
    {
        // the tensors earlier tests handed back to the garbage collector are freed now, by the finaliser thread, not
        // while this test measures (the suite's ~5,000 tests leave many)
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        NativeSetup.TrimNativeHeap();
        var blocks = new List<Tensor>();
        for (int i = 0; i < Blocks; i++) blocks.Add(torch.ones(BlockBytes / 4, ScalarType.Float32));
        Assert.Equal(Blocks * (double)(BlockBytes / 4), blocks.Sum(b => b.sum().item<float>()));
        foreach (var b in blocks) b.Dispose();
    }

    private static long Rss() =>
        long.Parse(File.ReadAllText("/proc/self/statm").Split(' ')[1]) * Environment.SystemPageSize;
}
