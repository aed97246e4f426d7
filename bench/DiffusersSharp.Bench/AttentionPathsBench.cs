using DiffusersSharp.Runtime;
using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Bench;

/// <summary>
/// The UNets' attention shapes at batch 2 (SD 1.5: 8 heads, self-attention over 4096 / 1024 / 256 tokens of 40 / 80 / 160
/// dims and cross-attention over 77; SD 2.x / SDXL: 64-dim heads), interleaved call by call: libtorch's
/// <c>scaled_dot_product_attention</c> (its flash kernel) against our fused kernel (<see cref="FusedAttention"/>). Error is
/// against the fp32 SDPA. 2026-12-04: libtorch ran the 64² self-attention (head dim 40) at ~210 GFLOP/s in bf16, half
/// the bf16 matmul rate, and 115-150 in fp32; three rewrites on libtorch ops (explicit bmm, the head dim padded, the
/// queries in chunks) were all slower, hence the fused kernel.
/// </summary>
public static class AttentionPathsBench
{
    private static readonly (string Name, long L, long S, long H, long D)[] Shapes =
    {
        ("64² self", 4096, 4096, 8, 40), ("64² cross", 4096, 77, 8, 40), ("32² self", 1024, 1024, 8, 80),
        ("32² cross", 1024, 77, 8, 80), ("16² self", 256, 256, 8, 160), ("16² cross", 256, 77, 8, 160),
        ("SD2 64² self", 4096, 4096, 5, 64), ("SDXL 32² self", 1024, 1024, 10, 64), ("SDXL 32² cross", 1024, 77, 10, 64),
    };

    // a path returns null where it does not apply (the fused kernel above FusedAttention.MaxHeadDim, or not on this CPU)
    private static readonly (string Name, Func<Tensor, Tensor, Tensor, Tensor?> Run)[] Paths =
    {
        ("sdpa", (q, k, v) => nn.functional.scaled_dot_product_attention(q, k, v)),
        ("fused", FusedAttention.TryRun),
    };

    public static int Run(ScalarType[] dtypes, int runs)
    {
        using var mode = torch.inference_mode();
        Console.WriteLine($"attention paths (fused kernel: {FusedAttention.Status}), {torch.get_num_threads()} thread(s), medians of {runs}; GFLOP/s counts the two products");
        foreach (var dtype in dtypes)
        {
            foreach (var (name, l, s, heads, d) in Shapes)
            {
                torch.manual_seed(0);
                using var qf = torch.randn(2, l, heads, d);
                using var kf = torch.randn(2, s, heads, d);
                using var vf = torch.randn(2, s, heads, d);
                // the layout the model's Attention passes: (B, L, H, D) viewed as (B, H, L, D)
                using var q = qf.to(dtype).transpose(1, 2);
                using var k = kf.to(dtype).transpose(1, 2);
                using var v = vf.to(dtype).transpose(1, 2);
                using var reference = nn.functional.scaled_dot_product_attention(qf.transpose(1, 2), kf.transpose(1, 2), vf.transpose(1, 2));
                var times = Paths.Select(_ => new List<double>()).ToArray();
                var errors = new double[Paths.Length];
                for (int i = 0; i < runs + 1; i++)
                {
                    for (int p = 0; p < Paths.Length; p++)
                    {
                        var sw = Stopwatch.StartNew();
                        using var o = Paths[p].Run(q, k, v);
                        double ms = sw.Elapsed.TotalMilliseconds;
                        if (o is null) continue;
                        if (i == 0)
                        {
                            using var diff = (o.to(ScalarType.Float32) - reference).abs().max();
                            errors[p] = diff.item<float>();
                        }
                        else times[p].Add(ms);
                    }
                }
                double gflop = 2.0 * 2 * 2 * heads * l * s * d / 1e9;
                var cells = Paths.Select((p, i) => times[i].Count == 0 ? $"{p.Name} n/a (libtorch's)"
                    : $"{p.Name} {Harness.Median(times[i]),7:F1} ms ({gflop / Harness.Median(times[i]) * 1e3,3:F0} GF/s, max|err| {errors[i]:E1})");
                Console.WriteLine($"  {dtype,-8} {name,-9} {string.Join("  ", cells)}");
            }
        }
        return 0;
    }
}
