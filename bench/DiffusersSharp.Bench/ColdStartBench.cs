namespace DiffusersSharp.Bench;

/// <summary>
/// <c>bench -- coldstart [--runs 5] [--cli path1,path2]</c>: the CLI's cold start as child processes: <c>diffusers --help</c>
/// and a one-step 32² txt2img on tests/golden/tiny-sd, each <c>--runs</c> times; median wall and median user / system CPU
/// seconds, and the wall time from the process start to the start of its first denoising step
/// (the children's CPU times from /proc/self/stat, less noisy than wall time on a busy machine). Several CLI builds
/// can be compared, e.g. the plain build and a ReadyToRun publish
/// (<c>dotnet publish src/DiffusersSharp.Cli -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true -o /tmp/cli-r2r</c>).
/// </summary>
public static class ColdStartBench
{
    /// <summary>The default CLI: the Release build's apphost.</summary>
    public static string DefaultCli(string repoRoot) =>
        Path.Combine(repoRoot, "src", "DiffusersSharp.Cli", "bin", "Release", "net10.0", "diffusers");

    /// <summary>Times each CLI in <paramref name="clis"/> (default: the Release build) <paramref name="runs"/> times; 0 when all ran.</summary>
    public static int Run(string[] clis, int runs)
    {
        string root = E2eConfigs.RepoRoot();
        if (clis.Length == 0) clis = [DefaultCli(root)];
        string output = Path.Combine(Path.GetTempPath(), "diffusers-bench-coldstart.png");
        string[][] commands =
        [
            ["--help"],
            ["generate", "-m", Path.Combine(root, "tests", "golden", "tiny-sd"), "--prompt", "a cat", "--steps", "1",
                "--width", "32", "--height", "32", "--seed", "0", "-o", output],
        ];
        Console.WriteLine($"CLI cold start, {runs} runs each (child processes); medians: wall, user CPU, system CPU");
        int failures = 0;
        foreach (var cli in clis)
        {
            if (!File.Exists(cli)) { Console.WriteLine($"{cli}: not found (build or publish it first)"); failures++; continue; }
            foreach (var args in commands)
            {
                var results = new List<(double Wall, double User, double Sys)>();
                for (int i = 0; i < runs; i++)
                {
                    var (code, user, sys, wall) = ChildProcesses.Measure(cli, args);
                    if (code != 0) { Console.WriteLine($"  {cli} {args[0]}: exit {code}"); failures++; break; }
                    results.Add((wall, user, sys));
                }
                if (results.Count == 0) continue;
                string what = args[0] == "--help" ? "diffusers --help" : "1-step tiny-sd 32² generate";
                Console.WriteLine($"  {cli}\n    {what,-30} wall {Harness.Median(results.Select(r => r.Wall)),7:F3} s   user {Harness.Median(results.Select(r => r.User)),7:F3} s" +
                                  $"   sys {Harness.Median(results.Select(r => r.Sys)),7:F3} s   (user+sys min {results.Min(r => r.User + r.Sys):F3} s)");
            }
        }
        // Cold start to the first step (issue 14 target ≤ 1.5 s on the tiny model): the wall time until the CLI prints
        // "step 1/1 …  X s/step", less that step's X seconds.
        foreach (var cli in clis.Where(File.Exists))
        {
            var starts = new List<double>();
            for (int i = 0; i < runs; i++)
            {
                var (code, seconds, line) = ChildProcesses.TimeToLine(cli, commands[1], "step 1/");
                if (code != 0 || line is null) { Console.WriteLine($"  {cli}: exit {code}, no step line"); failures++; break; }
                var m = System.Text.RegularExpressions.Regex.Match(line, @"([0-9.]+) s/step");
                starts.Add(seconds - (m.Success ? double.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : 0));
            }
            if (starts.Count > 0)
                Console.WriteLine($"  {cli}\n    cold start to the first step   wall median {Harness.Median(starts),7:F3} s   min {starts.Min():F3} s (target <= 1.5 s)");
        }
        return failures == 0 ? 0 : 1;
    }
}
