using System.Diagnostics;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Bench;

/// <summary>
/// <c>bench -- e2e [--quick] [--dtypes fp32,bf16] [--threads N] [--only a,b,c] [--again]</c>: txt2img end to end with random weights of
/// the published configs (<see cref="E2eConfigs"/>), per stage: load (weights read from a saved pipeline folder), tokenize +
/// text encoder, each denoising step, VAE decode (+ postprocess), PNG; wall and user+system CPU time of each, and the peak
/// RSS against the weights the run holds. Each (scenario, dtype) runs in a child process of its own, so its peak RSS is
/// its own. The pipeline folders are written once (fixed seeds) under the system temp folder and reused. <c>--again</c>:
/// each run then makes a second image in the same process (what a server or a second CLI image costs: no first-call
/// set-up), reported on an <c>AGAIN</c> line.
/// </summary>
public static class E2eBench
{
    private const string Prompt = "a photo of a cat sitting on a windowsill, golden hour";

    /// <summary>The orchestrating process: writes the folders, runs every (scenario, dtype) as a child, prints the summary.</summary>
    public static int Run(bool quick, string[] dtypes, int? threads, string[]? only, bool again = false)
    {
        string root = E2eConfigs.RepoRoot();
        Console.WriteLine($"e2e txt2img {(quick ? "QUICK (tiny configs, 64²)" : "512²")}, random weights of the published configs; dtypes {string.Join(",", dtypes)}; " +
                          $"{(threads is int n ? $"{n} thread(s)" : "torch's default threads")}; CPU = user+system time of the run's process");
        var summary = new List<string>();
        foreach (var s in E2eConfigs.Scenarios)
        {
            if (only is not null && !only.Contains(s.Name)) continue;
            string folder = E2eFolders.Ensure(s, quick, root);
            foreach (var dtype in dtypes)
            {
                Console.WriteLine($"--- {s.Name}  {s.Title}  [{dtype}]");
                var args = new List<string> { "e2e-run", "--folder", folder, "--scenario", s.Name, "--dtype", dtype };
                if (quick) args.Add("--quick");
                if (threads is int t) args.AddRange(["--threads", t.ToString()]);
                if (again) args.Add("--again");
                var (code, lines) = ChildProcesses.RunSelf(args, echo: true);
                summary.Add(code == 0
                    ? lines.LastOrDefault(l => l.StartsWith("SUMMARY ", StringComparison.Ordinal))?["SUMMARY ".Length..] ?? $"{s.Name} {dtype}: no summary"
                    : $"{s.Name} {dtype}: FAILED (exit {code})");
                if (code == 0 && lines.LastOrDefault(l => l.StartsWith("AGAIN ", StringComparison.Ordinal)) is { } second)
                    summary.Add(second);
                if (code == 0 && lines.LastOrDefault(l => l.StartsWith("HOST ", StringComparison.Ordinal)) is { } host)
                    summary.Add($"{s.Name} {dtype} {host}");
            }
        }
        foreach (var s in E2eConfigs.Scenarios.Where(x => only is null || only.Contains(x.Name)))
            if (dtypes.Contains("fp32"))
                foreach (var other in dtypes.Where(d => d != "fp32"))
                    summary.Add(E2eImageDiff.Describe(s.Name, other, PngPath(s.Name, "fp32"), PngPath(s.Name, other)));
        Console.WriteLine("=== summary (wall s / CPU s; steps(n) = the n UNet loop iterations (PNDM: 21 for 20 steps); total = text + steps + decode + png, without load)");
        foreach (var line in summary) Console.WriteLine(line);
        return summary.Any(l => l.Contains("FAILED", StringComparison.Ordinal)) ? 1 : 0;
    }

    /// <summary>One (scenario, dtype) run, in the child process.</summary>
    public static int RunOne(string folder, string scenarioName, string dtypeName, bool quick, int? threads, bool again = false)
    {
        var s = E2eConfigs.Scenarios.Single(x => x.Name == scenarioName);
        if (int.TryParse(Environment.GetEnvironmentVariable("E2E_STEPS"), out int fewer) && fewer > 0) s = s with { Steps = fewer };   // a shorter probe
        var dtype = dtypeName switch { "bf16" => ScalarType.BFloat16, "fp16" => ScalarType.Float16, _ => ScalarType.Float32 };
        if (threads is int n) torch.set_num_threads(n);
        int size = E2eConfigs.ImageSize(quick);
        var stages = new List<(string Name, double Wall, double Cpu)>();
        long rssBefore = Harness.RssBytes();   // the runtime and libtorch, before any weights
        HeapSampler.StartRssTrace();
        var clock = new StageClock();

        // load: every component from the saved folder, in the run's dtype
        using var pipe = E2ePipeline.Load(folder, s, dtype);
        long weightBytes = pipe.WeightBytes;
        stages.Add(("load", clock.Lap().Wall, clock.LastCpu));

        using var noGrad = torch.no_grad();
        using var embeds = pipe.Encode(Prompt, pipe.Cfg(s));
        stages.Add(("tokenize+text encoder", clock.Lap().Wall, clock.LastCpu));

        // the pipeline's own loop and decode: a lap at each step's report, the decode (+ postprocess) is what follows the last
        var steps = new List<(double Wall, double Cpu)>();
        var progress = new SyncProgress(_ => { clock.Lap(); steps.Add((clock.LastWall, clock.LastCpu)); });
        var image = pipe.Generate(embeds, s, size, progress);
        for (int i = 0; i < steps.Count; i++) stages.Add(($"step {i + 1}", steps[i].Wall, steps[i].Cpu));
        stages.Add(($"decode ({pipe.VaeName})", clock.Lap().Wall, clock.LastCpu));

        string png = PngPath(s.Name, dtypeName);
        image.Save(png);
        stages.Add(("png", clock.Lap().Wall, clock.LastCpu));

        foreach (var (name, wall, cpu) in stages) Console.WriteLine($"  {name,-32} {wall,8:F3} s wall  {cpu,8:F3} s CPU");
        var work = stages.Skip(1).ToList();
        double stepWall = steps.Sum(x => x.Wall), stepCpu = steps.Sum(x => x.Cpu);
        double totalWall = work.Sum(x => x.Wall), totalCpu = work.Sum(x => x.Cpu);
        long peak = Math.Max(Harness.PeakRssBytes(), StageClock.PeakOfLaps);
        Console.WriteLine($"  {OneDnnCaches.Status}; {OneDnnConvolutions.Status}");
        Console.WriteLine($"  total (without load) {totalWall:F3} s wall, {totalCpu:F3} s CPU; image {image.Width}x{image.Height} -> {png}");
        Console.WriteLine($"  weights {weightBytes / 1e9:F3} GB ({dtypeName}); peak RSS {peak / 1e9:F3} GB = {peak / (double)weightBytes:F2}x the weights (target <= 1.3); " +
                          $"RSS before loading {rssBefore / 1e9:F3} GB; threads {torch.get_num_threads()}");
        Console.WriteLine($"SUMMARY {s.Name} {dtypeName,-4} load {stages[0].Wall,7:F2}/{stages[0].Cpu,7:F2}  text {stages[1].Wall,6:F2}/{stages[1].Cpu,6:F2}  " +
                          $"steps({steps.Count}) {stepWall,7:F2}/{stepCpu,7:F2}  decode {stages[^2].Wall,6:F2}/{stages[^2].Cpu,6:F2}  png {stages[^1].Wall,5:F2}  " +
                          $"total {totalWall,7:F2}/{totalCpu,7:F2}  peakRSS {peak / (double)weightBytes:F2}x weights{Target(s.Name, dtypeName, quick)}");
        if (again) Again(pipe, s, dtypeName, size);
        if (!quick) HostRate(dtype);
        return 0;
    }

    /// <summary>
    /// The host's matrix-product rate in the run's dtype, after the run (3 × 4096³, median): the time targets of issue 14
    /// were set on a day this CPU measured 428 (fp32) / 708 (bf16) GFLOP/s, and this VM has measured 2× less on other days.
    /// </summary>
    private static void HostRate(ScalarType dtype)
    {
        var probe = dtype == ScalarType.Float32 ? ScalarType.Float32 : ScalarType.BFloat16;
        double rate = MatmulPeakBench.Rate(probe, 3);
        Console.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"HOST 4096^3 {(probe == ScalarType.Float32 ? "fp32" : "bf16")} matmul {rate:F0} GFLOP/s after the run ({rate / MatmulPeakBench.IssueRate(probe):P0} of issue 14's {MatmulPeakBench.IssueRate(probe)})"));
    }

    /// <summary>A second image in the same process: text encoder + steps + decode + PNG bytes, as a warm server makes it.</summary>
    private static void Again(E2ePipeline pipe, E2eConfigs.Scenario s, string dtypeName, int size)
    {
        var clock = new StageClock();
        using var embeds = pipe.Encode(Prompt + ", again", pipe.Cfg(s));
        double text = clock.Lap().Wall, stepWall = 0;
        var progress = new SyncProgress(_ => stepWall += clock.Lap().Wall);
        var image = pipe.Generate(embeds, s, size, progress);
        double decode = clock.Lap().Wall;
        image.ToPng();
        double png = clock.Lap().Wall;
        Console.WriteLine($"AGAIN {s.Name} {dtypeName,-4} second image in the process: text {text,6:F2}  steps {stepWall,7:F2}  decode {decode,6:F2}  " +
                          $"png {png,5:F2}  total {text + stepWall + decode + png,7:F2} s wall{Target(s.Name, dtypeName, quick: false)}");
    }

    /// <summary>Where a run writes its image (the orchestrator compares the dtypes' images).</summary>
    public static string PngPath(string scenario, string dtype) => Path.Combine(Path.GetTempPath(), $"diffusers-bench-e2e-{scenario}-{dtype}.png");

    /// <summary>Issue 14's end-to-end target (text encoder + steps + decode, wall) for a full-size run, as a suffix.</summary>
    private static string Target(string scenario, string dtype, bool quick) => quick ? "" : (scenario, dtype) switch
    {
        ("a", "fp32") => "  (target total <= 90 s)",
        ("a", "bf16") => "  (target total <= 50 s)",
        ("b", "bf16") => "  (target total <= 2.0 s)",
        ("c", "bf16") => "  (target total <= 7 s)",
        ("d" or "e", _) => "  (no target; FastSD CPU: SD-Turbo 1.7 s on 12 cores)",
        _ => "",
    };

    /// <summary>Wall and CPU time between laps.</summary>
    private sealed class StageClock
    {
        private readonly Stopwatch _wall = Stopwatch.StartNew();
        private double _lastWallMark, _lastCpuMark = CpuSeconds();

        public double LastWall { get; private set; }
        public double LastCpu { get; private set; }

        public (double Wall, double Cpu) Lap()
        {
            double w = _wall.Elapsed.TotalSeconds, c = CpuSeconds();
            (LastWall, LastCpu) = (w - _lastWallMark, c - _lastCpuMark);
            (_lastWallMark, _lastCpuMark) = (w, c);
            if (Stamps)
            {
                // CLOCK_MONOTONIC, for perf -k monotonic; the peak RSS since the last lap, then the peak reset to now
                long lapPeak = Harness.PeakRssBytes();
                PeakOfLaps = Math.Max(PeakOfLaps, lapPeak);
                var (inUse, free) = Harness.NativeHeap();
                if (HeapSampler.Enabled) Console.WriteLine($"HEAPMAX in use {HeapSampler.TakeMax() / 1e9:F3} GB since the last lap");
                if (HeapSampler.Enabled) { Console.Out.Flush(); HeapSampler.MallocStats(); }
                Console.WriteLine($"STAMP {Stopwatch.GetTimestamp() / (double)Stopwatch.Frequency:F6} peak RSS {lapPeak / 1e9:F3} GB, RSS {Harness.RssBytes() / 1e9:F3} GB, " +
                                  $"native heap in use {inUse / 1e9:F3} GB, free {free / 1e9:F3} GB, minor faults {Harness.MinorFaults()}, " +
                                  $"JIT {System.Runtime.JitInfo.GetCompiledMethodCount()} methods {System.Runtime.JitInfo.GetCompilationTime().TotalSeconds:F3} s");
                File.WriteAllText("/proc/self/clear_refs", "5");
            }
            return (LastWall, LastCpu);
        }

        private static double CpuSeconds() => Harness.CpuSeconds();

        /// <summary>With E2E_STAMPS=1 every lap resets the kernel's peak (VmHWM); this keeps the highest lap peak.</summary>
        public static long PeakOfLaps { get; private set; }

        private static readonly bool Stamps = Environment.GetEnvironmentVariable("E2E_STAMPS") == "1";
    }

    /// <summary>Reports on the pipeline's thread (System.Progress would post to the thread pool).</summary>
    private sealed class SyncProgress(Action<PipelineProgress> report) : IProgress<PipelineProgress>
    {
        public void Report(PipelineProgress value) => report(value);
    }
}

