using System.Diagnostics;

namespace DiffusersSharp.Bench;

/// <summary>A plain stopwatch harness: warm-up runs, then timed runs; prints min, median and throughput.</summary>
public static class Harness
{
    public sealed record Result(string Name, double[] Seconds)
    {
        public double Min => Seconds.Min();
        public double Median
        {
            get
            {
                var s = Seconds.OrderBy(x => x).ToArray();
                return s.Length % 2 == 1 ? s[s.Length / 2] : 0.5 * (s[s.Length / 2 - 1] + s[s.Length / 2]);
            }
        }
    }

    public static Result Time(string name, int warmup, int runs, Action action, double? gflop = null)
    {
        for (int i = 0; i < warmup; i++) action();
        var times = new double[runs];
        for (int i = 0; i < runs; i++)
        {
            var sw = Stopwatch.StartNew();
            action();
            times[i] = sw.Elapsed.TotalSeconds;
        }
        var r = new Result(name, times);
        string rate = gflop is { } g ? $"  {g / r.Median,7:F1} GFLOP/s (median)  {g / r.Min,7:F1} GFLOP/s (best)" : "";
        Console.WriteLine($"{name,-44} median {r.Median,8:F3} s   min {r.Min,8:F3} s   runs {runs}{rate}");
        return r;
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
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
        return Environment.WorkingSet;
    }

    public static long PeakRssBytes()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmHWM:"))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
        return Environment.WorkingSet;
    }
}
