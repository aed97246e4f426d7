using System.Diagnostics;

namespace DiffusersSharp.Bench;

/// <summary>A plain stopwatch harness: warm-up runs, then timed runs; prints min, median and throughput.</summary>
public static class Harness
{
    public sealed record Result(string Name, double[] Seconds)
    {
        /// <summary>The process's user+system CPU seconds of each run (all threads; less noisy than wall time on a shared machine).</summary>
        public double[] CpuSeconds { get; init; } = [];

        /// <summary>The median of <see cref="CpuSeconds"/>.</summary>
        public double CpuMedian => Harness.Median(CpuSeconds);

        public double Min => Seconds.Min();
        public double Median => Harness.Median(Seconds);
    }

    /// <summary>The median (the mean of the middle two for an even count); NaN for none. Every bench's medians come from here.</summary>
    public static double Median(IEnumerable<double> values)
    {
        var s = values.OrderBy(x => x).ToArray();
        if (s.Length == 0) return double.NaN;
        return s.Length % 2 == 1 ? s[s.Length / 2] : 0.5 * (s[s.Length / 2 - 1] + s[s.Length / 2]);
    }

    /// <summary>
    /// This process's user+system CPU seconds so far: <c>clock_gettime(CLOCK_PROCESS_CPUTIME_ID)</c> (nanoseconds; .NET's
    /// <c>Process.TotalProcessorTime</c> reads /proc in 10 ms ticks), or that where clock_gettime is missing.
    /// </summary>
    public static double CpuSeconds()
    {
        try
        {
            if (clock_gettime(2 /* CLOCK_PROCESS_CPUTIME_ID */, out var ts) == 0) return ts.Seconds + ts.Nanoseconds * 1e-9;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { }
        return Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds;
    }

    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
    private struct TimeSpec { public long Seconds; public long Nanoseconds; }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int clock_gettime(int clock, out TimeSpec ts);

    /// <summary>Minor page faults of this process so far (/proc/self/stat field 10).</summary>
    public static long MinorFaults()
    {
        string stat = File.ReadAllText("/proc/self/stat");
        return long.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[7]);
    }

    public static Result Time(string name, int warmup, int runs, Action action, double? gflop = null)
    {
        var r = Measure(name, warmup, runs, action);
        string rate = gflop is { } g ? $"  {g / r.Median,7:F1} GFLOP/s (median)  {g / r.Min,7:F1} GFLOP/s (best)" : "";
        Console.WriteLine($"{name,-44} median {r.Median,8:F3} s   min {r.Min,8:F3} s   CPU median {r.CpuMedian,8:F3} s   runs {runs}{rate}");
        return r;
    }

    /// <summary><see cref="Time"/> without the printed line.</summary>
    public static Result Measure(string name, int warmup, int runs, Action action)
    {
        for (int i = 0; i < warmup; i++) action();
        var times = new double[runs];
        var cpu = new double[runs];
        for (int i = 0; i < runs; i++)
        {
            double c0 = CpuSeconds();
            var sw = Stopwatch.StartNew();
            action();
            times[i] = sw.Elapsed.TotalSeconds;
            cpu[i] = CpuSeconds() - c0;
        }
        return new Result(name, times) { CpuSeconds = cpu };
    }

    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
    private struct MallInfo2 { public nuint arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost; }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "mallinfo2")]
    private static extern MallInfo2 mallinfo2();

    /// <summary>glibc's live native heap (in use + mapped blocks) and its free bytes; (-1, -1) where not glibc.</summary>
    public static (long InUse, long Free) NativeHeap()
    {
        try { var m = mallinfo2(); return ((long)(m.uordblks + m.hblkhd), (long)m.fordblks); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return (-1, -1); }
    }

    /// <summary>NCHW=1: run the SD benchmarks' models in NCHW instead of their default layout.</summary>
    public static bool NchwRequested => Environment.GetEnvironmentVariable("NCHW") == "1";

    public static string Layout(bool channelsLast) => channelsLast ? "channels-last" : "NCHW";

    public static long RssBytes()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmRSS:"))
                return long.Parse(line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
        return Environment.WorkingSet;
    }

    public static long PeakRssBytes()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmHWM:"))
                return long.Parse(line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
        return Environment.WorkingSet;
    }
}
