using System.Text.Json.Nodes;
using DiffusersSharp.Server;
using DiffusersSharp.Tests.Support;
using Xunit.Abstractions;

namespace DiffusersSharp.Tests.Server;

/// <summary>
/// Memory flat under load: after a warm-up, many more requests leave the worker's live tensors unchanged, the job table at
/// its limit and the managed heap where it was. Alone in its collection (no other test allocates while it measures).
/// </summary>
[Collection("server memory")]
public class ServerMemoryTests(ITestOutputHelper log)
{
    private const int Keep = 8, WarmUp = 20, Requests = 60;

    /// <summary>
    /// Growth allowed to the live managed heap over the 60 requests. With nothing retained the readings moved by -347 to
    /// +75 KB over five runs (connections, timers, thread-pool state alive at that instant); 256 KB fails any leak of more
    /// than about 4.3 KB a request, less than a finished job kept whole at 16x16 holds by the count of its parts (the
    /// events' JSON objects, a base64 preview string, the PNG, the request).
    /// </summary>
    private const long HeapSlackBytes = 256 * 1024;

    [Fact]
    public async Task ManyRequestsLeaveTensorsJobsAndTheHeapWhereTheyWere()
    {
        using var data = new TempDir();
        await using var server = DiffusersServer.Create(ServerFixture.Options(data.Path) with { KeepFinishedJobs = Keep });
        await server.StartAsync();
        using var http = new HttpClient { BaseAddress = server.Address, Timeout = TimeSpan.FromSeconds(120) };
        int n = 0;
        async Task Batch(int count)
        {
            for (int i = 0; i < count; i++, n++)
            {
                // both ways in: a synchronous generation (b64_json) and a job followed through its event stream
                string body = new JsonObject { ["prompt"] = $"flat {n}", ["size"] = "16x16", ["steps"] = 2, ["seed"] = n, ["response_format"] = "b64_json" }.ToJsonString();
                if (n % 2 == 0)
                {
                    var (status, answer, _) = await ServerFixture.PostJson(http, "/v1/images/generations", body);
                    Assert.Equal(200, status);
                    Assert.Equal(n, (long)answer!["seed"]!);
                }
                else
                {
                    var (status, job, _) = await ServerFixture.PostJson(http, "/v1/jobs", body);
                    Assert.Equal(202, status);
                    Assert.Equal("done", (await ServerFixture.ReadEvents(http, (string)job!["id"]!))[^1].Type);
                }
            }
        }
        await Batch(WarmUp);
        var worker = server.Pool.Workers[0];
        long tensors = worker.LiveTensors, heap = LiveManagedBytes();
        Assert.Equal(Keep, server.JobsInMemory);

        await Batch(Requests);
        long heapAfter = LiveManagedBytes();
        log.WriteLine($"live tensors on the worker {tensors} -> {worker.LiveTensors}; jobs in memory {server.JobsInMemory}; " +
                      $"managed heap {heap / 1024.0:F0} KB -> {heapAfter / 1024.0:F0} KB ({(heapAfter - heap) / 1024.0:+0.0;-0.0} KB)");
        Assert.True(tensors > 0, "the worker counted no tensors (the model's weights are live)");
        Assert.Equal(tensors, worker.LiveTensors);
        Assert.Equal(Keep, server.JobsInMemory);
        Assert.InRange(heapAfter - heap, long.MinValue, HeapSlackBytes);
    }

    /// <summary>
    /// The managed heap after a full blocking collection (finalizers run, then collected again): the bytes that survived
    /// it in every generation, fragmentation (free space between objects) left out. <c>GC.GetTotalMemory(true)</c> was
    /// tried first: it moved by 1-2 MB from one reading to the next with nothing retained (allocation contexts, gen0 free space).
    /// </summary>
    private static long LiveManagedBytes()
    {
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        var info = GC.GetGCMemoryInfo(GCKind.FullBlocking);
        long live = 0;
        foreach (var g in info.GenerationInfo) live += g.SizeAfterBytes - g.FragmentationAfterBytes;
        return live;
    }
}

/// <summary>The memory test runs alone: no test of another collection allocates while it measures the heap.</summary>
[CollectionDefinition("server memory", DisableParallelization = true)]
public sealed class ServerMemoryCollection;
