using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Bench;

/// <summary>
/// Two or more ways to compute the same tensor, timed call by call in turn (one untimed round first, which also gives
/// each path's max |Δ| against a fp32 reference): the fused-kernel benches' loop (<c>group-norm-paths</c>,
/// <c>geglu-paths</c>).
/// </summary>
public static class InterleavedPaths
{
    /// <summary>Each path's median wall milliseconds over <paramref name="runs"/> rounds and its max |Δ| against
    /// <paramref name="reference"/>.</summary>
    public static (double[] MedianMs, double[] MaxError) Run(int runs, Tensor reference, params Func<Tensor>[] paths)
    {
        var times = paths.Select(_ => new List<double>()).ToArray();
        var errors = new double[paths.Length];
        for (int i = 0; i < runs + 1; i++)
            for (int p = 0; p < paths.Length; p++)
            {
                var sw = Stopwatch.StartNew();
                using var o = paths[p]();
                double ms = sw.Elapsed.TotalMilliseconds;
                if (i == 0)
                {
                    using var f = o.to(ScalarType.Float32);
                    errors[p] = (f - reference).abs().max().item<float>();
                }
                else times[p].Add(ms);
            }
        return (times.Select(Harness.Median).ToArray(), errors);
    }

    /// <summary>"libtorch X ms (max|Δ| e)   fused Y ms (max|Δ| e)   ratio Y/X" for a two-path result.</summary>
    public static string Line((double[] MedianMs, double[] MaxError) r) =>
        $"libtorch {r.MedianMs[0],8:F2} ms (max|Δ| {r.MaxError[0]:E1})   fused {r.MedianMs[1],8:F2} ms (max|Δ| {r.MaxError[1]:E1})   ratio {r.MedianMs[1] / r.MedianMs[0]:F2}";
}
