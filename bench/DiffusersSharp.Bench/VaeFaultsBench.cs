using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Bench;

/// <summary>
/// <c>bench -- vae-faults [--latent 64] [--threads 1] [--variants 0,1,2,3]</c>: the SD VAE decode's page faults (issue 14: the 32 MB mmap
/// threshold around the decode faults every large activation in afresh). Runs each malloc variant in a child process:
/// the default (blocks ≥ 32 MB mapped during the decode), <c>DIFFUSERS_SHARP_LARGE_BLOCK_MB=0</c> (from the heap), and
/// each with glibc's transparent-huge-page tunable (<c>GLIBC_TUNABLES=glibc.malloc.hugetlb=1</c>). Per variant, the
/// second of two decodes: user+system CPU seconds (and the system part: page faults, unmapping), minor page faults, and the peak RSS above the RSS before it.
/// </summary>
public static class VaeFaultsBench
{
    /// <summary>Runs each malloc variant of the decode in a child process and prints its line.</summary>
    /// <param name="only">Indexes of the variants to run (null = all).</param>
    public static int Run(int latent, int threads, int[]? only = null)
    {
        (string Name, Dictionary<string, string> Env)[] variants =
        [
            ("map blocks >= 32 MB (default)", new()),
            ("heap (LARGE_BLOCK_MB=0)", new() { ["DIFFUSERS_SHARP_LARGE_BLOCK_MB"] = "0" }),
            ("map >= 32 MB + THP hugetlb=1", new() { ["GLIBC_TUNABLES"] = "glibc.malloc.hugetlb=1" }),
            ("heap + THP hugetlb=1", new() { ["DIFFUSERS_SHARP_LARGE_BLOCK_MB"] = "0", ["GLIBC_TUNABLES"] = "glibc.malloc.hugetlb=1" }),
        ];
        Console.WriteLine($"SD VAE decode 1x4x{latent}x{latent} -> {latent * 8}², fp32, {threads} thread(s); second decode of each child process");
        var (file, prefix) = ChildProcesses.Self();
        foreach (var (name, env) in variants.Where((_, i) => only is null || only.Contains(i)))
        {
            var psi = new System.Diagnostics.ProcessStartInfo(file) { RedirectStandardOutput = true, UseShellExecute = false };
            foreach (var a in prefix.Concat(["vae-faults-run", "--latent", latent.ToString(), "--threads", threads.ToString()])) psi.ArgumentList.Add(a);
            foreach (var (k, v) in env) psi.Environment[k] = v;
            using var p = System.Diagnostics.Process.Start(psi)!;
            string output = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            string line = output.Split('\n').LastOrDefault(l => l.StartsWith("RESULT ", StringComparison.Ordinal)) ?? $"FAILED (exit {p.ExitCode})";
            Console.WriteLine($"  {name,-32} {line.Replace("RESULT ", "")}");
        }
        return 0;
    }

    /// <summary>The child: two decodes, the second measured.</summary>
    public static int RunOne(int latent, int threads)
    {
        torch.set_num_threads(threads);
        torch.manual_seed(0);
        using var vae = AutoencoderKL.FromConfig(ConfigJson.Parse<AutoencoderKLConfig>(SdBench.Sd15VaeConfig, "sd15 vae"));
        vae.eval();
        using var z = torch.randn(new long[] { 1, 4, latent, latent }, generator: new Generator(3));
        using var mode = torch.inference_mode();
        using (var scope = torch.NewDisposeScope()) vae.Decode(z);
        Runtime.NativeSetup.TrimNativeHeap();
        File.WriteAllText("/proc/self/clear_refs", "5");   // resets VmHWM to the current RSS
        long rss0 = Harness.RssBytes(), faults0 = Harness.MinorFaults();
        double cpu0 = Harness.CpuSeconds();
        var p0 = System.Diagnostics.Process.GetCurrentProcess();
        double sys0 = p0.PrivilegedProcessorTime.TotalSeconds;
        var sw = System.Diagnostics.Stopwatch.StartNew();
        using (var scope = torch.NewDisposeScope()) vae.Decode(z);
        double wall = sw.Elapsed.TotalSeconds, cpu = Harness.CpuSeconds() - cpu0;
        long faults = Harness.MinorFaults() - faults0, peak = Harness.PeakRssBytes() - rss0;
        double sys = System.Diagnostics.Process.GetCurrentProcess().PrivilegedProcessorTime.TotalSeconds - sys0;
        Console.WriteLine($"RESULT CPU {cpu,7:F2} s (system {sys,5:F2} s)  wall {wall,7:F2} s  minor faults {faults,9:N0}  peak RSS +{peak / 1e6,6:F0} MB");
        return 0;
    }
}
