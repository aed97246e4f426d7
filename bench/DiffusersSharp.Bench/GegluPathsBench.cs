using DiffusersSharp.Runtime;
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
                using var pr = p.to(ScalarType.Float32);   // the fp32 ops on the same (rounded) values
                var halvesRef = pr.chunk(2, dim: -1);
                using var reference = halvesRef[0] * nn.functional.gelu(halvesRef[1]);
                var r = InterleavedPaths.Run(runs, reference,
                    () =>
                    {
                        var halves = p.chunk(2, dim: -1);
                        using var h = halves[0];
                        using var gate = halves[1];
                        return nn.functional.gelu(gate).mul_(h);
                    },
                    () => FusedGeglu.TryRun(p)!);
                Console.WriteLine($"  {dtype,-8} {name,-18} {InterleavedPaths.Line(r)}");
            }
        return 0;
    }
}
