using System.Diagnostics;

namespace DiffusersSharp.Bench;

/// <summary>Runs this benchmark program (or another command) as a child process and reads what it prints.</summary>
public static class ChildProcesses
{
    /// <summary>
    /// Runs this program again with <paramref name="args"/> (the apphost, or <c>dotnet bench.dll</c>), echoing its output
    /// lines when <paramref name="echo"/>; returns the exit code and the lines.
    /// </summary>
    public static (int Code, List<string> Lines) RunSelf(IReadOnlyList<string> args, bool echo)
    {
        var (file, prefix) = Self();
        return Run(file, [.. prefix, .. args], echo);
    }

    /// <summary>The command that starts this program: (file, leading arguments).</summary>
    public static (string File, string[] Prefix) Self()
    {
        string process = Environment.ProcessPath ?? "dotnet";
        string dll = typeof(ChildProcesses).Assembly.Location;
        return Path.GetFileNameWithoutExtension(process) == "dotnet" ? (process, [dll]) : (process, []);
    }

    /// <summary>Runs <paramref name="file"/> with <paramref name="args"/>; returns the exit code and its output lines.</summary>
    public static (int Code, List<string> Lines) Run(string file, IReadOnlyList<string> args, bool echo)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        var lines = new List<string>();
        using var p = new Process { StartInfo = psi };
        p.OutputDataReceived += (_, e) => { if (e.Data is null) return; lock (lines) lines.Add(e.Data); if (echo) Console.WriteLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is null) return; if (echo) Console.Error.WriteLine(e.Data); };
        p.Start();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        p.WaitForExit();
        return (p.ExitCode, lines);
    }

    /// <summary>
    /// Takes out of a timed command's environment what this program's own huge-page relaunch added
    /// (<see cref="DiffusersSharp.Runtime.HugePages"/>), so that the command starts as it would from a user's shell
    /// (the CLI then relaunches itself, and that second start is part of its time).
    /// </summary>
    private static void AsUsersStart(ProcessStartInfo psi)
    {
        if (!psi.Environment.Remove("DIFFUSERS_SHARP_RELAUNCHED")) return;
        if (!psi.Environment.TryGetValue("GLIBC_TUNABLES", out var tunables) || tunables is null) return;
        string rest = string.Join(':', tunables.Split(':').Where(t => t != DiffusersSharp.Runtime.HugePages.Tunable + "=1" &&
                                                                       t != DiffusersSharp.Runtime.HugePages.NoThreadCache));
        if (rest.Length == 0) psi.Environment.Remove("GLIBC_TUNABLES");
        else psi.Environment["GLIBC_TUNABLES"] = rest;
    }

    /// <summary>
    /// Runs <paramref name="file"/> and returns its exit code with the user and system CPU seconds it used (from
    /// <c>/proc/self/stat</c>'s cutime/cstime deltas: the children's times once reaped) and its wall time.
    /// </summary>
    public static (int Code, double UserCpu, double SysCpu, double Wall) Measure(string file, IReadOnlyList<string> args,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        AsUsersStart(psi);
        if (environment is not null) foreach (var (k, v) in environment) psi.Environment[k] = v;
        var (u0, s0) = ChildrenCpu();
        var sw = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        _ = p.StandardOutput.ReadToEndAsync();
        _ = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        double wall = sw.Elapsed.TotalSeconds;
        var (u1, s1) = ChildrenCpu();
        return (p.ExitCode, u1 - u0, s1 - s0, wall);
    }

    /// <summary>
    /// Runs <paramref name="file"/> and returns the wall seconds from its start to the first output line that starts with
    /// <paramref name="prefix"/> (NaN if none) with that line, and the exit code.
    /// </summary>
    public static (int Code, double Seconds, string? Line) TimeToLine(string file, IReadOnlyList<string> args, string prefix)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        AsUsersStart(psi);
        var sw = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        _ = p.StandardError.ReadToEndAsync();
        double seconds = double.NaN;
        string? found = null;
        while (p.StandardOutput.ReadLine() is { } line)
            if (found is null && line.StartsWith(prefix, StringComparison.Ordinal)) (seconds, found) = (sw.Elapsed.TotalSeconds, line);
        p.WaitForExit();
        return (p.ExitCode, seconds, found);
    }

    /// <summary>cutime and cstime of this process (reaped children's CPU), in seconds.</summary>
    private static (double User, double Sys) ChildrenCpu()
    {
        string stat = File.ReadAllText("/proc/self/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        // after "pid (comm) ": field 3 is state at index 0, so utime (14) is index 11, cutime (16) index 13, cstime (17) index 14
        const double Hz = 100.0; // sysconf(_SC_CLK_TCK) on Linux
        return (long.Parse(fields[13]) / Hz, long.Parse(fields[14]) / Hz);
    }
}
