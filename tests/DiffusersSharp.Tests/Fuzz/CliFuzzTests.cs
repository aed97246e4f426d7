using System.Diagnostics;
using Xunit.Abstractions;

namespace DiffusersSharp.Tests.Fuzz;

/// <summary>
/// Bad inputs of every family (weights, configs, tokenizer, model_index.json, options, images) through the CLI entry
/// point: each must end in exit 1 with one line naming the file, key or option, or in exit 0 with a finite output
/// (<see cref="FuzzRunner"/>).
/// </summary>
[Collection(FuzzCollection.Name)]
public class CliFuzzTests(ITestOutputHelper output)
{
    [Fact]
    public void IssueCases() => RunAll(Fuzz.IssueCases.All());

    [Fact]
    public void ConfigFiles() => RunAll(RandomCases.Configs());

    [Fact]
    public void TokenizerFiles() => RunAll(RandomCases.Tokenizer());

    [Fact]
    public void WeightFiles() => RunAll(RandomCases.Weights());

    [Fact]
    public void Options() => RunAll(RandomCases.Options());

    [Fact]
    public void Images() => RunAll(RandomCases.Images());

    private void RunAll(IEnumerable<FuzzCase> cases)
    {
        var failures = new List<string>();
        var clock = Stopwatch.StartNew();
        int n = 0;
        foreach (var c in cases)
        {
            n++;
            var t = Stopwatch.StartNew();
            // DIFFUSERS_FUZZ_LOG=file: each case's name before it runs (to find a case that takes the test host down)
            if (Environment.GetEnvironmentVariable("DIFFUSERS_FUZZ_LOG") is { Length: > 0 } log)
                File.AppendAllText(log, c.Name + "\n");
            string? f;
            try { f = FuzzRunner.Check(c); }
            catch (Exception e) { f = $"{c.Name}: the case itself failed: {e}"; }
            output.WriteLine($"{t.Elapsed.TotalSeconds,5:F2} s  {(f is null ? "ok  " : "FAIL")}  {c.Name}");
            if (f is not null) output.WriteLine("      " + f.Replace("\n", "\n      "));
            if (Environment.GetEnvironmentVariable("DIFFUSERS_FUZZ_LOG") is { Length: > 0 } log2 && f is not null)
                File.AppendAllText(log2, "      " + f.Replace("\n", "\n      ") + "\n");
            if (f is not null) failures.Add(f);
        }
        output.WriteLine($"{n} cases, {failures.Count} failed, {clock.Elapsed.TotalSeconds:F1} s");
        Assert.True(failures.Count == 0, $"{failures.Count} of {n} fuzz cases failed:\n" + string.Join("\n", failures));
    }
}
