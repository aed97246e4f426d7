using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using DiffusersSharp.Generation;
using DiffusersSharp.Server;

namespace DiffusersSharp.Bench;

/// <summary>
/// Issue 15's server overhead (<c>serve-overhead [--model folder] [--size 256] [--steps 20] [--runs 3] [--load 200] [--sse 20]</c>):
/// the same 20-step generation through the library's <see cref="GenerationService"/> (PNG bytes out) and through
/// <c>POST /v1/images/generations</c> of a real Kestrel on 127.0.0.1 (HTTP, queue, worker, previews, result store,
/// base64), interleaved, medians and their ratio (target ≤ 1.05); then <c>--sse</c> jobs one after another on an empty
/// queue: the time from sending <c>POST /v1/jobs</c> to the first byte of its event stream and to its first event line
/// (target ≤ 100 ms); then <c>--load</c> short requests in a row with the process RSS, the managed heap, the live
/// TorchSharp tensors and the jobs in memory at every tenth of the run (memory flat over a run: growth that stops).
/// </summary>
public static class ServeOverheadBench
{
    public static void Run(string model, int size, int steps, int runs, int load, int sse)
    {
        var request = new GenerationRequest { Prompt = "a lighthouse at dusk", Width = size, Height = size, Steps = steps, Seed = 1 };
        using var service = GenerationService.Load(model);
        string data = Path.Combine(Path.GetTempPath(), "diffusers-sharp-serve-bench-" + Environment.ProcessId);
        var server = DiffusersServer.Create(new ServerOptions { Models = [model], Host = "127.0.0.1", Port = 0, DataDir = data, MaxQueue = 4 });
        server.StartAsync().GetAwaiter().GetResult();
        using var http = new HttpClient { BaseAddress = server.Address, Timeout = TimeSpan.FromMinutes(10) };
        string modelId = JsonNode.Parse(http.GetStringAsync("/v1/models").GetAwaiter().GetResult())!["data"]![0]!["id"]!.GetValue<string>();
        string Body(int s) => $$"""{"model":"{{modelId}}","prompt":"a lighthouse at dusk","size":"{{size}}x{{size}}","steps":{{s}},"seed":1,"response_format":"b64_json"}""";
        double Post(int s)
        {
            var sw = Stopwatch.StartNew();
            using var response = http.PostAsync("/v1/images/generations", new StringContent(Body(s), Encoding.UTF8, "application/json")).GetAwaiter().GetResult();
            string text = response.Content.ReadAsStringAsync().GetAwaiter().GetResult();
            if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"server answered {(int)response.StatusCode}: {text}");
            return sw.Elapsed.TotalSeconds;
        }
        // warm-up both paths once
        service.Generate(request);
        Post(steps);
        var lib = new List<double>();
        var srv = new List<double>();
        for (int i = 0; i < runs; i++)
        {
            var sw = Stopwatch.StartNew();
            service.Generate(request);
            lib.Add(sw.Elapsed.TotalSeconds);
            srv.Add(Post(steps));
        }
        Console.WriteLine($"{steps} steps {size}x{size} ({model}): library median {Harness.Median(lib):F3} s, server median {Harness.Median(srv):F3} s, " +
                          $"server/library {Harness.Median(srv) / Harness.Median(lib):F3} (target <= 1.05); runs {runs}");
        if (sse > 0) FirstEventLatency(http, modelId, sse);
        if (load > 0)
        {
            Console.WriteLine($"{load} requests of 2 steps at {size}x{size}, one after another (finished jobs kept in memory: at most {server.Options.KeepFinishedJobs}):");
            Console.WriteLine("  requests     RSS MB   live managed heap MB   live tensors (process / worker)   jobs in memory");
            long first = 0;
            for (int i = 1; i <= load; i++)
            {
                Post(2);
                if (i % Math.Max(1, load / 10) != 0 && i != load) continue;
                long rss = Harness.RssBytes(), heap = LiveManagedBytes();
                if (first == 0) first = rss;
                Console.WriteLine($"  {i,8} {rss / 1e6,10:F1} {heap / 1e6,17:F2} {TorchSharp.torch.Tensor.TotalCount,25} / {server.Pool.Workers[0].LiveTensors,-10} {server.JobsInMemory,12}");
            }
            long end = Harness.RssBytes();
            Console.WriteLine($"  RSS growth from the first checkpoint ({Math.Max(1, load / 10)} requests) to the end: {100.0 * (end - first) / first:F2}%");
        }
        server.DisposeAsync().AsTask().GetAwaiter().GetResult();
        try { Directory.Delete(data, recursive: true); } catch (IOException) { }
    }

    /// <summary>The managed heap that survives a full blocking collection (finalizers run), fragmentation left out.</summary>
    private static long LiveManagedBytes()
    {
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        long live = 0;
        foreach (var g in GC.GetGCMemoryInfo(GCKind.FullBlocking).GenerationInfo) live += g.SizeAfterBytes - g.FragmentationAfterBytes;
        return live;
    }

    /// <summary>
    /// <paramref name="count"/> jobs, each sent once the previous one is done (an empty queue): the time from sending
    /// <c>POST /v1/jobs</c> to the first byte of <c>GET /v1/jobs/{id}/events</c>, and to its first event line
    /// (<c>event: queued</c> or <c>event: started</c>); medians and maxima against the 100 ms target.
    /// </summary>
    private static void FirstEventLatency(HttpClient http, string modelId, int count)
    {
        string body = $$"""{"model":"{{modelId}}","prompt":"a lighthouse at dusk","size":"64x64","steps":2,"seed":1}""";
        var firstByte = new List<double>();
        var firstEvent = new List<double>();
        for (int i = 0; i < count; i++)
        {
            var sw = Stopwatch.StartNew();
            using var posted = http.PostAsync("/v1/jobs", new StringContent(body, Encoding.UTF8, "application/json")).GetAwaiter().GetResult();
            string text = posted.Content.ReadAsStringAsync().GetAwaiter().GetResult();
            if ((int)posted.StatusCode != 202) throw new InvalidOperationException($"POST /v1/jobs answered {(int)posted.StatusCode}: {text}");
            string id = JsonNode.Parse(text)!["id"]!.GetValue<string>();
            using var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/jobs/{id}/events");
            using var response = http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead).GetAwaiter().GetResult();
            using var stream = response.Content.ReadAsStream();
            int b = stream.ReadByte();
            firstByte.Add(sw.Elapsed.TotalMilliseconds);
            if (b < 0) throw new InvalidOperationException($"the event stream of {id} ended before its first byte");
            using var reader = new StreamReader(stream);
            bool seen = false;
            while (reader.ReadLine() is { } line)
            {
                if (!seen && line is "event: queued" or "event: started")
                {
                    firstEvent.Add(sw.Elapsed.TotalMilliseconds);
                    seen = true;
                }
                if (line is "event: done" or "event: failed" or "event: cancelled") break;   // the queue is empty again
            }
            if (!seen) throw new InvalidOperationException($"the event stream of {id} had no queued or started event");
        }
        Console.WriteLine($"{count} jobs on an empty queue, from sending POST /v1/jobs: first byte of the event stream median {Harness.Median(firstByte):F1} ms, " +
                          $"max {firstByte.Max():F1} ms; first event line (queued/started) median {Harness.Median(firstEvent):F1} ms, max {firstEvent.Max():F1} ms (target <= 100 ms)");
    }
}
