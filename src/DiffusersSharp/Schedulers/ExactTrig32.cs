namespace DiffusersSharp.Schedulers;

/// <summary>
/// <c>torch.sin</c> and <c>torch.atan2</c> of float32 values as torch 1.13's CPU kernels compute them (the build the
/// golden data was made with: AVX2 + FMA), in managed code so that they are the same on every CPU: ports of SLEEF 3.5's
/// <c>sinf_u1</c> and <c>atan2f_u1</c> (double-float arithmetic with FMA), which torch vectorises <c>sin</c> with for
/// every element and <c>atan2</c> with for each whole block of 16; <c>atan2</c>'s remaining elements go through the C
/// library's <c>atan2f</c> (<see cref="Atan2Tail"/>, the one part that follows the platform's C library). Neither is
/// always correctly rounded, and IPNDM's schedule (sqrt(1 - sin⁴) near 1) magnifies a one-ulp difference of sin a
/// hundredfold, hence the port.
/// </summary>
internal static class ExactTrig32
{
    private readonly record struct DF(float X, float Y);

    private static float Fma(float a, float b, float c) => MathF.FusedMultiplyAdd(a, b, c);

    // SLEEF's double-float helpers (df.h, the FMA variants)
    private static DF AddFF(float x, float y)
    {
        float s = x + y;
        return new(s, x - s + y);
    }

    private static DF Add2FF(float x, float y)
    {
        float s = x + y, v = s - x;
        return new(s, x - (s - v) + (y - v));
    }

    private static DF AddDF(DF x, float y)
    {
        float s = x.X + y;
        return new(s, x.X - s + y + x.Y);
    }

    private static DF AddFDF(float x, DF y)
    {
        float s = x + y.X;
        return new(s, x - s + y.X + y.Y);
    }

    private static DF AddDFDF(DF x, DF y)
    {
        float s = x.X + y.X;
        return new(s, x.X - s + y.X + x.Y + y.Y);
    }

    private static DF Normalize(DF t)
    {
        float s = t.X + t.Y;
        return new(s, t.X - s + t.Y);
    }

    private static DF Squ(DF x)
    {
        float s = x.X * x.X;
        return new(s, Fma(x.X + x.X, x.Y, Fma(x.X, x.X, -s)));
    }

    private static DF Mul(DF x, DF y)
    {
        float s = x.X * y.X;
        return new(s, Fma(x.X, y.Y, Fma(x.Y, y.X, Fma(x.X, y.X, -s))));
    }

    private static DF Mul(DF x, float y)
    {
        float s = x.X * y;
        return new(s, Fma(x.Y, y, Fma(x.X, y, -s)));
    }

    private static float MulToFloat(DF x, DF y) => Fma(x.X, y.X, Fma(x.Y, y.X, x.X * y.Y));

    private static DF Div(DF n, DF d)
    {
        float t = 1f / d.X;
        float s = n.X * t;
        float u = Fma(t, n.X, -s);
        float v = Fma(-d.Y, t, Fma(-d.X, t, 1f));
        return new(s, Fma(s, v, Fma(n.Y, t, u)));
    }

