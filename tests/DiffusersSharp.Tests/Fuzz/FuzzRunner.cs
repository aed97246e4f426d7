using System.Diagnostics;
using DiffusersSharp.Cli;
using DiffusersSharp.Imaging;
using DiffusersSharp.Tests.Cli;
using TorchSharp;

namespace DiffusersSharp.Tests.Fuzz;

/// <summary>
/// Runs a <see cref="FuzzCase"/> and checks what every run of the CLI must do, whatever its input: exit 0 with a
/// finite output, or exit 1 with one line on stderr (<c>error: …</c>) that names a file inside the workspace, the key
/// or the option; never exit 2, never more than <see cref="TimeLimit"/>, never more than <see cref="MemoryLimitBytes"/>
/// of resident memory above what the process held before, never a byte of the files beside the model read into the
/// output, never the existing output file touched by a run that failed.
/// </summary>
internal static class FuzzRunner
{
    public static readonly TimeSpan TimeLimit = TimeSpan.FromSeconds(30);
    public const long MemoryLimitBytes = 2L << 30;

    /// <summary>Null when the case behaved, else what went wrong (one paragraph).</summary>
    public static string? Check(FuzzCase c)
    {
        using var ws = new FuzzWorkspace(c.BaseModel);
        c.Mutate(ws);
        string[] args = c.Args(ws);
        var filesBefore = Directory.GetFiles(ws.Root).Order(StringComparer.Ordinal).ToList();
        long rssBefore = ResetPeakRss();
        var clock = Stopwatch.StartNew();
        var run = Task.Factory.StartNew(() => CliRun.Run(args), TaskCreationOptions.LongRunning);
        if (!run.Wait(TimeLimit))
            return $"{c.Name}: still running after {TimeLimit.TotalSeconds} s (hang?)";
        var (code, stdout, stderr) = run.Result;
        double seconds = clock.Elapsed.TotalSeconds;
        long peak = PeakRss();
        string Fail(string what) => $"{c.Name}: {what} [exit {code}, {seconds:F1} s]\n  args: {string.Join(' ', args)}\n  stderr: {Indent(stderr)}";

        if (rssBefore > 0 && peak - rssBefore > MemoryLimitBytes)
            return Fail($"resident memory grew by {(peak - rssBefore) / 1e9:F1} GB (limit {MemoryLimitBytes / 1e9:F1} GB)");
        if (stdout.Contains(FuzzWorkspace.OutsideMarker) || stderr.Contains(FuzzWorkspace.OutsideMarker))
            return Fail("a file outside the model folder was read");
        string? output = args.Contains(ws.OutputPng) ? ws.OutputPng : args.Contains(ws.OutputNpy) ? ws.OutputNpy : null;
        switch (code)
        {
            case CliApp.Ok:
                if (output is null) return Untouched(ws) is { } touched ? Fail(touched) : null; // info: nothing written
                return CheckOutput(output) is { } bad ? Fail(bad) : null;
            case CliApp.UserError:
            {
                var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)
                    .Select(l => l.TrimEnd('\r')).Where(l => !l.StartsWith("warning: ", StringComparison.Ordinal)).ToList();
                if (lines.Count != 1 || !lines[0].StartsWith("error: ", StringComparison.Ordinal))
                    return Fail("exit 1 must come with exactly one line 'error: …' on stderr");
                string line = lines[0];
                if (line.Any(ch => char.IsControl(ch)))
                    return Fail("the error line holds control characters");
                bool named = line.Contains(ws.Root, StringComparison.Ordinal)
                             || c.Names.Any(n => line.Contains(n, StringComparison.Ordinal))
                             || args.Any(a => a.StartsWith("--", StringComparison.Ordinal)
                                              && (line.Contains(a, StringComparison.Ordinal) || Parameter(a) is { } p && line.Contains(p, StringComparison.Ordinal)));
                if (!named)
                    return Fail("the error names no file of the model, key or option");
                if (Untouched(ws) is { } touchedByFailure) return Fail(touchedByFailure);
                var left = Directory.GetFiles(ws.Root).Except(filesBefore).ToList();
                if (left.Count > 0)
                    return Fail($"files left behind: {string.Join(", ", left.Select(Path.GetFileName))}");
                return null;
            }
            default:
                return Fail($"exit code {code}");
        }
    }

    /// <summary>The library parameter an option sets, which the library's own messages name (<c>--steps</c>: num_inference_steps).</summary>
    private static string? Parameter(string option) => option switch
    {
        "--steps" => "num_inference_steps",
        "--clip-skip" => "clip_skip",
        "--strength" => "strength",
        "--guidance" => "guidance_scale",
        "--guidance-rescale" => "guidance_rescale",
        "--init-image" => "init image",
        "--mask" => "mask",
        "--noise-level" => "noise_level",
        "--batch" => "batch size",
        _ => null,
    };

    private static string? Untouched(FuzzWorkspace ws)
    {
        foreach (var o in new[] { ws.OutputNpy, ws.OutputPng })
            if (!File.ReadAllBytes(o).SequenceEqual(FuzzWorkspace.Sentinel)
                || File.GetLastWriteTimeUtc(o) != new DateTime(2001, 1, 1, 0, 0, 0, DateTimeKind.Utc))
                return $"the existing output {Path.GetFileName(o)} was touched by a run that did not write it";
        return null;
    }

    private static string? CheckOutput(string output)
    {
        if (File.ReadAllBytes(output).SequenceEqual(FuzzWorkspace.Sentinel)) return "exit 0 but the output was not written";
        if (output.EndsWith(".npy", StringComparison.Ordinal))
        {
            using var a = NpyFile.Read(output);
            using var finite = torch.isfinite(a).all();
            return finite.item<bool>() ? null : "exit 0 with non-finite values in the .npy output";
        }
        var img = Image.Load(output);
        return img.Width > 0 ? null : "exit 0 with an unreadable image";
    }

    private static string Indent(string s) => s.TrimEnd().Replace("\n", "\n    ");

    /// <summary>Resets the kernel's peak-RSS counter (Linux) and returns the current RSS, or 0 where unknown.</summary>
    private static long ResetPeakRss()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return Status("VmRSS:");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return 0;
        }
    }

    private static long PeakRss() => Status("VmHWM:");

    private static long Status(string key)
    {
        if (!File.Exists("/proc/self/status")) return 0;
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith(key, StringComparison.Ordinal))
                return long.Parse(line[key.Length..].Trim().Split(' ')[0]) * 1024;
        return 0;
    }
}
