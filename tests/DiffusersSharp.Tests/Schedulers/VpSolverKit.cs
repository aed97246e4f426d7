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

    public static long[] Longs(Tensor t)
    {
        using var l = t.to(ScalarType.Int64);
        return l.data<long>().ToArray();
    }
}
