using System.Globalization;
using DiffusersSharp.Pipelines;
using Spectre.Console;

namespace DiffusersSharp.Cli;

/// <summary>
/// Step progress: a Spectre.Console bar with s/step and ETA on a terminal; plain lines when the output is
/// redirected (Spectre renders nothing live there). The bar is redrawn on the calling thread at each step
/// (no auto-refresh thread): a thread that allocates while torch runs can trigger a collection that finalizes
/// a TorchSharp Scalar still in use by a native call where the Scalar guard is off (see <see cref="DiffusersSharp.Runtime.ScalarGuard"/>).
/// </summary>
public static class ProgressDisplay
{
    /// <summary>
    /// Runs <paramref name="work"/> with a denoising progress bar of <paramref name="expectedSteps"/> steps on
    /// stderr; returns its result.
    /// </summary>
    public static T Run<T>(CliContext ctx, int expectedSteps, Func<IProgress<PipelineProgress>, T> work) =>
        Run(ctx, "denoising", expectedSteps, work, p => (p.Step, p.TotalSteps,
            string.Create(CultureInfo.InvariantCulture, $"step {p.Step}/{p.TotalSteps} · {p.SecondsPerStep:0.000} s/step"), Line(p)));

    /// <summary>
    /// Runs <paramref name="work"/> with one bar (the task <paramref name="taskName"/>, <paramref name="expectedSteps"/>
    /// long until the first report says) on a terminal, or plain lines when the output is redirected; <paramref name="view"/>
    /// gives each report's step, total, bar description and plain line. Returns the work's result.
    /// </summary>
    internal static T Run<TReport, T>(CliContext ctx, string taskName, int expectedSteps, Func<IProgress<TReport>, T> work,
        Func<TReport, (long Step, long Total, string Description, string Line)> view)
    {
        if (ctx.PlainProgress) return work(new LineProgress<TReport>(ctx.Out, view));
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(ctx.Out) });
        T result = default!;
        console.Progress()
            .AutoClear(false)
            .AutoRefresh(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(),
                new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(pc =>
            {
                var task = pc.AddTask(taskName, maxValue: expectedSteps);
                pc.Refresh();
                result = work(new BarProgress<TReport>(pc, task, view));
            });
        return result;
    }

    private sealed class LineProgress<TReport>(TextWriter output, Func<TReport, (long, long, string, string Line)> view) : IProgress<TReport>
    {
        public void Report(TReport p) => output.WriteLine(view(p).Line);
    }

    private sealed class BarProgress<TReport>(ProgressContext context, ProgressTask task,
        Func<TReport, (long Step, long Total, string Description, string)> view) : IProgress<TReport>
    {
        public void Report(TReport p)
        {
            var (step, total, description, _) = view(p);
            task.MaxValue = total;
            task.Value = step;
            task.Description = description;
            _throttle.Refresh(context, step == total);
        }

        private readonly RefreshThrottle _throttle = new();
    }

    /// <summary>Redraws at most ten times a second (and at the last step), on the caller's thread.</summary>
    private sealed class RefreshThrottle
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
