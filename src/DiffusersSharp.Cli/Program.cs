namespace DiffusersSharp.Cli;

/// <summary>The entry point of the <c>diffusers</c> command.</summary>
public static class Program
{
    /// <summary>
    /// Runs the CLI with the process's arguments; returns the exit code (see <see cref="CliApp.Ok"/>).
    /// </summary>
    public static int Main(string[] args)
    {
        // Ctrl+C stops the denoising loop between steps; nothing is written (outputs are renamed into place only
        // when complete). A second Ctrl+C terminates the process.
        using var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            if (cts.IsCancellationRequested) return;
            e.Cancel = true;
            cts.Cancel();
        };
        return CliApp.Run(args, Console.Out, Console.Error, Console.IsOutputRedirected, cts.Token);
    }
}
