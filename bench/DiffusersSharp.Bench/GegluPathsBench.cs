using DiffusersSharp.Runtime;
using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Bench;

/// <summary>
/// <c>bench -- geglu-paths [--dtypes bf16,fp32] [--runs 20]</c>: the feed-forward gate of SD 1.5's transformer blocks
/// (batch 2, 4096 / 1024 / 256 tokens, 1280 / 2560 / 5120 gate values a token), interleaved call by call: libtorch's
/// <c>gelu</c> and in-place <c>mul</c> (what <c>GEGLU</c> runs without the kernel) against our fused kernel
/// (<see cref="FusedGeglu"/>). Error: max |Δ| against the fp32 ops on the same values.
/// </summary>
public static class GegluPathsBench
{
    private static readonly (string Name, long Tokens, long Half)[] Shapes =
    {
        ("64² (4096 x 1280)", 4096, 1280), ("32² (1024 x 2560)", 1024, 2560), ("16² (256 x 5120)", 256, 5120),
    };

    public static int Run(ScalarType[] dtypes, int runs)
    {
        using var mode = torch.inference_mode();
        Console.WriteLine($"GEGLU gate paths (fused kernel: {FusedGeglu.Status}), {torch.get_num_threads()} thread(s), medians of {runs}");
        foreach (var dtype in dtypes)
            foreach (var (name, tokens, half) in Shapes)
            {
                torch.manual_seed(0);
                using var pf = torch.randn(2, tokens, 2 * half) * 2;
                using var p = pf.to(dtype);
                using var reference = pf.to(dtype).to(ScalarType.Float32).chunk(2, -1) is var c ? c[0] * nn.functional.gelu(c[1]) : null!;
                var paths = new (string Name, Func<Tensor> Run)[]
                {
                    ("libtorch", () =>
                    {
                        var halves = p.chunk(2, dim: -1);
                        using var h = halves[0];
                        using var gate = halves[1];
                        return nn.functional.gelu(gate).mul_(h);
                    }),
                    ("fused", () => FusedGeglu.TryRun(p)!),
                };
                var times = paths.Select(_ => new List<double>()).ToArray();
                var errors = new double[paths.Length];
                for (int i = 0; i < runs + 1; i++)
                    for (int k = 0; k < paths.Length; k++)
                    {
                        var sw = Stopwatch.StartNew();
                        using var o = paths[k].Run();
                        double ms = sw.Elapsed.TotalMilliseconds;
                        if (i == 0) errors[k] = (o.to(ScalarType.Float32) - reference).abs().max().item<float>();
                        else times[k].Add(ms);
                    }
                double t0 = Harness.Median(times[0]), t1 = Harness.Median(times[1]);
                Console.WriteLine($"  {dtype,-8} {name,-18} libtorch {t0,8:F2} ms (max|Δ| {errors[0]:E1})   fused {t1,8:F2} ms (max|Δ| {errors[1]:E1})   ratio {t1 / t0:F2}");
            }
        return 0;
    }
}
