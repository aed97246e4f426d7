using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Schedulers;

/// <summary>
/// Reference maths for the VP solver tests, in float64 and independent of the library: the Stable Diffusion
/// ᾱ table recorded by diffusers (golden <c>dpmpp2m-sd/alphas_cumprod</c>), σ = √((1−ᾱ)/ᾱ), α_t = 1/√(σ²+1),
/// σ_t = σ α_t, λ = log α_t − log σ_t, the Karras / Lu schedules and the log-σ interpolation of a timestep.
/// </summary>
internal static class VpSolverKit
{
    private static readonly Lazy<double[]> _ab = new(() =>
    {
        using var t = Golden.Tensor("schedulers.safetensors", "dpmpp2m-sd/alphas_cumprod");
        using var d = t.to(ScalarType.Float64);
        return d.data<double>().ToArray();
    });

    /// <summary>ᾱ of scaled_linear 0.00085 → 0.012 over 1000 steps (diffusers' float32 values).</summary>
    public static double[] Ab => _ab.Value;

    public static double SigmaOfT(long t) => Math.Sqrt((1 - Ab[t]) / Ab[t]);

    public static (double Alpha, double Sigma, double Lambda) Of(double sigma)
    {
        double a = 1 / Math.Sqrt(sigma * sigma + 1);
        double s = sigma * a;
        return (a, s, Math.Log(a) - Math.Log(s));
    }

    /// <summary>The fractional training timestep whose σ interpolates (in log σ) to <paramref name="sigma"/>.</summary>
    public static double TOfSigma(double sigma)
    {
        double ls = Math.Log(sigma);
        for (int j = 0; j < Ab.Length - 1; j++)
        {
            double lo = Math.Log(SigmaOfT(j)), hi = Math.Log(SigmaOfT(j + 1));
            if (ls >= lo && ls <= hi) return j + (ls - lo) / (hi - lo);
        }
        return ls < Math.Log(SigmaOfT(0)) ? 0 : Ab.Length - 1;
    }

    public static double[] Karras(int n)
    {
        double min = SigmaOfT(0), max = SigmaOfT(Ab.Length - 1);
        return Enumerable.Range(0, n).Select(i =>
        {
            double r = n == 1 ? 0 : i / (double)(n - 1);
            return Math.Pow(Math.Pow(max, 1 / 7.0) + r * (Math.Pow(min, 1 / 7.0) - Math.Pow(max, 1 / 7.0)), 7);
        }).ToArray();
    }

    public static double[] Lu(int n)
    {
        double lmin = Math.Log(SigmaOfT(0)), lmax = Math.Log(SigmaOfT(Ab.Length - 1));
        return Enumerable.Range(0, n).Select(i => Math.Exp(lmax + i / (double)(n - 1) * (lmin - lmax))).ToArray();
    }

    /// <summary>Seeded float32 test tensor.</summary>
    public static Tensor Randn(long seed, params long[] shape)
    {
        using var g = new Generator((ulong)seed);
        return torch.randn(shape, generator: g);
    }

    public static Tensor D(Tensor t) => t.to(ScalarType.Float64);

    /// <summary>max|a−e| / max|e| ≤ rel.</summary>
    public static void RelMax(Tensor actual, Tensor expected, double rel, string what)
    {
        using var a = actual.to(ScalarType.Float64);
        using var e = expected.to(ScalarType.Float64);
        double err = (a - e).abs().max().item<double>() / Math.Max(e.abs().max().item<double>(), 1e-12);
        Assert.True(err <= rel, $"{what}: relative error {err:E3} > {rel:E1}");
    }

    /// <summary>The model prediction a + bλ + cλ² (float32).</summary>
    public static Tensor Poly(Tensor a, Tensor b, Tensor c, double lambda) => a + b * (float)lambda + c * (float)(lambda * lambda);

    /// <summary>
    /// The exact flow of the probability-flow ODE from table sigma <paramref name="sgS"/> to <paramref name="sgT"/> when
    /// the data prediction is x0(λ) = a + bλ + cλ²: x_t = σ_t/σ_s x + α_t F(λ_t) − σ_t α_s/σ_s F(λ_s),
    /// F = a + b(λ−1) + c(λ²−2λ+2) (∫e^λ x0 dλ = e^λ F).
    /// </summary>
    public static Tensor FlowData(Tensor x, double sgS, double sgT, Tensor a, Tensor b, Tensor c)
    {
        var (aS, sS, lS) = Of(sgS);
        var (aT, sT, lT) = Of(sgT);
        Tensor F(double l) => D(a) + D(b) * (l - 1) + D(c) * (l * l - 2 * l + 2);
        return sT / sS * D(x) + aT * F(lT) - sT * aS / sS * F(lS);
    }

    /// <summary>
    /// The same with the noise prediction ε(λ) = a + bλ + cλ²: x_t = α_t/α_s x + σ_t G(λ_t) − α_t σ_s/α_s G(λ_s),
    /// G = a + b(λ+1) + c(λ²+2λ+2) (∫e^{−λ} ε dλ = −e^{−λ} G).
    /// </summary>
    public static Tensor FlowEps(Tensor x, double sgS, double sgT, Tensor a, Tensor b, Tensor c)
    {
        var (aS, sS, lS) = Of(sgS);
        var (aT, sT, lT) = Of(sgT);
        Tensor G(double l) => D(a) + D(b) * (l + 1) + D(c) * (l * l + 2 * l + 2);
        return aT / aS * D(x) + sT * G(lT) - aT * sS / aS * G(lS);
    }

    /// <summary>DDIM (eta 0) with a constant ε over the given integer timesteps, the last step going to t = 0.</summary>
    public static void AssertDdimLoop(SchedulerBase s, long[] ts, double rel = 1e-5)
    {
        using var eps = Randn(3, 1, 4, 8, 8);
        var x = Randn(4, 1, 4, 8, 8);
        var xd = D(x);
        for (int i = 0; i < ts.Length; i++)
        {
            double ab = Ab[ts[i]], abPrev = Ab[i + 1 < ts.Length ? ts[i + 1] : 0];
            var x0 = (xd - Math.Sqrt(1 - ab) * D(eps)) / Math.Sqrt(ab);
            xd = Math.Sqrt(abPrev) * x0 + Math.Sqrt(1 - abPrev) * D(eps);
            x = s.Step(eps, ts[i], x).PrevSample;
            RelMax(x, xd, rel, $"{s.ClassName} DDIM step {i}");
        }
    }

    public static long[] Longs(Tensor t)
    {
        using var l = t.to(ScalarType.Int64);
        return l.data<long>().ToArray();
    }
}
