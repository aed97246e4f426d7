using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using DiffusersSharp.Generation;
using DiffusersSharp.Server;

namespace DiffusersSharp.Bench;

/// <summary>
/// Issue 15's server overhead (<c>serve-overhead [--model folder] [--size 256] [--steps 20] [--runs 3] [--load 200]</c>):
/// the same 20-step generation through the library's <see cref="GenerationService"/> (PNG bytes out) and through
/// <c>POST /v1/images/generations</c> of a real Kestrel on 127.0.0.1 (HTTP, queue, worker, previews, result store,
/// base64), interleaved, medians and their ratio (target ≤ 1.05); then <c>--load</c> short requests in a row with the
/// process RSS after the first tenth and at the end (memory flat over a run).
/// </summary>
public static class ServeOverheadBench
{
    public static void Run(string model, int size, int steps, int runs, int load)
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
        double Median(List<double> v) { var s = v.Order().ToArray(); return s.Length % 2 == 1 ? s[s.Length / 2] : 0.5 * (s[s.Length / 2 - 1] + s[s.Length / 2]); }
        Console.WriteLine($"{steps} steps {size}x{size} ({model}): library median {Median(lib):F3} s, server median {Median(srv):F3} s, " +
                          $"server/library {Median(srv) / Median(lib):F3} (target <= 1.05); runs {runs}");
        if (load > 0)
        {
            long after = 0;
            for (int i = 0; i < load; i++)
            {
                Post(2);
                if (i == load / 10 - 1) after = Harness.RssBytes();
            }
            long end = Harness.RssBytes();
            Console.WriteLine($"{load} requests of 2 steps: RSS after {load / 10} {after / 1e6:F1} MB, after {load} {end / 1e6:F1} MB, growth {100.0 * (end - after) / after:F2}%");
        }
        server.DisposeAsync().AsTask().GetAwaiter().GetResult();
        try { Directory.Delete(data, recursive: true); } catch (IOException) { }
    }
}
