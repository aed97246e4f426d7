using DiffusersSharp.Loading;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>
/// Compares a hooked intermediate with the golden file: the full tensor when it was recorded, else the
/// per-channel mean / unbiased std and the 8×8 corner summaries (golden README, "Intermediates").
/// </summary>
internal sealed class GoldenIntermediates
{
    private readonly SafetensorsFile _golden;
    private readonly string _prefix;
    private readonly double _tol;

    public List<string> Errors { get; } = new();
    public List<string> Seen { get; } = new();

    public GoldenIntermediates(SafetensorsFile golden, string prefix, double tol = Tol.ModelAbs)
    {
        _golden = golden;
        _prefix = prefix;
        _tol = tol;
    }

    /// <summary>Checks <paramref name="actual"/> if the golden file has <paramref name="name"/> (either form).</summary>
    public void Check(string name, Tensor actual)
    {
        string key = _prefix + name;
        if (_golden.Contains(key))
        {
            Seen.Add(name);
            using var e = _golden.Load(key);
            Compare(name, actual, e);
        }
        else if (_golden.Contains(key + "#chmean"))
        {
            Seen.Add(name);
            using var mean = _golden.Load(key + "#chmean");
            using var std = _golden.Load(key + "#chstd");
            using var corner = _golden.Load(key + "#corner8");
            var dims = Enumerable.Range(0, (int)actual.dim()).Where(d => d != 1).Select(d => (long)d).ToArray();
            using var aMean = actual.mean(dims);
            using var aStd = actual.std(dims, unbiased: true);
            using var aCorner = actual[.., .., ..8, ..8];
            Compare(name + "#chmean", aMean, mean);
            Compare(name + "#chstd", aStd, std);
            Compare(name + "#corner8", aCorner, corner);
        }
    }

    private void Compare(string name, Tensor actual, Tensor expected)
    {
        if (!actual.shape.SequenceEqual(expected.shape))
        {
            Errors.Add($"{name}: shape [{string.Join(", ", actual.shape)}] != [{string.Join(", ", expected.shape)}]");
            return;
        }
        double d = Tol.MaxAbsDiff(actual, expected);
        if (d > _tol) Errors.Add($"{name}: max |diff| = {d:E3}");
    }
}
