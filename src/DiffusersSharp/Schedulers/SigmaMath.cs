using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// The sigma-schedule helpers of the k-diffusion style schedulers (Euler, Euler ancestral, LMS, Heun, KDPM2),
/// with numpy 1.24's dtypes: float32 sigma tables and log-sigmas, float64 <c>np.interp</c> and Karras ramps.
/// </summary>
internal static class SigmaMath
{
    /// <summary>
    /// The float timesteps of the three spacings (<c>np.linspace(0, T-1, N, dtype=float32)[::-1]</c>; leading
    /// <c>(arange(N) * (T // N)).round()[::-1].astype(float32) + steps_offset</c>; trailing
    /// <c>arange(T, 0, -T/N).round().astype(float32) - 1</c>), as float32 values.
    /// </summary>
    public static float[] FloatSpacing(string cls, string spacing, int numTrain, int n, int stepsOffset)
    {
        switch (spacing)
        {
            case "linspace":
                return SchedulerMath.NpLinspace(0, numTrain - 1, n).Select(v => (float)v).Reverse().ToArray();
            case "leading":
            {
                long ratio = numTrain / n;
                return Enumerable.Range(0, n).Select(i => (float)(i * ratio) + stepsOffset).Reverse().ToArray();
            }
            case "trailing":
            {
                double ratio = numTrain / (double)n;
                return SchedulerMath.NpArange(numTrain, 0, -ratio).Select(v => (float)SchedulerMath.NpRound(v) - 1f).ToArray();
            }
            default:
                throw SchedulerMath.BadSpacing(cls, spacing);
        }
    }

    /// <summary><c>np.log</c> of the float32 training sigmas (float32, numpy's SIMD kernel: see <see cref="NumpyLog32"/>).</summary>
    public static float[] Log32(float[] sigmas) => sigmas.Select(NumpyLog32).ToArray();

    /// <summary>
    /// numpy 1.24's float32 <c>np.log</c> as its AVX2/FMA3 (and AVX512F) kernel computes it, which is not
    /// correctly rounded (up to ~3.8 ulp): x = 2^k·m with m normalised to (√½, √2], then a [5/5] rational
    /// minimax polynomial in m - 1 evaluated with fused multiply-adds, plus k·ln2 (one more FMA). Reproducing
    /// it makes the Karras timesteps (which go through <c>_sigma_to_t</c> on these logs) bit-exact.
    /// </summary>
    public static float NumpyLog32(float v)
    {
        if (float.IsNaN(v)) return float.NaN;
        if (v < 0) return float.NaN;
        if (v == 0) return float.NegativeInfinity;
        if (float.IsPositiveInfinity(v)) return float.PositiveInfinity;
        float x = v;
        bool denormal = x < BitConverter.Int32BitsToSingle(0x00800000);  // FLT_MIN: pre-scale by 2^100
        if (denormal) x *= BitConverter.Int32BitsToSingle(0x71800000);
        int bits = BitConverter.SingleToInt32Bits(x);
        float exponent = (float)((int)((uint)bits >> 23) - 0x7E);
        if (denormal) exponent -= 100f;
        float m = BitConverter.Int32BitsToSingle((bits & 0x7fffff) | (126 << 23));
        if (m <= BitConverter.Int32BitsToSingle(0x3F3504F3)) { m += m; exponent -= 1f; }
        m -= 1f;
        float num = MathF.FusedMultiplyAdd(LogP[5], m, LogP[4]);
        num = MathF.FusedMultiplyAdd(num, m, LogP[3]);
        num = MathF.FusedMultiplyAdd(num, m, LogP[2]);
        num = MathF.FusedMultiplyAdd(num, m, LogP[1]);
        num = MathF.FusedMultiplyAdd(num, m, LogP[0]);
        float den = MathF.FusedMultiplyAdd(LogQ[5], m, LogQ[4]);
        den = MathF.FusedMultiplyAdd(den, m, LogQ[3]);
        den = MathF.FusedMultiplyAdd(den, m, LogQ[2]);
        den = MathF.FusedMultiplyAdd(den, m, LogQ[1]);
        den = MathF.FusedMultiplyAdd(den, m, LogQ[0]);
        return MathF.FusedMultiplyAdd(exponent, BitConverter.Int32BitsToSingle(0x3F317218), num / den);
    }

    // numpy's NPY_COEFF_{P,Q}{0..5}_LOGf (npy_simd_data.h).
    private static readonly float[] LogP = [0.0f, 9.999999999999998702752e-01f, 2.112677543073053063722e+00f,
        1.480000633576506585156e+00f, 3.808837741388407920751e-01f, 2.589979117907922693523e-02f];
    private static readonly float[] LogQ = [1.0f, 2.612677543073109236779e+00f, 2.453006071784736363091e+00f,
        9.864942958519418960339e-01f, 1.546476374983906719538e-01f, 5.875095403124574342950e-03f];

    /// <summary><c>np.interp(timesteps, arange(len(sigmas)), sigmas)</c> (float64 result).</summary>
    public static double[] InterpSigmas(float[] timesteps, float[] trainSigmas)
    {
        var xp = Enumerable.Range(0, trainSigmas.Length).Select(i => (double)i).ToArray();
        var fp = trainSigmas.Select(s => (double)s).ToArray();
        return timesteps.Select(t => SchedulerMath.NpInterp(t, xp, fp)).ToArray();
    }

