using System.CommandLine;

namespace DiffusersSharp.Cli;

/// <summary>
/// The <c>diffusers</c> command line: <c>generate</c>, <c>info</c>, <c>schedulers</c>, <c>download</c>, <c>cache list|rm</c>, <c>convert</c>, <c>serve</c>. Exit codes: 0 success,
/// 1 a user error (bad option, missing model, unwritable output: one message on stderr, no stack trace),
/// 2 an unexpected failure (message and stack trace on stderr).
/// </summary>
public static class CliApp
{
    /// <summary>The exit codes: 0 success, 1 a user error (one line on stderr), 2 an unexpected failure.</summary>
    public const int Ok = 0, UserError = 1, Unexpected = 2;

    /// <summary>Runs the CLI in-process; <paramref name="plainProgress"/> prints progress as lines instead of a live bar.</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr, bool plainProgress = true,
        CancellationToken cancellationToken = default)
    {
        var ctx = new CliContext(stdout, stderr, plainProgress, cancellationToken);
        var root = new RootCommand("diffusers: Hugging Face diffusers pipelines in .NET (DiffusersSharp)")
        {
            GenerateCommand.Create(ctx),
            InfoCommand.Create(ctx),
            SchedulersCommand.Create(ctx),
            DownloadCommand.Create(ctx),
            CacheCommand.Create(ctx),
            DatasetCommand.Create(ctx),
            TrainCommand.Create(ctx),
            ConvertCommand.Create(ctx),
            ServeCommand.Create(ctx),
        };
        var config = new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false };
        try
        {
            var parsed = root.Parse(args);
            if (parsed.Errors.Count > 0)
            {
                stderr.WriteLine($"error: {ParseErrors.Describe(parsed)}");
                return UserError;
            }
            return parsed.Invoke(config);
        }
        catch (Exception e)
        {
            return Fail(e, stderr);
        }
    }

    /// <summary>
    /// A message as one line: line breaks (the Hub's messages, like huggingface_hub's, have paragraphs) become one space,
    /// other control characters read from files or options are escaped (<c>\u001b</c>).
    /// </summary>
    public static string OneLine(string message) =>
        Loading.Printable.Text(System.Text.RegularExpressions.Regex.Replace(message.Trim(), @"\s*[\r\n]+\s*", " "), int.MaxValue);

    /// <summary>Maps an exception to an exit code, writing the message (and, when unexpected, the stack trace).</summary>
    public static int Fail(Exception e, TextWriter stderr)
    {
        switch (e)
        {
            case DiffusersException or UserException:
                // one line: names and values read from files or given as options are shown with control characters escaped
                stderr.WriteLine($"error: {OneLine(e.Message)}");
                return UserError;
            case OperationCanceledException:
                stderr.WriteLine("cancelled");
                return UserError;
            case var _ when NativeFailures.OutOfMemory(e) is { } oom:
                stderr.WriteLine($"error: {oom}");
                return UserError;
            default:
                stderr.WriteLine($"unexpected error: {e.GetType().Name}: {e.Message}");
                stderr.WriteLine(e.StackTrace);
                return Unexpected;
        }
    }
}

/// <summary>What the commands write to and how they report progress.</summary>
public sealed record CliContext(TextWriter Out, TextWriter Error, bool PlainProgress, CancellationToken CancellationToken)
{
    /// <summary>Writes <c>warning: {message}</c> to <see cref="Error"/>: the <c>LoadOptions.Log</c> of every load the commands make.</summary>
    public void Warn(string message) => Error.WriteLine("warning: " + message);
}
