using System.Diagnostics;
using DiffusersSharp.Runtime;
using TorchSharp;

namespace DiffusersSharp.Bench;

/// <summary>
/// <c>bench -- symbol-scan [--runs 5]</c>: what the oneDNN cache repair's symbol lookup costs a process's first model
/// pass (<see cref="OneDnnCaches"/>). Each run is a fresh process (the mapped symbol tables' pages come in anew, from
/// the page cache) that times one lookup in libtorch_cpu.so: "names" compares the name of every object and function
/// (the lookup before 2026-12-05: the whole 79 MB .strtab read), "queries" only those of the type and size asked for
/// (<see cref="ElfSymbol"/>), as the repair now does. Alternating; medians.
/// </summary>
public static class SymbolScanBench
{
    /// <summary>The orchestrator: alternating child processes, one lookup each.</summary>
    public static int Run(int runs)
    {
        var times = new Dictionary<string, List<double>> { ["names"] = [], ["queries"] = [] };
        for (int r = 0; r < runs; r++)
            foreach (string way in times.Keys)
            {
                var (code, lines) = ChildProcesses.RunSelf(["symbol-scan-run", way], echo: false);
                string? line = lines.LastOrDefault(l => l.StartsWith("SCAN ", StringComparison.Ordinal));
                if (code != 0 || line is null) { Console.WriteLine($"{way}: FAILED (exit {code})"); return 1; }
                times[way].Add(double.Parse(line.Split(' ')[2], System.Globalization.CultureInfo.InvariantCulture));
                Console.WriteLine(line);
            }
        foreach (var (way, list) in times)
            Console.WriteLine($"symbol lookup by {way,-7}: median {Harness.Median(list),7:F1} ms  (runs: {string.Join(", ", list.Select(t => t.ToString("F1")))})");
        return 0;
    }

    /// <summary>One lookup, in the child process.</summary>
    public static int RunOne(string way)
    {
        using (torch.zeros(1)) { }   // libtorch loaded
        var (path, _) = OneDnnCaches.MappedLibTorch();
        var clock = Stopwatch.StartNew();
        var found = way == "names"
            ? ElfSymbols.Read(path, [OneDnnCaches.CpuObject, OneDnnCaches.CpuGuard, OneDnnCaches.GlobalContext])
            : ElfSymbols.Read(path, OneDnnCaches.Symbols);
        double ms = clock.Elapsed.TotalMilliseconds;
        Console.WriteLine($"SCAN {way} {ms.ToString("F1", System.Globalization.CultureInfo.InvariantCulture)} ms, found {found.Count} of 3: " +
                          string.Join(", ", found.OrderBy(p => p.Key).Select(p => $"{p.Key[..Math.Min(24, p.Key.Length)]}=0x{p.Value:x}")));
        return found.Count == 3 ? 0 : 1;
    }
}
