using System.Diagnostics;
using Xunit.Abstractions;

namespace DiffusersSharp.Tests.Fuzz;

/// <summary>
/// Bad inputs of the newest model folders: DiT, the x4 upscaler, InstructPix2Pix, T2I-Adapters and the new scheduler
/// classes through the CLI entry point (<see cref="NewModelCases"/>, <see cref="FuzzRunner"/>), and ConsistencyModelPipeline
/// and the new schedulers' configs through the library loaders (<see cref="LoaderCases"/>, <see cref="LoaderFuzzRunner"/>).
/// </summary>
[Collection(FuzzCollection.Name)]
public class NewModelFuzzTests(ITestOutputHelper output)
{
    [Fact]
    public void DiTFolders() => RunAll(NewModelCases.DiTFolders(), FuzzRunner.Check);

    [Fact]
    public void UpscaleFolders() => RunAll(NewModelCases.UpscaleFolders(), FuzzRunner.Check);

    [Fact]
    public void InstructPix2PixFolders() => RunAll(NewModelCases.InstructPix2PixFolders(), FuzzRunner.Check);

    [Fact]
    public void AdapterFolders() => RunAll(NewModelCases.AdapterFolders(), FuzzRunner.Check);

    [Fact]
    public void NewSchedulerOptions() => RunAll(LoaderCases.SchedulerOptions(), FuzzRunner.Check);

    [Fact]
    public void ConsistencyFoldersThroughTheLibrary() => RunAll(LoaderCases.ConsistencyFolders(), LoaderFuzzRunner.Check);

    [Fact]
    public void NewSchedulerConfigsThroughTheLibrary() => RunAll(LoaderCases.SchedulerConfigs(), LoaderFuzzRunner.Check);

    /// <summary>
    /// The unchanged folders run to a written output (else every case above could end in the same error and pass):
    /// the base command of each family, and the library loads.
    /// </summary>
    [Fact]
    public void TheUnchangedFoldersRun()
    {
        foreach (var (model, setup, args) in new (string, Action<FuzzWorkspace>, Func<FuzzWorkspace, string[]>)[]
                 {
                     ("tiny-dit", _ => { }, w => FuzzCommands.DiT(w)), ("tiny-sd-upscale", _ => { }, w => FuzzCommands.Upscale(w)),
                     ("tiny-sd-instruct-pix2pix", _ => { }, w => FuzzCommands.InstructPix2Pix(w)), ("tiny-sd", NewModelCases.WithAdapter, w => FuzzCommands.Adapter(w)),
                     ("tiny-sd", NewModelCases.WithAdapter, w => [.. FuzzCommands.Adapter(w), "--adapter", w.File("adapter-gray"), "--adapter-image", Support.Golden.Path("controlnet-edges.png")]),
                 })
        {
            using var w = new FuzzWorkspace(model);
            setup(w);
            var (code, _, stderr) = Cli.CliRun.Run(args(w));
            Assert.True(code == 0, $"{model}: {stderr}");
            using var written = DiffusersSharp.Imaging.NpyFile.Read(w.OutputNpy);
            Assert.True(written.numel() > 0);
        }
        foreach (var c in LoaderCases.ConsistencyFolders().Take(1).Concat(LoaderCases.SchedulerConfigs().Where(c => c.Name.EndsWith(" default", StringComparison.Ordinal))))
        {
            using var w = new FuzzWorkspace(c.BaseModel);
            c.Mutate(w);
            using var output = c.Run(w);
            Assert.NotNull(output);
        }
    }

    private void RunAll<T>(IEnumerable<T> cases, Func<T, string?> check)
    {
        var failures = new List<string>();
        var clock = Stopwatch.StartNew();
        int n = 0;
        foreach (var c in cases)
        {
            n++;
            var t = Stopwatch.StartNew();
            if (Environment.GetEnvironmentVariable("DIFFUSERS_FUZZ_LOG") is { Length: > 0 } log)
                File.AppendAllText(log, c + "\n");
            string? f;
            try { f = check(c); }
            catch (Exception e) { f = $"{c}: the case itself failed: {e}"; }
            output.WriteLine($"{t.Elapsed.TotalSeconds,5:F2} s  {(f is null ? "ok  " : "FAIL")}  {c}");
            if (f is not null)
            {
                output.WriteLine("      " + f.Replace("\n", "\n      "));
                if (Environment.GetEnvironmentVariable("DIFFUSERS_FUZZ_LOG") is { Length: > 0 } log2)
                    File.AppendAllText(log2, "      " + f.Replace("\n", "\n      ") + "\n");
                failures.Add(f);
            }
        }
        output.WriteLine($"{n} cases, {failures.Count} failed, {clock.Elapsed.TotalSeconds:F1} s");
        Assert.True(failures.Count == 0, $"{failures.Count} of {n} fuzz cases failed:\n" + string.Join("\n", failures));
    }
}
