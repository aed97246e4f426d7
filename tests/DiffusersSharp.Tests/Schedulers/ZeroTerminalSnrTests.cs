using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Schedulers;

/// <summary>
/// <c>rescale_betas_zero_snr=true</c> (Lin et al. 2023, diffusers' <c>rescale_zero_terminal_snr</c>), which
/// schedulers.json does not record. The expected values are derived here from diffusers' formula, starting from the
/// golden (diffusers-made) betas of the same schedule: (1) in float64 throughout, which bounds the float32 error, and
/// (2) as torch 1.13's float32 op chain (each op computed in double and rounded once to float32, which is exactly the
/// IEEE float32 op), which our values must equal bit for bit. Both hold with and without the MKL shim (CI runs these
/// tests both ways), which is what libtorch's own <c>sqrt</c> did not give.
/// </summary>
public class ZeroTerminalSnrTests(ITestOutputHelper log)
{
    /// <summary>Golden cases whose betas are the unrescaled schedule: linear 1e-4..0.02, SD's scaled_linear, cosine.</summary>
    public static TheoryData<string, string, string> Cases()
    {
        var data = new TheoryData<string, string, string>();
        var schedules = new[]
        {
            ("ddpm-linear-eps-fixedsmall-clip-leading", """ "beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02 """),
            ("ddim-sd-eta0", """ "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012 """),
            ("ddpm-cos-sample-fixedlarge-clip-linspace", """ "beta_schedule": "squaredcos_cap_v2" """),
        };
        foreach (var cls in new[] { "DDPMScheduler", "DDIMScheduler", "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler", "LCMScheduler" })
            foreach (var (golden, keys) in schedules)
                data.Add(cls, golden, keys);
        return data;
    }

    private static SchedulerBase Create(string cls, string keys, string extra = "") =>
        SchedulerFactory.FromJson($$"""{ "_class_name": "{{cls}}", {{keys}}, "rescale_betas_zero_snr": true {{extra}} }""");

    private static float[] Golden32(string golden) =>
        Support.Golden.Tensor("schedulers.safetensors", $"{golden}/betas").data<float>().ToArray();

    private static float R(double x) => (float)x;

    /// <summary>diffusers' <c>rescale_zero_terminal_snr</c>, every torch op of it as one correctly rounded float32 op.</summary>
    private static float[] Float32Chain(float[] betas)
    {
        int n = betas.Length;
        var sqrtBar = new float[n];
        double acc = 1.0;                                    // torch.cumprod: double accumulator, float32 entries
        for (int i = 0; i < n; i++) { acc *= R(1.0 - betas[i]); sqrtBar[i] = R(Math.Sqrt(R(acc))); }
        float s0 = sqrtBar[0], sT = sqrtBar[^1];
        float scale = R((double)s0 / R((double)s0 - sT));
        var bar = sqrtBar.Select(v => R((double)R((double)v - sT) * scale)).Select(v => R((double)v * v)).ToArray();
        var betasOut = new float[n];
        betasOut[0] = R(1.0 - bar[0]);
        for (int i = 1; i < n; i++) betasOut[i] = R(1.0 - R((double)bar[i] / bar[i - 1]));
        return betasOut;
    }

    /// <summary>The same formula in float64 without intermediate rounding: (betas, alphas_cumprod).</summary>
    private static (double[] Betas, double[] AlphasCumprod) Float64(float[] betas)
    {
        int n = betas.Length;
        var sqrtBar = new double[n];
        double acc = 1.0;
        for (int i = 0; i < n; i++) { acc *= 1.0 - betas[i]; sqrtBar[i] = Math.Sqrt(acc); }
        double s0 = sqrtBar[0], sT = sqrtBar[^1];
        var bar = sqrtBar.Select(v => Math.Pow((v - sT) * s0 / (s0 - sT), 2)).ToArray();
        var b = new double[n];
        b[0] = 1 - bar[0];
        for (int i = 1; i < n; i++) b[i] = 1 - bar[i] / bar[i - 1];
        return (b, bar);
    }

