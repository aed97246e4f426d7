using System.Diagnostics;
using DiffusersSharp.Pipelines;
using TorchSharp;

namespace DiffusersSharp.Tests.Fuzz;

/// <summary>
/// One fuzz case run through the library instead of the CLI (a class the CLI does not run, or a loader on its own):
/// a golden model copied into a <see cref="FuzzWorkspace"/>, one mutation, and a load-and-run that returns the
/// output (or null when it only loads).
/// </summary>
/// <param name="Name">What was changed, for the report.</param>
/// <param name="BaseModel">The golden model folder copied into the workspace.</param>
/// <param name="Mutate">Changes the workspace's files.</param>
/// <param name="Run">Loads and runs; the returned tensor is checked and disposed.</param>
internal sealed record LoaderCase(string Name, string BaseModel, Action<FuzzWorkspace> Mutate, Func<FuzzWorkspace, torch.Tensor?> Run)
{
    /// <summary>Words the error may name instead of a path inside the workspace (the key changed).</summary>
    public string[] Names { get; init; } = [];

    public override string ToString() => Name;
}

/// <summary>
/// Runs a <see cref="LoaderCase"/> and checks what every library load must do, whatever its input: return a finite
/// output, or throw a <see cref="DiffusersException"/> (<see cref="ConfigException"/>, <see cref="WeightsException"/>)
/// whose message names a file inside the workspace or the key, or a <see cref="NonFiniteLatentsException"/> (the
/// denoising loop's own check, naming the step and the scheduler, for a config diffusers also runs into NaN); never another
/// exception type, never more than <see cref="FuzzRunner.TimeLimit"/>.
/// </summary>
internal static class LoaderFuzzRunner
{
    /// <summary>Null when the case behaved, else what went wrong (one paragraph).</summary>
    public static string? Check(LoaderCase c)
    {
        using var ws = new FuzzWorkspace(c.BaseModel);
        c.Mutate(ws);
        var clock = Stopwatch.StartNew();
        var run = Task.Factory.StartNew(() =>
        {
            using var scope = torch.NewDisposeScope();
            using var output = c.Run(ws);
            if (output is null) return (string?)null;
            using var finite = torch.isfinite(output).all();
            return finite.item<bool>() ? null : "returned non-finite values";
        }, TaskCreationOptions.LongRunning);
        try
        {
            if (!run.Wait(FuzzRunner.TimeLimit))
                return $"{c.Name}: still running after {FuzzRunner.TimeLimit.TotalSeconds} s (hang?)";
        }
        catch (AggregateException) when (run.IsFaulted)
        {
        }
        string Fail(string what, Exception? e = null) =>
            $"{c.Name}: {what} [{clock.Elapsed.TotalSeconds:F1} s]" + (e is null ? "" : $"\n  {e.GetType().Name}: {e.Message.Replace("\n", "\n    ")}\n  at {FirstFrames(e)}");
        if (!run.IsFaulted) return run.Result is { } bad ? Fail(bad) : null;
        var error = run.Exception!.InnerException!;
        if (error is not DiffusersException)
            return Fail($"threw {error.GetType().Name}, not a DiffusersException", error);
        // (control characters from a file are allowed here: the CLI prints messages through Loading.Printable)
        string message = error.Message;
        if (error is NonFiniteLatentsException) return null;
        bool named = message.Contains(ws.Root, StringComparison.Ordinal) || c.Names.Any(n => message.Contains(n, StringComparison.Ordinal));
        return named ? null : Fail("the message names no file of the model or key", error);
    }

    private static string FirstFrames(Exception e) =>
        string.Join(" < ", (e.StackTrace ?? "").Split('\n').Take(3).Select(l => l.Trim().Replace("at ", "")));
}
