using System.Globalization;
using DiffusersSharp.Pipelines;
using TorchSharp;

namespace DiffusersSharp.Bench;

/// <summary>The samples of one path: the progress every pipeline call reports to, and the sample after each call.</summary>
internal sealed class MemoryPipelinesSoak(string path) : IProgress<PipelineProgress>
{
    private sealed record Sample(long Step, int Call, long Live, long Total, long Rss, long Managed, long Malloc);

    private readonly List<Sample> _inCall = [];
    private readonly List<Sample> _afterCall = [];
    private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();
    private long _steps;
    private int _call;

    public const string TableHeader =
        "| path | UNet steps | live tensors, step 100 → last | live after calls, first → last | TotalCount, step 100 → last | RSS MB, step 100 → last | RSS growth | glibc in use MB | managed MB |\n" +
        "|---|---|---|---|---|---|---|---|---|";

    /// <summary>In-call samples are taken (false: the short calls after a long one).</summary>
    public bool InCall { get; set; } = true;
    /// <summary>The last call: its last step is sampled too.</summary>
    public bool Final { get; set; }
    /// <summary>
    /// Repeated calls of <see cref="Cycle"/> request kinds: sampled at the last step of each call, and compared at the ends
    /// of cycles (the same request kind at the same step); 0: one long call, sampled every 100 steps.
    /// </summary>
    public int Cycle { get; set; }

    /// <summary>This thread's live tensors (created − disposed on this thread).</summary>
    public static long ThreadLive => DisposeScopeManager.Statistics.ThreadTotalLiveCount;

    public void Report(PipelineProgress value)
    {
        _steps++;
        bool last = value.Step == value.TotalSteps;
        if (!InCall) return;
        if (Cycle > 0 ? last : _steps == 1 || _steps % 100 == 0 || (Final && last))
            Take(_inCall, "step");
    }

    /// <summary>Forgets the samples of a call that failed.</summary>
    public void Restart()
    {
        _inCall.Clear();
        _steps = 0;
    }

    /// <summary>Steps of a call that reports none (the IImageGenerator).</summary>
    public void AddSteps(int n) => _steps += n;

    public void AfterCall()
    {
        Take(_afterCall, "after call");
        _call++;
    }

    public void Note(string line) => Console.WriteLine($"  {path}: {line}");

    private void Take(List<Sample> into, string where)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        var (inUse, _) = Harness.NativeHeap();
        var s = new Sample(_steps, _call, ThreadLive, torch.Tensor.TotalCount, Harness.RssBytes(), GC.GetTotalMemory(false), inUse);
        into.Add(s);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  {where,-10} {s.Step,5}: live {s.Live,5}  TotalCount {s.Total,5}  RSS {s.Rss / 1e6,7:F1} MB  managed {s.Managed / 1e6,6:F1} MB  glibc in use {s.Malloc / 1e6,7:F1} MB  ({_clock.Elapsed.TotalSeconds:F1} s)"));
    }

    /// <summary>
    /// The samples compared: from the first at or after step 100 to the last, at cycle ends when calls repeat, else at
    /// multiples of 100 (the same stage of Heun's and KDPM2's two-stage steps: after their first stage they hold 1-2 tensors more).
    /// </summary>
    private (Sample First, Sample Last) Window(List<Sample> samples)
    {
        var at = Cycle > 0 ? samples.Where(s => (s.Call + 1) % Cycle == 0).ToList()
            : samples.Where(s => s.Step % 100 == 0).DefaultIfEmpty(samples[^1]).ToList();
        return (at.FirstOrDefault(s => s.Step >= 100) ?? at[0], at[^1]);
    }

    /// <summary>Prints the path's verdict and its table row.</summary>
    public void Summary()
    {
        var (first, last) = Window(_inCall.Count > 0 ? _inCall : _afterCall);   // the image generator reports no steps
        var (afterFirst, afterLast) = Cycle > 0 ? Window(_afterCall) : (_afterCall[0], _afterCall[^1]);
        double growth = (last.Rss - first.Rss) * 100.0 / first.Rss;
        var verdict = new List<string>();
        if (last.Live > first.Live || afterLast.Live > afterFirst.Live) verdict.Add("live tensors grow");
        if (last.Total > first.Total || afterLast.Total > afterFirst.Total) verdict.Add("TotalCount grows");
        if (growth >= 5) verdict.Add($"RSS +{growth:F1}%");
        Console.WriteLine($"  {path}: {(verdict.Count == 0 ? "flat" : "LEAK: " + string.Join(", ", verdict))}");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {path} | {_steps} | {first.Live} → {last.Live} | {afterFirst.Live} → {afterLast.Live} | {first.Total} → {last.Total} | " +
            $"{first.Rss / 1e6:F1} → {last.Rss / 1e6:F1} | {(growth >= 0 ? "+" : "")}{growth:F2}% | {first.Malloc / 1e6:F1} → {last.Malloc / 1e6:F1} | " +
            $"{first.Managed / 1e6:F1} → {last.Managed / 1e6:F1} |"));
    }
}
