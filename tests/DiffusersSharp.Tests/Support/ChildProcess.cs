using System.Diagnostics;

namespace DiffusersSharp.Tests.Support;

/// <summary>Runs this test assembly's <see cref="TestProgram"/> in a child process (<c>dotnet DiffusersSharp.Tests.dll ...</c>).</summary>
internal static class ChildProcess
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr, bool TimedOut, double Seconds)
    {
        /// <summary>The signal that killed the child (.NET reports a signalled process as 128 + the signal), else 0.</summary>
        public int Signal => !TimedOut && ExitCode > 128 && ExitCode < 160 ? ExitCode - 128 : 0;

        /// <summary>The last run the child started (<c>run SPEC</c>) without finishing it (<c>ok SPEC ...</c>).</summary>
        public string? UnfinishedRun
        {
            get
            {
                var lines = Stdout.Split('\n', StringSplitOptions.TrimEntries);
                var started = lines.LastOrDefault(l => l.StartsWith("run ", StringComparison.Ordinal))?[4..];
                return started is not null && !lines.Any(l => l.StartsWith($"ok {started} ", StringComparison.Ordinal)) ? started : null;
            }
        }

        public string Describe()
        {
            string how = TimedOut ? $"timed out after {Seconds:F0} s"
                : Signal != 0 ? $"was killed by signal {Signal} ({SignalName(Signal)}, exit code {ExitCode})"
                : $"exited with code {ExitCode}";
            string where = UnfinishedRun is { } r ? $" during run {r}" : "";
            return $"the child process {how}{where} after {Seconds:F1} s.\nstdout:\n{Tail(Stdout)}\nstderr:\n{Tail(Stderr)}";
        }

        private static string Tail(string s) => s.Length <= 3000 ? s : "..." + s[^3000..];

        private static string SignalName(int signal) => signal switch
        {
            4 => "SIGILL",
            6 => "SIGABRT",
            7 => "SIGBUS",
            8 => "SIGFPE",
            9 => "SIGKILL",
            11 => "SIGSEGV",
            _ => "signal " + signal,
        };
    }

    public static Result Run(TimeSpan timeout, params string[] args) => Run(timeout, new Dictionary<string, string?>(), args);

    /// <summary>As <see cref="Run(TimeSpan, string[])"/>, with <paramref name="environment"/> set (a null value removes the variable).</summary>
    public static Result Run(TimeSpan timeout, IReadOnlyDictionary<string, string?> environment, params string[] args)
    {
        var psi = new ProcessStartInfo(DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.Environment["DIFFUSERS_SHARP_TESTS_CHILD"] = "1";
        foreach (var (name, value) in environment)
            if (value is null) psi.Environment.Remove(name);
            else psi.Environment[name] = value;
        psi.ArgumentList.Add(typeof(TestProgram).Assembly.Location);
        foreach (var a in args) psi.ArgumentList.Add(a);
        var sw = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        bool exited = p.WaitForExit(timeout);
        if (!exited) p.Kill(entireProcessTree: true);
        p.WaitForExit();
        return new Result(exited ? p.ExitCode : -1, stdout.Result, stderr.Result, !exited, sw.Elapsed.TotalSeconds);
    }

    /// <summary>The dotnet host running the tests (the SDK names it in DOTNET_HOST_PATH), else the one on PATH.</summary>
    private static string DotnetHost()
    {
        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host)) return host;
        if (Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet") return self;
        return "dotnet";
    }
}
