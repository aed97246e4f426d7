using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Bench;

/// <summary>
/// Issue 14's memory rule for one model load: peak RSS ≤ 1.3× the weights the model holds. Loads one component of a
/// random-weight fp32 e2e folder (<see cref="E2eFolders"/>, written once under /tmp) with <c>FromPretrained</c> in a
/// child process, so nothing else counts in its peak, and prints the peak RSS (VmHWM), RssAnon / RssFile at their
/// highest while loading (sampled every 10 ms) and after, the weights' bytes and the ratio.
/// </summary>
public static class LoadMemoryBench
{
    private static readonly string[] Models = ["sd15-unet", "sd15-text", "sd15-vae", "sdxl-unet"];

    /// <summary>The parent: makes sure the folder exists, then loads in a child process.</summary>
    public static int Run(string model, string dtype)
    {
        if (!Models.Contains(model)) throw new ArgumentException($"unknown model '{model}' ({string.Join(", ", Models)})");
        string family = model.Split('-')[0];
        var scenario = E2eConfigs.Scenarios.First(s => s.Family == family);
        string folder = E2eFolders.Ensure(scenario, quick: false, E2eConfigs.RepoRoot());
        Console.WriteLine($"load-memory: {model} as {dtype} from {folder} (child process)");
        var (code, _) = ChildProcesses.RunSelf(["load-memory-run", "--folder", folder, "--model", model, "--dtype", dtype], echo: true);
        return code;
    }

    /// <summary>The child: one load, then the numbers.</summary>
    public static int RunOne(string folder, string model, string dtype)
    {
        ScalarType? dt = dtype switch { "fp32" => null, "bf16" => ScalarType.BFloat16, "fp16" => ScalarType.Float16, _ => throw new ArgumentException($"unknown dtype '{dtype}'") };
        var options = new LoadOptions { Dtype = dt };
        var before = Status();
        long peakAnon = 0, peakFile = 0;
        using var stop = new CancellationTokenSource();
        var sampler = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                var s = Status();
                peakAnon = Math.Max(peakAnon, s.Anon);
                peakFile = Math.Max(peakFile, s.File);
                Thread.Sleep(10);
            }
        });
        var sw = System.Diagnostics.Stopwatch.StartNew();
        nn.Module m = model switch
        {
            "sd15-unet" or "sdxl-unet" => UNet2DConditionModel.FromPretrained(folder, "unet", options),
            "sd15-text" => CLIPTextModel.FromPretrained(folder, "text_encoder", options),
            "sd15-vae" => AutoencoderKL.FromPretrained(folder, "vae", options),
            _ => throw new ArgumentException(model),
        };
        double seconds = sw.Elapsed.TotalSeconds;
        stop.Cancel();
        sampler.Wait();
        var after = Status();
        long weights = m.parameters().Sum(p => p.numel() * p.element_size()) + m.buffers().Sum(b => b.numel() * b.element_size());
        string dtypes = string.Join(",", m.parameters().Select(p => p.dtype).Distinct());
        Console.WriteLine($"  loaded in {seconds:F1} s; weights {weights / 1e6:F0} MB ({dtypes})");
        Console.WriteLine($"  before load: RSS {before.Rss / 1e6:F0} MB (anon {before.Anon / 1e6:F0}, file {before.File / 1e6:F0})");
        Console.WriteLine($"  while loading (10 ms samples): RssAnon max {peakAnon / 1e6:F0} MB, RssFile max {peakFile / 1e6:F0} MB");
        Console.WriteLine($"  after load: RSS {after.Rss / 1e6:F0} MB (anon {after.Anon / 1e6:F0}, file {after.File / 1e6:F0})");
        Console.WriteLine($"  peak RSS (VmHWM) {after.Hwm / 1e6:F0} MB = {(double)after.Hwm / weights:F2}x the weights; "
            + $"above the start {(after.Hwm - before.Rss) / 1e6:F0} MB = {(double)(after.Hwm - before.Rss) / weights:F2}x");
        Console.WriteLine($"RESULT {model} {dtype} weights_mb {weights / 1e6:F0} peak_mb {after.Hwm / 1e6:F0} ratio {(double)after.Hwm / weights:F2} "
            + $"anon_max_mb {peakAnon / 1e6:F0} file_max_mb {peakFile / 1e6:F0} seconds {seconds:F1}");
        m.Dispose();
        return 0;
    }

    private static (long Rss, long Hwm, long Anon, long File) Status()
    {
        long rss = 0, hwm = 0, anon = 0, file = 0;
        foreach (var line in System.IO.File.ReadLines("/proc/self/status"))
        {
            long Kb() => long.Parse(line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
            if (line.StartsWith("VmRSS:")) rss = Kb();
            else if (line.StartsWith("VmHWM:")) hwm = Kb();
            else if (line.StartsWith("RssAnon:")) anon = Kb();
            else if (line.StartsWith("RssFile:")) file = Kb();
        }
        return (rss, hwm, anon, file);
    }
}