/// <summary>E2E_HEAP_SAMPLE=1: a thread samples glibc's live heap every millisecond; each lap prints the highest sample.</summary>
internal static class HeapSampler
{
    public static readonly bool Enabled = Environment.GetEnvironmentVariable("E2E_HEAP_SAMPLE") == "1";
    private static long _max;

    static HeapSampler()
    {
        if (!Enabled) return;
        new Thread(() =>
        {
            while (true)
            {
                long v = Harness.NativeHeap().InUse;
                long m;
                do { m = Interlocked.Read(ref _max); } while (v > m && Interlocked.CompareExchange(ref _max, v, m) != m);
                Thread.Sleep(1);
            }
        })
        { IsBackground = true }.Start();
    }

    public static long TakeMax() => Interlocked.Exchange(ref _max, 0);

    /// <summary>
    /// E2E_RSS_TRACE=file: a thread samples the resident set (/proc/self/statm) and glibc's live heap every millisecond
    /// and appends "seconds rss_mb heap_mb shared_mb free_mb" lines to the file (CLOCK_MONOTONIC seconds, comparable with
    /// STAMP lines; shared: the resident pages backed by files, libtorch's code among them; free: glibc's free heap bytes,
    /// which with the raised trim threshold stay resident).
    /// </summary>
    public static void StartRssTrace()
    {
        if (Environment.GetEnvironmentVariable("E2E_RSS_TRACE") is not { Length: > 0 } path) return;
        var writer = new StreamWriter(path) { AutoFlush = false };
        AppDomain.CurrentDomain.ProcessExit += (_, _) => { lock (writer) writer.Flush(); };
        long pageSize = Environment.SystemPageSize;
        new Thread(() =>
        {
            while (true)
            {
                var fields = File.ReadAllText("/proc/self/statm").Split(' ');
                long rss = long.Parse(fields[1]) * pageSize, shared = long.Parse(fields[2]) * pageSize;
                var (heap, free) = Harness.NativeHeap();
                lock (writer)
                    writer.WriteLine($"{Stopwatch.GetTimestamp() / (double)Stopwatch.Frequency:F4} {rss >> 20} {heap >> 20} {shared >> 20} {free >> 20}");
                Thread.Sleep(1);
            }
        })
        { IsBackground = true }.Start();
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "malloc_stats")]
    public static extern void MallocStats();
}
