using System.Collections.Concurrent;
using DiffusersSharp.Hub;
using Spectre.Console;

namespace DiffusersSharp.Cli;

/// <summary>
/// Download progress on stderr (stdout carries only the result): one Spectre.Console bar per file with bytes, rate
/// and ETA when stderr is a terminal; one plain line per finished file when stderr is redirected.
/// </summary>
public static class DownloadProgressDisplay
{
    /// <summary>
    /// Runs <paramref name="work"/> with download progress shown on stderr (bars on a terminal, lines otherwise);
    /// returns its result.
    /// </summary>
    public static T Run<T>(CliContext ctx, Func<IProgress<HubDownloadProgress>, Task<T>> work)
    {
        if (UsesPlainLines(ctx.PlainProgress, ReferenceEquals(ctx.Error, Console.Error), Console.IsErrorRedirected))
            return work(new HubProgressPrinter(ctx.Error, interactive: false)).GetAwaiter().GetResult();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(ctx.Error), Ansi = AnsiSupport.Yes, Interactive = InteractionSupport.Yes,
        });
        return console.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(),
                new DownloadedColumn(), new TransferSpeedColumn(), new RemainingTimeColumn())
            .StartAsync(pc => work(new BarProgress(pc)))
            .GetAwaiter().GetResult();
    }

    /// <summary>
    /// Whether download progress is plain lines: it goes to stderr, so on the process's stderr that is decided by stderr
    /// alone (<c>dir=$(diffusers download …)</c> redirects stdout but still shows bars on the terminal; a log file gets no
    /// escape codes); for another writer (in-process) by <paramref name="plainProgress"/>.
    /// </summary>
    public static bool UsesPlainLines(bool plainProgress, bool stderrIsConsole, bool stderrRedirected) =>
        stderrIsConsole ? stderrRedirected : plainProgress;

    /// <summary>A bar per file, created on its first report (reports come from parallel downloads).</summary>
    private sealed class BarProgress(ProgressContext context) : IProgress<HubDownloadProgress>
    {
        private readonly ConcurrentDictionary<string, ProgressTask> _tasks = new();

        public void Report(HubDownloadProgress p)
        {
            var task = _tasks.GetOrAdd(p.FileName, name => context.AddTask(Markup.Escape(name), maxValue: Math.Max(1, p.TotalBytes ?? 1)));
            lock (task)
            {
                if (p.TotalBytes is { } total) task.MaxValue = Math.Max(1, total);
                task.Value = p.BytesDownloaded;
                if (p.Completed)
                {
                    task.Value = task.MaxValue;
                    task.StopTask();
                }
            }
        }
    }
}
