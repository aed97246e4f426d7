using System.Text.Json;
using DiffusersSharp.Loading;
using DiffusersSharp.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Support;

/// <summary>
/// The golden reference data produced by the real diffusers / transformers (tests/golden, a copy of the
/// parts of ../shared/golden the tests need; its README describes every key).
/// </summary>
public static class Golden
{
    private static readonly Lazy<string> _dir = new(FindDir);

    public static string Dir => _dir.Value;

    public static string Path(params string[] parts) => System.IO.Path.Combine([Dir, .. parts]);

    private static string FindDir()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
        {
            var candidate = System.IO.Path.Combine(d.FullName, "tests", "golden");
            if (File.Exists(System.IO.Path.Combine(candidate, "README.md"))) return candidate;
        }
        throw new DirectoryNotFoundException("tests/golden not found above " + AppContext.BaseDirectory);
    }

    /// <summary>Opens a golden safetensors file (dispose it, or use <see cref="Tensor"/> for one-offs).</summary>
    public static SafetensorsFile Open(string file) => SafetensorsFile.Open(Path(file));

    /// <summary>Loads one tensor of a golden safetensors file.</summary>
    public static Tensor Tensor(string file, string key)
    {
        using var f = Open(file);
        return f.Load(key);
    }

    public static JsonDocument Json(string file) => JsonDocument.Parse(File.ReadAllText(Path(file)));

    /// <summary>
    /// Copies the files of the golden model folder <paramref name="folder"/> into <paramref name="destination"/>, its
    /// <c>config.json</c> through <paramref name="editConfig"/>.
    /// </summary>
    public static void CopyModel(string destination, Func<string, string> editConfig, params string[] folder)
    {
        Directory.CreateDirectory(destination);
        foreach (var file in Directory.GetFiles(Path(folder)))
        {
            string name = System.IO.Path.GetFileName(file), to = System.IO.Path.Combine(destination, name);
            if (name == "config.json") File.WriteAllText(to, editConfig(File.ReadAllText(file)));
            else File.Copy(file, to);
        }
    }
}

/// <summary>Named tolerances and tensor assertions.</summary>
public static class Tol
{
    /// <summary>UNet / VAE / text-encoder outputs: max absolute difference (issue: ≤ 1e-5).</summary>
    public const double ModelAbs = 1e-5;
    /// <summary>Scheduler outputs: relative error (issue: ≤ 1e-5).</summary>
    public const double SchedulerRel = 1e-5;

    // The helpers below compute in a dispose scope of their own (TorchUtils.Scoped): it frees their temporaries at once and holds them while
    // libtorch reads them (from async tests and other threads too; Support/HoldTestTensorsAttribute).
    public static double MaxAbsDiff(Tensor actual, Tensor expected)
    {
        Assert.Equal(expected.shape, actual.shape);
        double d = TorchUtils.Scoped(() => (actual.to(ScalarType.Float64) - expected.to(ScalarType.Float64)).abs().max().item<double>());
        GC.KeepAlive(actual);   // arguments a caller made on the fly (after[step]) are held until read, too
        GC.KeepAlive(expected);
        return d;
    }

    public static void Close(Tensor actual, Tensor expected, double maxAbs, string what = "")
    {
        double diff = MaxAbsDiff(actual, expected);
        Assert.True(diff <= maxAbs, $"{what}: max |actual - expected| = {diff:E3} > {maxAbs:E1}");
    }

    /// <summary>max |a-e| / max(|e|, floor): relative error with a floor for near-zero references.</summary>
    public static void RelClose(Tensor actual, Tensor expected, double rel, string what = "", double floor = 1e-3)
    {
        Assert.Equal(expected.shape, actual.shape);
        double r = TorchUtils.Scoped(() =>
        {
            var a = actual.to(ScalarType.Float64);
            var e = expected.to(ScalarType.Float64);
            return ((a - e).abs() / e.abs().clamp_min(floor)).max().item<double>();
        });
        GC.KeepAlive(actual);
        GC.KeepAlive(expected);
        Assert.True(r <= rel, $"{what}: relative error {r:E3} > {rel:E1}");
    }
}