    [Theory, MemberData(nameof(Cases))]
    public void BetasAreTorchsFloat32ChainAndCloseToFloat64(string cls, string golden, string keys)
    {
        using var s = Create(cls, keys);
        var original = Golden32(golden);
        float[] betas = s.Betas.data<float>().ToArray();
        float[] ac = s.AlphasCumprod.data<float>().ToArray();

        // bit-exact: torch 1.13's float32 op chain from diffusers' own (golden) betas
        var chain = Float32Chain(original);
        int differ = Enumerable.Range(0, betas.Length).Count(i => BitConverter.SingleToInt32Bits(betas[i]) != BitConverter.SingleToInt32Bits(chain[i]));
        Assert.True(differ == 0, $"{cls} {golden}: {differ} of {betas.Length} rescaled betas differ from the float32 chain");

        // close to the exact (float64) formula, a check of the formula itself: float32 rounding alone stays below these
        // bounds (measured: betas 2.4e-6, alphas_cumprod 1.1e-5 relative, both at the end of the schedule, where
        // sqrt(ᾱ_t) − sqrt(ᾱ_T) cancels); a wrong formula is off by 1e-3 or more
        var (b64, ac64) = Float64(original);
        double worstBeta = Enumerable.Range(0, betas.Length).Max(i => Math.Abs(betas[i] - b64[i]));
        double worstAc = Enumerable.Range(0, ac.Length - 1).Max(i => Math.Abs(ac[i] - ac64[i]) / ac64[i]);
        log.WriteLine($"{cls} {golden}: max |beta - beta64| {worstBeta:E2}, max relative alphas_cumprod error {worstAc:E2}");
        Assert.True(worstBeta <= 1e-5, $"betas: {worstBeta:E3}");
        Assert.True(worstAc <= 5e-5, $"alphas_cumprod: {worstAc:E3}");

        // zero terminal SNR: the last beta is 1, so alphas_cumprod ends at 0 (Euler and Euler ancestral then put 2^-24
        // there, as diffusers does, to keep the last sigma finite)
        Assert.Equal(1f, betas[^1]);
        bool euler = cls.StartsWith("Euler", StringComparison.Ordinal);
        Assert.Equal(euler ? MathF.Pow(2, -24) : 0f, ac[^1]);
        if (euler) Assert.Equal(R(Math.Sqrt(R(R(1 - Math.Pow(2, -24)) / Math.Pow(2, -24)))), s.Sigmas!.data<float>()[0]);
    }

    /// <summary>
    /// The first step of an Euler-ancestral zero-SNR v-prediction loop (σ_max ≈ 4096, where one ulp of a sigma moved
    /// the result by 1e-3 when libtorch's sqrt took another path), against torch's float32 op chain written out here.
    /// </summary>
    [Fact]
    public void EulerAncestralZeroSnrVPredictionFirstStepIsTheFloat32Chain()
    {
        using var s = Create("EulerAncestralDiscreteScheduler", """ "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012 """,
            """, "prediction_type": "v_prediction", "timestep_spacing": "trailing" """);
        s.SetTimesteps(10);
        float[] sig = s.Sigmas!.data<float>().ToArray();
        using var g11 = new Generator(11);
        using var g12 = new Generator(12);
        using var g13 = new Generator(13);
        using var init = torch.randn(new long[] { 1, 4, 8, 8 }, generator: g11);
        using var e = torch.randn(new long[] { 1, 4, 8, 8 }, generator: g12);
        using var noise = torch.randn(new long[] { 1, 4, 8, 8 }, generator: g13);
        double t0 = s.TimestepValues[0];
        using var x = init * s.InitNoiseSigma;
        using var scaled = s.ScaleModelInput(x, t0);
        using var mo = 0.1 * scaled + e;
        using var prev = s.Step(mo, t0, x, new StepOptions { VarianceNoise = _ => noise }).PrevSample;

        float sigma = sig[0], to = sig[1];
        float s2 = R((double)R((double)sigma * sigma) + 1);
        float cOut = R(-(double)sigma / R(Math.Sqrt(s2)));
        float up = R(Math.Sqrt(R((double)R((double)R((double)to * to) * R((double)R((double)sigma * sigma) - R((double)to * to))) / R((double)sigma * sigma))));
        float down = R(Math.Sqrt(R((double)R((double)to * to) - R((double)up * up))));
        float dt = R((double)down - sigma);
        float[] xs = x.data<float>().ToArray(), ms = mo.data<float>().ToArray(), ns = noise.data<float>().ToArray(), ps = prev.data<float>().ToArray();
        // trailing spacing starts at t = 999, where ᾱ = 2^-24: σ = sqrt((1 - 2^-24) / 2^-24) ≈ 4096, the initial noise scale
        Assert.Equal(R(Math.Sqrt(R(R(1 - Math.Pow(2, -24)) / Math.Pow(2, -24)))), sigma);
        Assert.Equal(sigma, (float)s.InitNoiseSigma);
        int differ = 0;
        for (int i = 0; i < xs.Length; i++)
        {
            float x0 = R((double)R((double)ms[i] * cOut) + R((double)xs[i] / s2));
            float derivative = R((double)R((double)xs[i] - x0) / sigma);
            float p = R((double)xs[i] + R((double)derivative * dt));
            p = R((double)p + R((double)ns[i] * up));
            if (BitConverter.SingleToInt32Bits(p) != BitConverter.SingleToInt32Bits(ps[i])) differ++;
        }
        Assert.True(differ == 0, $"{differ} of {xs.Length} values of the first step differ from the float32 chain");
    }
}
