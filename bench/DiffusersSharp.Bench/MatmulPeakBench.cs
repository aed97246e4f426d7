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
    /// <summary>Times both dtypes; prints medians and GFLOP/s.</summary>
    public static int Run(int runs)
    {
        const long N = 4096;
        double gflop = 2.0 * N * N * N / 1e9;
        using var noGrad = torch.no_grad();
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.BFloat16 })
        {
            using var a = torch.randn(N, N).to(dtype);
            using var b = torch.randn(N, N).to(dtype);
            Harness.Time($"matmul 4096^3 {dtype} {torch.get_num_threads()} thread(s) (issue 14: {(dtype == ScalarType.Float32 ? 428 : 708)} GFLOP/s)",
                1, runs, () => { using var c = a.matmul(b); }, gflop);
        }
        return 0;
    }
}
