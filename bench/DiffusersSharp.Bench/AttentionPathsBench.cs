using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Bench;

/// <summary>
/// The SD 1.5 UNet's attention shapes at batch 2 (8 heads; self-attention over 4096 / 1024 / 256 tokens of 40 / 80 / 160
/// dims, cross-attention over 77), interleaved call by call: libtorch's <c>scaled_dot_product_attention</c> (the flash
/// kernel the model runs) against three rewrites of the same product: explicit <c>bmm</c> + softmax + <c>bmm</c> two heads
/// at a time, the head dim zero-padded to a multiple of 32, and the queries split into chunks of 512. Error is against
/// the fp32 SDPA. Measured 2026-12-04 (2 threads, Zen 5 VM at half issue 14's matmul rate): the 64² self-attention (head
/// dim 40) runs at ~210 GFLOP/s in bf16 (half the bf16 matmul rate) and 115-150 in fp32, 5 calls per step ≈ 1.0 s of a
/// 5 s bf16 step; every rewrite was slower (bmm 140, padded 165-170, chunked 190 GFLOP/s in bf16), so the model keeps SDPA.
/// </summary>
public static class AttentionPathsBench
{
    private static readonly (string Name, long L, long S, long D)[] Shapes =
    {
        ("64² self", 4096, 4096, 40), ("64² cross", 4096, 77, 40), ("32² self", 1024, 1024, 80),
        ("32² cross", 1024, 77, 80), ("16² self", 256, 256, 160), ("16² cross", 256, 77, 160),
    };

    private static readonly (string Name, Func<Tensor, Tensor, Tensor, Tensor> Run)[] Paths =
    {
        ("sdpa", (q, k, v) => nn.functional.scaled_dot_product_attention(q, k, v)),
        ("bmm", Bmm),
        ("pad32", Padded),
        ("chunks", Chunked),
    };

    public static int Run(ScalarType[] dtypes, int runs)
    {
        using var mode = torch.inference_mode();
        Console.WriteLine($"attention paths, {torch.get_num_threads()} thread(s), medians of {runs}; GFLOP/s counts the two products");
        foreach (var dtype in dtypes)
        {
            foreach (var (name, l, s, d) in Shapes)
            {
                torch.manual_seed(0);
                using var qf = torch.randn(2, l, 8, d);
                using var kf = torch.randn(2, s, 8, d);
                using var vf = torch.randn(2, s, 8, d);
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
                        if (i == 0)
                        {
                            using var diff = (o.to(ScalarType.Float32) - reference).abs().max();
                            errors[p] = diff.item<float>();
                        }
                        else times[p].Add(ms);
                    }
                }
                double gflop = 2.0 * 2 * 2 * 8 * l * s * d / 1e9;
                var cells = Paths.Select((p, i) => $"{p.Name} {Harness.Median(times[i]),7:F1} ms ({gflop / Harness.Median(times[i]) * 1e3,3:F0} GF/s, max|err| {errors[i]:E1})");
                Console.WriteLine($"  {dtype,-8} {name,-9} {string.Join("  ", cells)}");
            }
        }
        return 0;
    }

    private static Tensor Bmm(Tensor q, Tensor k, Tensor v)
    {
        using var scope = torch.NewDisposeScope();
        long b = q.shape[0], h = q.shape[1], l = q.shape[2], s = k.shape[2], d = q.shape[3];
        var qs = (q * (1.0 / Math.Sqrt(d))).reshape(b * h, l, d);
        var kt = k.reshape(b * h, s, d).transpose(1, 2);
        var vv = v.reshape(b * h, s, d);
        var outs = new List<Tensor>();
        for (long c = 0; c < b * h; c += 2)
            outs.Add(torch.bmm(torch.bmm(qs.narrow(0, c, 2), kt.narrow(0, c, 2)).softmax(-1), vv.narrow(0, c, 2)));
        return torch.cat(outs, 0).view(b, h, l, d).MoveToOuterDisposeScope();
    }

    private static Tensor Padded(Tensor q, Tensor k, Tensor v)
    {
        using var scope = torch.NewDisposeScope();
        long d = q.shape[3], padded = (d + 31) / 32 * 32;
        var pad = new long[] { 0, padded - d };
        // SDPA scales by 1/sqrt(padded): the queries make up the difference
        var o = nn.functional.scaled_dot_product_attention(nn.functional.pad(q * Math.Sqrt((double)padded / d), pad),
            nn.functional.pad(k, pad), nn.functional.pad(v, pad));
        return o.narrow(3, 0, d).MoveToOuterDisposeScope();
    }

    private static Tensor Chunked(Tensor q, Tensor k, Tensor v)
    {
        using var scope = torch.NewDisposeScope();
        long l = q.shape[2];
        var outs = new List<Tensor>();
        for (long c = 0; c < l; c += 512)
            outs.Add(nn.functional.scaled_dot_product_attention(q.narrow(2, c, Math.Min(512, l - c)), k, v));
        return torch.cat(outs, 2).MoveToOuterDisposeScope();
    }
}
