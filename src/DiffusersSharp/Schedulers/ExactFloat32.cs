namespace DiffusersSharp.Schedulers;

/// <summary>
/// The float32 results of the torch 1.13 CPU kernels that diffusers 0.25.1 runs while building a schedule and its
/// per-step coefficients (the build the golden data was made with: AVX2 + FMA, no MKL), computed in managed code so
/// that they are the same on every CPU, whatever vector-math path libtorch 2.10 takes there (MKL's VML functions,
/// which libtorch uses for <c>sqrt</c>, <c>exp</c>, <c>log</c> and <c>pow(·, 0.5)</c>, are not correctly rounded and
/// give other last bits on other CPUs, or without the MKL shim). The elementwise + − × ÷ and <c>sqrt</c> are IEEE
/// float32 operations (correctly rounded in .NET and in torch 1.13's kernels); <c>exp</c> and <c>log</c> are ports
/// of the SLEEF functions torch 1.13 vectorises them with.
/// </summary>
internal static class ExactFloat32
{
    /// <summary><c>torch.sqrt</c> / <c>x ** 0.5</c> of a float32 value (torch 1.13: <c>vsqrtps</c>, correctly rounded).</summary>
    public static float Sqrt(float x) => MathF.Sqrt(x);

    /// <summary>
    /// <c>torch.exp</c> of a float32 value: SLEEF 3.5's <c>expf</c> (u10) in FMA arithmetic, as torch 1.13's AVX2 kernel
    /// computes it (Cody–Waite reduction by ln 2, a degree-6 polynomial, then 2^q); not always correctly rounded.
    /// </summary>
    public static float Exp(float d)
    {
        if (float.IsNaN(d)) return d;
        if (d > 100f) return float.PositiveInfinity;
        if (d < -104f) return 0f;
        int q = (int)MathF.Round(d * 1.442695040888963407359924681001892137426645954152985934135449406931f, MidpointRounding.ToEven);
        float s = MathF.FusedMultiplyAdd(q, -0.693145751953125f, d);
        s = MathF.FusedMultiplyAdd(q, -1.428606765330187045e-06f, s);
        float u = 0.000198527617612853646278381f;
        u = MathF.FusedMultiplyAdd(u, s, 0.00139304355252534151077271f);
        u = MathF.FusedMultiplyAdd(u, s, 0.00833336077630519866943359f);
        u = MathF.FusedMultiplyAdd(u, s, 0.0416664853692054748535156f);
        u = MathF.FusedMultiplyAdd(u, s, 0.166666671633720397949219f);
        u = MathF.FusedMultiplyAdd(u, s, 0.5f);
        u = 1f + MathF.FusedMultiplyAdd(s * s, u, s);
        int h = q >> 1;
        return u * Pow2I(h) * Pow2I(q - h);
    }

    /// <summary>
    /// <c>torch.log</c> of a float32 value: SLEEF 3.5's <c>logf</c> (u10) with FMA, as torch 1.13's AVX2 kernel computes
    /// it: x = 2^e·m with m in [0.75, 1.5), then log m = 2·atanh((m−1)/(m+1)) in double-float arithmetic.
    /// </summary>
    public static float Log(float d)
    {
        if (float.IsNaN(d) || d < 0) return float.NaN;
        if (d == 0) return float.NegativeInfinity;
        if (float.IsPositiveInfinity(d)) return float.PositiveInfinity;
        bool subnormal = d < 1.17549435e-38f;  // FLT_MIN
        if (subnormal) d *= 1.8446744073709552e19f;  // 2^64
        int e = ((BitConverter.SingleToInt32Bits(d * (1.0f / 0.75f)) >> 23) & 0xff) - 0x7f;
        float m = BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(d) + (-e << 23));
        if (subnormal) e -= 64;

        // s = (ln2_hi, ln2_lo) · e  (dfmul_vf2_vf2_vf)
        float fe = e;
        float sx = 0.69314718246459960938f * fe;
        float sy = MathF.FusedMultiplyAdd(-1.904654323148236017e-09f, fe, MathF.FusedMultiplyAdd(0.69314718246459960938f, fe, -sx));

        // x = (m − 1) / (m + 1) in double-float (dfadd2_vf2_vf_vf twice, dfdiv_vf2_vf2_vf2 with FMA)
        var (nx, ny) = TwoSum(-1f, m);
        var (dx, dy) = TwoSum(1f, m);
        float t = 1f / dx;
        float qx = nx * t;
        float u = MathF.FusedMultiplyAdd(t, nx, -qx);
        float v = MathF.FusedMultiplyAdd(-dy, t, MathF.FusedMultiplyAdd(-dx, t, 1f));
        float qy = MathF.FusedMultiplyAdd(qx, v, MathF.FusedMultiplyAdd(ny, t, u));

        float x2 = qx * qx;
        float p = 0.3027294874f;
        p = MathF.FusedMultiplyAdd(p, x2, 0.3996108174f);
        p = MathF.FusedMultiplyAdd(p, x2, 0.6666694880f);

        // s += 2x (dfadd_vf2_vf2_vf2), then s += x³·p (dfadd_vf2_vf2_vf)
        float ax = 2f * qx, ay = 2f * qy;
        float s1 = sx + ax;
        float s1y = (sx - s1) + ax + sy + ay;
        float w = x2 * qx * p;
        float s2 = s1 + w;
        float s2y = (s1 - s2) + w + s1y;
        return s2 + s2y;
    }

    /// <summary><c>torch.cumprod</c> of a float32 vector on the CPU: the running product in double, each entry rounded to float32.</summary>
    public static float[] Cumprod(ReadOnlySpan<float> x)
    {
        var r = new float[x.Length];
        double acc = 1.0;
        for (int i = 0; i < x.Length; i++)
        {
            acc *= x[i];
            r[i] = (float)acc;
        }
        return r;
    }

    /// <summary>
    /// <c>torch.sigmoid</c> of a contiguous float32 vector as torch 1.13's CPU kernel computes it on one thread: blocks of
    /// 16 in vector arithmetic (<c>1 / (1 + exp(0 − x))</c> with SLEEF's <c>expf</c>), the remaining entries in scalar
    /// arithmetic with the C library's <c>expf</c>.
    /// </summary>
    public static float[] Sigmoid(ReadOnlySpan<float> x)
    {
        var r = new float[x.Length];
        int vectorised = x.Length / 16 * 16;
        for (int i = 0; i < x.Length; i++)
            r[i] = 1f / ((i < vectorised ? Exp(0f - x[i]) : MathF.Exp(-x[i])) + 1f);
        return r;
    }

    private static (float Hi, float Lo) TwoSum(float x, float y)
    {
        float s = x + y;
        float v = s - x;
        return (s, (x - (s - v)) + (y - v));
    }

    private static float Pow2I(int q) => BitConverter.Int32BitsToSingle((q + 0x7f) << 23);
}
