using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Bench;

/// <summary>
/// <c>bench -- winograd-rounding [--channels 640]</c>: how far a bf16 Winograd convolution F(m×m, 3×3) lands from the exact
/// one, for output tiles m = 2, 3, 4 and several sets of interpolation points, simulated in float64 with the roundings the
/// bf16 path makes: the transformed kernels U and input tiles V rounded to bf16, the products M summed over the input
/// channels exactly and rounded to bf16 (libtorch's bf16 <c>bmm</c> returns bf16), the output rounded to bf16. Against
/// the direct bf16 convolution, which rounds only its output (its inputs are the same bf16 values). The transforms are
/// Toom-Cook's from the points (A and G as Lavin and Gray, B solved from the identity); unit-variance inputs, weights of
/// scale 1/√(9C), 256 independent tiles, 64 output channels. Prints rms and max |error| as a fraction of the output's rms;
/// under each, the same with the products M left unrounded (as an fp32-output product would give), and with only M rounded
/// (U and V exact).
/// </summary>
public static class WinogradRoundingBench
{
    public static void Run(int channels)
    {
        Console.WriteLine($"bf16 Winograd rounding, float64 simulation, {channels} input channels, 64 output channels, 256 tiles per size");
        var sets = new (int M, double[] Points, string Name)[]
        {
            (2, new[] { 0.0, 1, -1 }, "F(2x2) 0, ±1 (ours)"),
            (3, new[] { 0.0, 1, -1, 2 }, "F(3x3) 0, ±1, 2"),
            (3, new[] { 0.0, 1, -1, 0.5 }, "F(3x3) 0, ±1, 1/2"),
            (3, new[] { 0.0, 1, -1, -0.5 }, "F(3x3) 0, ±1, -1/2"),
            (4, new[] { 0.0, 1, -1, 2, -2 }, "F(4x4) 0, ±1, ±2"),
            (4, new[] { 0.0, 1, -1, 0.5, -2 }, "F(4x4) 0, ±1, 1/2, -2 (ours in fp32)"),
            (4, new[] { 0.0, 1, -1, 0.5, -0.5 }, "F(4x4) 0, ±1, ±1/2"),
        };
        foreach (var (m, points, name) in sets)
        {
            using var scope = torch.NewDisposeScope();
            var (at, g, bt) = Transforms(m, points);
            int n = m + 2;
            var gen = new Generator(7);
            var d = Bf16(torch.randn(new long[] { 256, channels, n, n }, float64, generator: gen));
            var k = Bf16(torch.randn(new long[] { 64, channels, 3, 3 }, float64, generator: gen) / Math.Sqrt(9.0 * channels));
            // exact: y[t, o, i, j] = Σ_c Σ_ab k[o, c, a, b] d[t, c, i + a, j + b]
            var exact = torch.zeros(256, 64, m, m, float64);
            for (int i = 0; i < m; i++)
                for (int j = 0; j < m; j++)
                    exact[.., .., i, j] = torch.einsum("tcab,ocab->to", d[.., .., i..(i + 3), j..(j + 3)], k);
            var uE = g.matmul(k).matmul(g.t());             // [O, C, n, n]
            var vE = bt.matmul(d).matmul(bt.t());           // [T, C, n, n]
            var u = Bf16(uE);
            var v = Bf16(vE);
            var prodExact = torch.einsum("ocij,tcij->toij", u, v);
            var prod = Bf16(prodExact);
            var y = Bf16(at.matmul(prod).matmul(at.t()));   // [T, O, m, m]
            double rms = exact.square().mean().sqrt().item<double>();
            var err = (y - exact).abs();
            // the same with the products kept exact (fp32 out of the matrix products), and with only U and V exact
            var errKeep = (Bf16(at.matmul(prodExact).matmul(at.t())) - exact).abs();
            var errUv = (Bf16(at.matmul(Bf16(torch.einsum("ocij,tcij->toij", uE, vE))).matmul(at.t())) - exact).abs();
            var direct = (Bf16(exact) - exact).abs();
            Console.WriteLine($"  {name,-38} rms {err.square().mean().sqrt().item<double>() / rms:E2}  max {err.max().item<double>() / rms:E2}" +
                              $"   (direct bf16: rms {direct.square().mean().sqrt().item<double>() / rms:E2}  max {direct.max().item<double>() / rms:E2})" +
                              $"   multiplies per output {(double)n * n / (m * m):F2}");
            Console.WriteLine($"      products not rounded: rms {errKeep.square().mean().sqrt().item<double>() / rms:E2}  max {errKeep.max().item<double>() / rms:E2};" +
                              $"  only the products rounded: rms {errUv.square().mean().sqrt().item<double>() / rms:E2}  max {errUv.max().item<double>() / rms:E2}");
        }
    }

    private static Tensor Bf16(Tensor t) => t.to(bfloat16).to(float64);

    /// <summary>Aᵀ (m × n), G (n × 3), Bᵀ (n × n) of F(m, 3) on the finite points and ∞ (n = m + 2 = points + 1).</summary>
    private static (Tensor At, Tensor G, Tensor Bt) Transforms(int m, double[] a)
    {
        int n = m + 2;
        var at = new double[m, n];
        var g = new double[n, 3];
        for (int j = 0; j < n - 1; j++)
        {
            double f = 1;
            for (int l = 0; l < n - 1; l++) if (l != j) f *= a[j] - a[l];
            for (int i = 0; i < m; i++) at[i, j] = Math.Pow(a[j], i);
            for (int s = 0; s < 3; s++) g[j, s] = Math.Pow(a[j], s) / f;
        }
        at[m - 1, n - 1] = 1;
        g[n - 1, 2] = 1;
        // Bᵀ from the identity Σ_k Aᵀ[i, k] G[k, s] Bᵀ[k, t] = [t == i + s] (least squares, exact where the points are distinct)
        var rows = new double[m * 3 * n, n * n];
        var rhs = new double[m * 3 * n, 1];
        int e = 0;
        for (int i = 0; i < m; i++)
            for (int s = 0; s < 3; s++)
                for (int t = 0; t < n; t++, e++)
                {
                    for (int k = 0; k < n; k++) rows[e, k * n + t] = at[i, k] * g[k, s];
                    rhs[e, 0] = t == i + s ? 1 : 0;
                }
        var sol = torch.linalg.lstsq(torch.tensor(rows), torch.tensor(rhs)).Solution;
        var btT = sol.reshape(n, n);
        var atT = torch.tensor(at);
        var gT = torch.tensor(g);
        double residual = (torch.einsum("ik,ks,kt->ist", atT, gT, btT) - Identity(m, n)).abs().max().item<double>();
        if (residual > 1e-9) throw new InvalidOperationException($"F({m}, 3) on points {string.Join(", ", a)}: no exact Bᵀ (residual {residual:E2})");
        return (atT, gT, btT);
    }

    private static Tensor Identity(int m, int n)
    {
        var id = new double[m, 3, n];
        for (int i = 0; i < m; i++) for (int s = 0; s < 3; s++) id[i, s, i + s] = 1;
        return torch.tensor(id);
    }
}
