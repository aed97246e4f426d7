namespace DiffusersSharp.Cli;

/// <summary>The entry point of the <c>diffusers</c> command.</summary>
public static class Program
{
    /// <summary>
    /// Runs the CLI with the process's arguments; returns the exit code (see <see cref="CliApp.Ok"/>).
    /// </summary>
    public static int Main(string[] args)
    {
        // glibc gives malloc huge pages only when told so at process start: relaunch with its switch (and its thread
        // cache off, so freed tensors' memory is taken again), in place (DiffusersSharp.Runtime.HugePages;
        // DIFFUSERS_SHARP_NO_HUGEPAGES=1 opts out). Not for help, which loads
        // nothing and would only pay the second start (~0.1 s).
        if (args.Length > 0 && !args.Any(a => a is "--help" or "-h" or "-?" or "--version"))
            DiffusersSharp.Runtime.HugePages.RelaunchIfOff();
        // Ctrl+C stops the denoising loop between steps, a download, dataset cats between images (its images are
        // removed) and convert between components; nothing is written (outputs are renamed into place only when
        // complete), and the run ends with "cancelled" (exit code 1). A second Ctrl+C terminates the process.
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
