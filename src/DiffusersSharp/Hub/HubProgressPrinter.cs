namespace DiffusersSharp.Hub;

/// <summary>
/// Progress bars for downloads on a text writer (stderr in the CLI): on a terminal, the file being downloaded is
/// redrawn in place (<c>\r</c>); otherwise only finished files are printed, one line each.
/// </summary>
public sealed class HubProgressPrinter(TextWriter writer, bool interactive) : IProgress<HubDownloadProgress>
{
    private readonly object _gate = new();
    private int _lastWidth;

    /// <summary>Progress on stderr, redrawn in place unless stderr is redirected.</summary>
    public static HubProgressPrinter ForConsole() => new(Console.Error, !Console.IsErrorRedirected);

    /// <summary>Redraws the line of the file in progress on a terminal; otherwise prints a line per finished file.</summary>
    public void Report(HubDownloadProgress value)
    {
        lock (_gate)
        {
            string line = value.ToString();
            if (interactive)
            {
                writer.Write("\r" + line.PadRight(_lastWidth));
                _lastWidth = value.Completed ? 0 : line.Length;
                if (value.Completed) writer.WriteLine();
            }
            else if (value.Completed)
            {
                writer.WriteLine(line);
            }
            writer.Flush();
        }
    }
}