    private static float MulSign(float x, float y) =>
        BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(x) ^ (BitConverter.SingleToInt32Bits(y) & int.MinValue));

    /// <summary>
    /// <c>torch.sin</c> of a float32 (SLEEF's <c>sinf_u1</c>) for |d| &lt; 125, its fast range; larger arguments, which no
    /// schedule reaches, fall back to the float64 sine rounded to float32.
    /// </summary>
    public static float Sin(float d)
    {
        if (!(Math.Abs(d) < 125f)) return (float)Math.Sin(d);
        float u = MathF.Round(d * (float)(1 / Math.PI), MidpointRounding.ToEven);
        int q = (int)u;
        float v = Fma(u, -3.1414794921875f, d);
        var s = Add2FF(v, u * -0.00011315941810607910156f);
        s = AddDF(s, u * -1.9841872589410058936e-09f);
        var t = s;
        s = Squ(s);
        u = 2.6083159809786593541503e-06f;
        u = Fma(u, s.X, -0.0001981069071916863322258f);
        u = Fma(u, s.X, 0.00833307858556509017944336f);
        var x = AddFDF(1f, Mul(AddFF(-0.166666597127914428710938f, u * s.X), s));
        u = MulToFloat(t, x);
        if ((q & 1) == 1) u = -u;
        return d == 0 && float.IsNegative(d) ? d : u;
    }

    /// <summary><c>torch.atan2</c> of float32 values in a vectorised block (SLEEF's <c>atan2f_u1</c>).</summary>
    public static float Atan2(float y, float x)
    {
        if (float.IsNaN(x) || float.IsNaN(y)) return float.NaN;
        if (Math.Abs(x) < 2.9387372783541830947e-39f)
        {
            x *= 1 << 24;
            y *= 1 << 24;
        }
        var d = Atan2K(new DF(Math.Abs(y), 0), new DF(x, 0));
        float r = MulSign(d.X + d.Y, x);
        if (float.IsInfinity(x) || x == 0) r = (float)(Math.PI / 2) - InfSign(x, MulSign((float)(Math.PI / 2), x));
        if (float.IsInfinity(y)) r = (float)(Math.PI / 2) - InfSign(x, MulSign((float)(Math.PI / 4), x));
        if (y == 0) r = float.IsNegative(x) ? (float)Math.PI : 0f;
        return MulSign(r, y);
    }

    /// <summary>
    /// <c>torch.atan2</c> of float32 values past the last whole block of 16: the C library's <c>atan2f</c>, which .NET's
    /// <see cref="MathF.Atan2"/> calls (glibc's on Linux, as torch's; its float32 result is not always the float64 atan2
    /// rounded: 8 of 43 such values of IPNDM's schedules differ).
    /// </summary>
    public static float Atan2Tail(float y, float x) => MathF.Atan2(y, x);

    // visinf2_vf_vf_vf: m with d's sign bit where d is infinite, else 0
    private static float InfSign(float d, float m) =>
        float.IsInfinity(d)
            ? BitConverter.Int32BitsToSingle((BitConverter.SingleToInt32Bits(d) & int.MinValue) | BitConverter.SingleToInt32Bits(m))
            : 0f;

    private static DF Atan2K(DF y, DF x)
    {
        int q = x.X < 0 ? -2 : 0;
        if (x.X < 0) x = new DF(-x.X, -x.Y);
        bool p = x.X < y.X;
        if (p) q++;
        var s = p ? new DF(-x.X, -x.Y) : y;
        var t = p ? y : x;
        s = Div(s, t);
        t = Normalize(Squ(s));
        float u = -0.00176397908944636583328247f;
        u = Fma(u, t.X, 0.0107900900766253471374512f);
        u = Fma(u, t.X, -0.0309564601629972457885742f);
        u = Fma(u, t.X, 0.0577365085482597351074219f);
        u = Fma(u, t.X, -0.0838950723409652709960938f);
        u = Fma(u, t.X, 0.109463557600975036621094f);
        u = Fma(u, t.X, -0.142626821994781494140625f);
        u = Fma(u, t.X, 0.199983194470405578613281f);
        t = Mul(t, AddFF(-0.333332866430282592773438f, u * t.X));
        t = Mul(s, AddFDF(1f, t));
        return AddDFDF(Mul(new DF(1.5707963705062866211f, -4.3711388286737928865e-08f), (float)q), t);
    }

    /// <summary>
    /// <c>torch.atan2(y, x)</c> of two float32 arrays of one length as torch 1.13's CPU loop runs it: SLEEF on each whole
    /// block of 16 from the start, the C library on the rest.
    /// </summary>
    public static float[] Atan2(float[] y, float[] x)
    {
        var r = new float[y.Length];
        int vectorised = y.Length / 16 * 16;
        for (int i = 0; i < y.Length; i++) r[i] = i < vectorised ? Atan2(y[i], x[i]) : Atan2Tail(y[i], x[i]);
        return r;
    }
}