    /// <summary>
    /// diffusers' <c>_sigma_to_t(sigma, log_sigmas)</c> with numpy 1.24's value-based casting: log_sigmas is
    /// float32, so the distances and the weight are float32; the final mix with the integer indices is float64.
    /// </summary>
    public static double SigmaToT(double sigma, float[] logSigmas)
    {
        CheckInterpolable(logSigmas);
        float logSigma = (float)Math.Log(Math.Max(sigma, 1e-10));
        int n = logSigmas.Length;
        int count = 0;
        for (int i = 0; i < n; i++) if (logSigma - logSigmas[i] >= 0) count++;
        int lowIdx = Math.Min(Math.Max(count - 1, 0), n - 2);
        int highIdx = lowIdx + 1;
        float low = logSigmas[lowIdx], high = logSigmas[highIdx];
        float w = (low - logSigma) / (low - high);
        w = Math.Clamp(w, 0f, 1f);
        return (double)(1f - w) * lowIdx + (double)w * highIdx;
    }

    /// <summary>
    /// <c>_sigma_to_t</c> interpolates between two neighbouring training sigmas: with one training timestep there is no
    /// pair, and diffusers' index −1 wraps round to a garbage timestep.
    /// </summary>
    internal static void CheckInterpolable(float[] logSigmas)
    {
        if (logSigmas.Length < 2)
            throw new ConfigException(
                $"num_train_timesteps {logSigmas.Length}: turning a sigma back into a timestep (Karras or Lu sigmas, KDPM2's " +
                "interpolated timesteps) interpolates between two training sigmas; use num_train_timesteps of at least 2")
            { Key = "num_train_timesteps" };
    }

    /// <summary>
    /// Karras sigmas from an interpolated schedule (diffusers' <c>_convert_to_karras</c>): sigma_min / sigma_max
    /// from the config when set, else the schedule's last / first value.
    /// </summary>
    public static double[] Karras(double[] inSigmas, int n, double? sigmaMin = null, double? sigmaMax = null) =>
        SchedulerMath.KarrasSigmas(sigmaMin ?? inSigmas[^1], sigmaMax ?? inSigmas[0], n);

    /// <summary>The index of the first step: the second match of the timestep when it occurs twice (diffusers' <c>_init_step_index</c>).</summary>
    public static int InitStepIndex(SchedulerBase s, double timestep, double[] schedule, bool float32)
    {
        double key = float32 ? (float)timestep : timestep;
        var matches = new List<int>();
        for (int i = 0; i < schedule.Length && matches.Count < 2; i++) if (schedule[i] == key) matches.Add(i);
        if (matches.Count == 0)
            throw new DiffusersException(schedule.Length == 0
                ? $"{s.ClassName}: call SetTimesteps before Step / ScaleModelInput (timestep {key})"
                : $"{s.ClassName}: timestep {key.ToString("R", System.Globalization.CultureInfo.InvariantCulture)} is not in the scheduler's timesteps");
        return matches.Count > 1 ? matches[1] : matches[0];
    }

    /// <summary>
    /// The index of a call of a scheduler that counts its steps (the sigma schedulers, LCM): at the first call
    /// (<paramref name="index"/> null) diffusers' <c>_init_step_index</c>; later calls must still pass a timestep of the
    /// schedule: diffusers ignores the timestep once the index is set, so a foreign one (a fraction, another schedule's)
    /// went on silently at the index's step.
    /// </summary>
    public static int CurrentIndex(SchedulerBase s, int? index, double timestep, double[] schedule, bool float32)
    {
        if (index is not int i) return InitStepIndex(s, timestep, schedule, float32);
        double key = float32 ? (float)timestep : timestep;
        if (Array.IndexOf(schedule, key) < 0)
            throw new DiffusersException(
                $"{s.ClassName}: timestep {key.ToString("R", System.Globalization.CultureInfo.InvariantCulture)} is not in the scheduler's timesteps");
        return i;
    }

    /// <summary>The index <paramref name="i"/> of a Step, an error once the schedule is done (diffusers steps past its end without a word).</summary>
    public static int StepInRange(SchedulerBase s, int i, int scheduleLength) =>
        i < scheduleLength
            ? i
            : throw new DiffusersException(
                $"{s.ClassName}: Step called more times than there are timesteps ({scheduleLength}); call SetTimesteps to start a new loop");

    /// <summary>
    /// Sigma-based add_noise (Euler, LMS, Heun, ...): each timestep is looked up in the schedule (exactly one
    /// match required, as <c>.nonzero().item()</c>), then <c>original + noise * sigma</c>.
    /// </summary>
    public static Tensor AddNoise(SchedulerBase s, Tensor sigmas, Tensor scheduleTimesteps, Tensor original, Tensor noise, Tensor timesteps)
    {
        s.CheckNoiseInputs("add_noise", original, "original_samples", noise, timesteps);
        using var scope = torch.NewDisposeScope();
        var sched = scheduleTimesteps.to(ScalarType.Float64, CPU).data<double>().ToArray();
        bool f32 = scheduleTimesteps.dtype == ScalarType.Float32;
        var wanted = timesteps.to(ScalarType.Float64, CPU).data<double>().ToArray();
        var idx = new long[wanted.Length];
        for (int k = 0; k < wanted.Length; k++)
        {
            double key = f32 ? (float)wanted[k] : wanted[k];
            var hits = Enumerable.Range(0, sched.Length).Where(i => sched[i] == key).ToList();
            if (hits.Count != 1)
                throw new DiffusersException(hits.Count == 0
                    ? $"{s.ClassName}: add_noise timestep {wanted[k]} is not in the scheduler's timesteps"
                    : $"{s.ClassName}: add_noise timestep {wanted[k]} occurs {hits.Count} times in the scheduler's timesteps");
            idx[k] = hits[0];
        }
        var sig = sigmas.to(original.dtype, original.device).index_select(0, torch.tensor(idx, device: original.device)).flatten();
        while (sig.dim() < original.dim()) sig = sig.unsqueeze(-1);
        return (original + noise * sig).MoveToOuterDisposeScope();
    }
}
