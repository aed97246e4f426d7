using System.CommandLine;

namespace DiffusersSharp.Cli;

/// <summary>
/// The <c>diffusers</c> command line: <c>generate</c>, <c>info</c>, <c>schedulers</c>, <c>download</c>, <c>cache list|rm</c>, <c>convert</c>. Exit codes: 0 success,
/// 1 a user error (bad option, missing model, unwritable output: one message on stderr, no stack trace),
/// 2 an unexpected failure (message and stack trace on stderr).
/// </summary>
public static class CliApp
{
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
        };
        var config = new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false };
        try
        {
            return root.Parse(args).Invoke(config);
        }
        catch (Exception e)
        {
            return Fail(e, stderr);
        }
    }

    /// <summary>Maps an exception to an exit code, writing the message (and, when unexpected, the stack trace).</summary>
    public static int Fail(Exception e, TextWriter stderr)
    {
        switch (e)
        {
            case DiffusersException or UserException:
                stderr.WriteLine($"error: {e.Message}");
                return UserError;
            case OperationCanceledException:
                stderr.WriteLine("cancelled");
                return UserError;
            default:
                stderr.WriteLine($"unexpected error: {e.GetType().Name}: {e.Message}");
                stderr.WriteLine(e.StackTrace);
                return Unexpected;
        }
    }
}

/// <summary>What the commands write to and how they report progress.</summary>
public sealed record CliContext(TextWriter Out, TextWriter Error, bool PlainProgress, CancellationToken CancellationToken);

/// <summary>A mistake in the command line itself (exit code 1).</summary>
public sealed class UserException(string message) : Exception(message);
