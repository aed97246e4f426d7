using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// The helpers diffusers' scheduler files share (betas, zero-SNR rescale, numpy-exact timestep spacings,
/// dynamic thresholding, sigma tables), each reproducing the numeric path diffusers takes:
/// torch float32 ops where diffusers uses torch, float64 where it uses Python floats or numpy.
/// </summary>
internal static class SchedulerMath
{
    /// <summary>The beta schedules every scheduler class accepts (DDPM adds sigmoid, Heun exp).</summary>
    public static readonly string[] BetaSchedules = ["linear", "scaled_linear", "squaredcos_cap_v2"];

    /// <summary>
    /// diffusers' beta table as float32 values: <c>torch.linspace(..., dtype=float32)</c> (torch 1.13's kernel, see
    /// <see cref="Linspace32"/>), its square for scaled_linear, <c>betas_for_alpha_bar</c> (float64 maths, then
    /// float32), sigmoid, or <c>trained_betas</c>. <paramref name="extraSchedules"/>: the schedules the class accepts
    /// beyond <see cref="BetaSchedules"/>.
    /// </summary>
    public static float[] Betas(string cls, IBetaScheduleConfig c, IReadOnlyList<string> extraSchedules)
    {
        int n = c.NumTrainTimesteps;
        if (c.TrainedBetas is { } trained)
        {
            if (trained.Length != n)
                throw new ConfigException($"{cls}: trained_betas has {trained.Length} values but num_train_timesteps is {n}") { Key = "trained_betas" };
            return trained.Select(b => (float)b).ToArray();
        }
        string schedule = c.BetaSchedule;
        if (!BetaSchedules.Contains(schedule) && !extraSchedules.Contains(schedule))
            throw new ConfigException(
                $"{cls}: beta_schedule \"{schedule}\" is not implemented for {cls}; expected one of " +
                $"{string.Join(", ", BetaSchedules.Concat(extraSchedules).Select(a => "\"" + a + "\""))} (or trained_betas)")
            { Key = "beta_schedule" };
        switch (schedule)
        {
            case "linear":
                return Linspace32(c.BetaStart, c.BetaEnd, n);
            case "scaled_linear":
                // torch.linspace(beta_start ** 0.5, beta_end ** 0.5, n) ** 2 (x ** 2 is x * x in torch)
                return Linspace32(Math.Pow(c.BetaStart, 0.5), Math.Pow(c.BetaEnd, 0.5), n).Select(v => v * v).ToArray();
            case "squaredcos_cap_v2":
                return BetasForAlphaBar(n);
            case "exp":
                return BetasForAlphaBar(n, exp: true);
            default: // sigmoid: torch.sigmoid(torch.linspace(-6, 6, n)) * (beta_end - beta_start) + beta_start
            {
                float scale = (float)(c.BetaEnd - c.BetaStart), start = (float)c.BetaStart;
                return ExactFloat32.Sigmoid(Linspace32(-6, 6, n)).Select(v => v * scale + start).ToArray();
            }
        }
    }

    /// <summary>
    /// torch's float32 <c>linspace</c> exactly as the golden reference's torch 1.13 CPU kernel (AVX2 build) computes
    /// it: step = (end - start) / (steps - 1) in float32; element k is start + step*k (first half) or
    /// end - step*(steps-1-k) (second half), each a fused multiply-add; in the vectorised body (pairs of 8-lane
    /// blocks) a block takes the half of its first index and its lanes are base + (j*step). The remainder is
    /// scalar. Verified bit-exact against the golden betas. (libtorch 2.10's kernel differs in ~20% of values.)
    /// </summary>
    public static float[] Linspace32(double startD, double endD, int steps)
    {
        var y = new float[steps];
        if (steps == 0) return y;
        float start = (float)startD, end = (float)endD;
        if (steps == 1) { y[0] = start; return y; }
        float step = (end - start) / (float)(steps - 1);
        int halfway = steps / 2;
        float At(int k) => k < halfway
            ? MathF.FusedMultiplyAdd(step, k, start)
            : MathF.FusedMultiplyAdd(-step, steps - k - 1, end);
        const int vec = 8;
        int i = 0;
        for (; i <= steps - 2 * vec; i += 2 * vec)
        {
            for (int half = 0; half < 2; half++)
            {
                int b0 = i + half * vec;
                float b = At(b0);
                for (int j = 0; j < vec; j++) y[b0 + j] = b + (float)(j * step);
            }
        }
        for (; i < steps; i++) y[i] = At(i);
        return y;
    }

    /// <summary>diffusers' <c>betas_for_alpha_bar</c> (cosine, or exp(-12 t) with <paramref name="exp"/>; max_beta 0.999): Python float maths, then float32.</summary>
    public static float[] BetasForAlphaBar(int n, double maxBeta = 0.999, bool exp = false)
    {
        double AlphaBar(double t)
        {
            if (exp) return Math.Exp(t * -12.0);
            double c = Math.Cos((t + 0.008) / 1.008 * Math.PI / 2);
            return c * c;
        }
        var betas = new float[n];
        for (int i = 0; i < n; i++)
        {
            double t1 = (double)i / n, t2 = (double)(i + 1) / n;
            betas[i] = (float)Math.Min(1 - AlphaBar(t2) / AlphaBar(t1), maxBeta);
        }
        return betas;
    }

    /// <summary>
    /// diffusers' <c>rescale_zero_terminal_snr</c> (arXiv 2305.08891, Algorithm 1) in torch's float32 op chain:
    /// alphas_cumprod (double running product, rounded per entry), its square root, shifted by the last value and
    /// scaled by <c>s0 / (s0 - sT)</c>, squared (x * x), the ratios of neighbours, <c>1 - ratio</c>. Every step is a
    /// correctly rounded float32 operation, as in torch 1.13; none goes through libtorch's vector maths.
    /// </summary>
    public static float[] RescaleZeroTerminalSnr(float[] betas)
    {
        var alphas = betas.Select(b => 1f - b).ToArray();
        var sqrtBar = ExactFloat32.Cumprod(alphas).Select(ExactFloat32.Sqrt).ToArray();
        float s0 = sqrtBar[0], sT = sqrtBar[^1];
        float scale = s0 / (s0 - sT);
        var bar = sqrtBar.Select(v => (v - sT) * scale).Select(v => v * v).ToArray();
        var result = new float[bar.Length];
        result[0] = 1f - bar[0];
        for (int i = 1; i < bar.Length; i++) result[i] = 1f - bar[i] / bar[i - 1];
        return result;
    }

    // ---------------------------------------------------------------- numpy-exact helpers (float64)

    /// <summary><c>np.linspace(start, stop, num)</c> (endpoint true): <c>i * step + start</c>, the last value set to stop.</summary>
    public static double[] NpLinspace(double start, double stop, int num)
    {
        var y = new double[num];
        if (num == 0) return y;
        int div = num - 1;
        double delta = stop - start;
        double step = div > 0 ? delta / div : double.NaN;
        for (int i = 0; i < num; i++)
        {
            if (div > 0 && step == 0) y[i] = i / (double)div * delta + start;
            else y[i] = div > 0 ? i * step + start : start;
        }
        if (num > 1) y[num - 1] = stop;
        return y;
    }

    /// <summary><c>np.arange(start, stop, step)</c> for floats: length ceil((stop-start)/step), values start + i*((start+step)-start).</summary>
    public static double[] NpArange(double start, double stop, double step)
    {
        double lenD = Math.Ceiling((stop - start) / step);
        int len = lenD > 0 ? (int)lenD : 0;
        var y = new double[len];
        if (len == 0) return y;
        y[0] = start;
        if (len == 1) return y;
        double next = start + step;
        double delta = next - start;
        y[1] = next;
        for (int i = 2; i < len; i++) y[i] = start + i * delta;
        return y;
    }

    /// <summary><c>np.round</c> (round half to even).</summary>
    public static double NpRound(double x) => Math.Round(x, MidpointRounding.ToEven);

    /// <summary>
    /// The integer timesteps of diffusers' three spacings (DDPM / DDIM / PNDM / DPM-Solver style, int64):
    /// linspace: <c>np.linspace(0, T-1, N).round()[::-1].astype(int64)</c>; leading:
    /// <c>(arange(N) * (T // N)).round()[::-1] + steps_offset</c>; trailing: <c>round(arange(T, 0, -T/N)) - 1</c>.
    /// </summary>
    public static long[] IntSpacing(string cls, string spacing, int numTrain, int n, int stepsOffset)
    {
        switch (spacing)
        {
            case "linspace":
                return NpLinspace(0, numTrain - 1, n).Select(v => (long)NpRound(v)).Reverse().ToArray();
            case "leading":
            {
                long ratio = numTrain / n;
                return Enumerable.Range(0, n).Select(i => i * ratio + stepsOffset).Reverse().ToArray();
            }
            case "trailing":
            {
                double ratio = numTrain / (double)n;
                return NpArange(numTrain, 0, -ratio).Select(v => (long)NpRound(v) - 1).ToArray();
            }
            default:
                throw BadSpacing(cls, spacing);
        }
    }

    public static ConfigException BadSpacing(string cls, string spacing) =>
        new($"{cls}: timestep_spacing \"{spacing}\" is not supported; choose one of \"linspace\", \"leading\" or \"trailing\"") { Key = "timestep_spacing" };

    // ---------------------------------------------------------------- torch helpers

    /// <summary>
    /// Dynamic thresholding (Imagen, arXiv 2205.11487) as diffusers' <c>_threshold_sample</c>: per batch item the
    /// <paramref name="ratio"/>-quantile s of |x0|, clamped to [1, <paramref name="maxValue"/>]; x0 clamped to [-s, s] / s.
    /// </summary>
    public static Tensor ThresholdSample(Tensor sample, double ratio, double maxValue)
    {
        using var scope = torch.NewDisposeScope();
        var dtype = sample.dtype;
        var shape = sample.shape;
        var x = sample;
        if (dtype != ScalarType.Float32 && dtype != ScalarType.Float64) x = x.to(ScalarType.Float32);
        long rest = 1;
        for (int i = 2; i < shape.Length; i++) rest *= shape[i];
        x = x.reshape(shape[0], shape[1] * rest);
        var abs = x.abs();
        var q = torch.tensor(ratio, x.dtype);
        var s = torch.quantile(abs, q, dim: 1);
        s = torch.clamp(s, 1, maxValue);
        s = s.unsqueeze(1);
        x = torch.clamp(x, -s, s) / s;
        return x.reshape(shape).to(dtype).MoveToOuterDisposeScope();
    }

    /// <summary>The float32 sigma table of the sigma-based schedulers: <c>((1 - alphas_cumprod) / alphas_cumprod) ** 0.5</c>.</summary>
    public static float[] TrainSigmas(float[] alphasCumprod) =>
        alphasCumprod.Select(a => ExactFloat32.Sqrt((1f - a) / a)).ToArray();

    /// <summary>
    /// Karras et al. (2022) sigmas (diffusers' <c>_convert_to_karras</c>, float64 numpy):
    /// <c>(max^(1/rho) + linspace(0,1,N) * (min^(1/rho) - max^(1/rho))) ^ rho</c>, rho = 7.
    /// </summary>
    public static double[] KarrasSigmas(double sigmaMin, double sigmaMax, int n, double rho = 7.0)
    {
        var ramp = NpLinspace(0, 1, n);
        double minInv = Math.Pow(sigmaMin, 1 / rho), maxInv = Math.Pow(sigmaMax, 1 / rho);
        return ramp.Select(r => Math.Pow(maxInv + r * (minInv - maxInv), rho)).ToArray();
    }

    /// <summary><c>np.interp(x, xp, fp)</c> for increasing <paramref name="xp"/>.</summary>
    public static double NpInterp(double x, double[] xp, double[] fp)
    {
        int n = xp.Length;
        if (x <= xp[0]) return fp[0];
        if (x >= xp[n - 1]) return fp[n - 1];
        int j = Array.BinarySearch(xp, x);
        if (j >= 0) return fp[j];
        j = ~j - 1;
        double slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
        return slope * (x - xp[j]) + fp[j];
    }
}
