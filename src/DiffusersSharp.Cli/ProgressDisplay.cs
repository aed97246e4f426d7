using System.Globalization;
using DiffusersSharp.Pipelines;
using Spectre.Console;

namespace DiffusersSharp.Cli;

/// <summary>
/// Step progress: a Spectre.Console bar with s/step and ETA on a terminal; plain lines when the output is
/// redirected (Spectre renders nothing live there). The bar is redrawn on the calling thread at each step
/// (no auto-refresh thread): a thread that allocates while torch runs can trigger a collection that finalizes
/// a TorchSharp Scalar still in use by a native call (see <see cref="DiffusersSharp.Runtime.NoGcRegion"/>).
/// </summary>
public static class ProgressDisplay
{
    /// <summary>
    /// Runs <paramref name="work"/> with a denoising progress bar of <paramref name="expectedSteps"/> steps on
    /// stderr; returns its result.
    /// </summary>
    public static T Run<T>(CliContext ctx, int expectedSteps, Func<IProgress<PipelineProgress>, T> work)
    {
        if (ctx.PlainProgress) return work(new LineProgress(ctx.Out));
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(ctx.Out) });
        T result = default!;
        console.Progress()
            .AutoClear(false)
            .AutoRefresh(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(),
                new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(pc =>
            {
                var task = pc.AddTask("denoising", maxValue: expectedSteps);
                pc.Refresh();
                result = work(new BarProgress(pc, task));
            });
        return result;
    }

    private sealed class LineProgress(TextWriter output) : IProgress<PipelineProgress>
    {
        public void Report(PipelineProgress p) => output.WriteLine(Line(p));
    }

    private sealed class BarProgress(ProgressContext context, ProgressTask task) : IProgress<PipelineProgress>
    {
        public void Report(PipelineProgress p)
        {
            task.MaxValue = p.TotalSteps;
            task.Value = p.Step;
            task.Description = string.Create(CultureInfo.InvariantCulture, $"step {p.Step}/{p.TotalSteps} · {p.SecondsPerStep:0.000} s/step");
            _throttle.Refresh(context, p.Step == p.TotalSteps);
        }

        private readonly RefreshThrottle _throttle = new();
    }

    /// <summary>Redraws at most ten times a second (and at the last step), on the caller's thread.</summary>
    internal sealed class RefreshThrottle
    {
        private readonly System.Diagnostics.Stopwatch _since = System.Diagnostics.Stopwatch.StartNew();

        public void Refresh(ProgressContext context, bool force)
        {
            if (!force && _since.ElapsedMilliseconds < 100) return;
            context.Refresh();
            _since.Restart();
        }
    }

    /// <summary>"step 3/10  t=700  0.123 s/step  ETA 0:00:01".</summary>
    public static string Line(PipelineProgress p) => string.Create(CultureInfo.InvariantCulture,
        $"step {p.Step}/{p.TotalSteps}  t={p.Timestep:0.###}  {p.SecondsPerStep:0.000} s/step  ETA {p.Remaining:h\\:mm\\:ss}");
}
