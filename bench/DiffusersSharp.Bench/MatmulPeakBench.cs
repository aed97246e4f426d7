using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Bench;

/// <summary>
/// <c>bench -- matmul-peak [--runs 5]</c>: a 4096³ matmul in fp32 and bf16 at torch's threads, GFLOP/s. Issue 14 measured
/// 428 / 708 GFLOP/s on this CPU (2026-12-03); a run's figure against those tells how fast the machine is that day, so
/// absolute timings of different days can be compared (this VM's speed has varied about 2× between sessions).
/// </summary>
public static class MatmulPeakBench
{
    private const long N = 4096;
    private const double Gflop = 2.0 * N * N * N / 1e9;

    /// <summary>What issue 14 measured on its day for this dtype (GFLOP/s).</summary>
    public static int IssueRate(ScalarType dtype) => dtype == ScalarType.Float32 ? 428 : 708;

    /// <summary>Times both dtypes; prints medians and GFLOP/s.</summary>
    public static int Run(int runs)
    {
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.BFloat16 })
            Time(dtype, runs, print: true);
        return 0;
    }

    /// <summary>The median GFLOP/s of <paramref name="runs"/> 4096³ matmuls in <paramref name="dtype"/> (after one warm-up).</summary>
    public static double Rate(ScalarType dtype, int runs) => Gflop / Time(dtype, runs, print: false).Median;

    private static Harness.Result Time(ScalarType dtype, int runs, bool print)
    {
        using var noGrad = torch.no_grad();
        using var a = torch.randn(N, N).to(dtype);
        using var b = torch.randn(N, N).to(dtype);
        string name = $"matmul 4096^3 {dtype} {torch.get_num_threads()} thread(s) (issue 14: {IssueRate(dtype)} GFLOP/s)";
        return print ? Harness.Time(name, 1, runs, () => { using var c = a.matmul(b); }, Gflop)
                     : Harness.Measure(name, 1, runs, () => { using var c = a.matmul(b); });
    }
}
