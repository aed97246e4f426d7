using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// What diffusers' <c>KDPM2DiscreteScheduler</c> and <c>KDPM2AncestralDiscreteScheduler</c> share (k-diffusion's
/// DPM-Solver-2 as a two-call step): the interpolated float32 sigma table (doubled, 2N + 2 values, the last two 0: <see cref="SigmaSchedulerBase{TSelf, TConfig}.SigmaValues"/>), the "interpolated" sigmas at the
/// log-midpoints and their fractional timesteps, the doubled tables (<c>cat([s[:1], s[1:].repeat_interleave(2),
/// s[-1:]])</c>), the first/second-half state, the σ of each half's model input; the rest as every sigma-space
/// scheduler (<see cref="SigmaSchedulerBase{TSelf, TConfig}"/>), with the counted <c>add_noise</c>.
/// </summary>
/// <typeparam name="TSelf">The scheduler class.</typeparam>
/// <typeparam name="TConfig">Its config record.</typeparam>
public abstract class KDpm2SchedulerBase<TSelf, TConfig> : SigmaSchedulerBase<TSelf, TConfig>
    where TSelf : KDpm2SchedulerBase<TSelf, TConfig>
    where TConfig : SchedulerConfig, ISigmaScheduleConfig, new()
{
    /// <summary>Stores the config and builds the betas (see <see cref="SchedulerBase{TSelf, TConfig}"/>).</summary>
    protected KDpm2SchedulerBase(TConfig? config) : base(config) { }

    /// <summary>The doubled interpolated sigmas.</summary>
    protected float[] InterpolTable { get; private set; } = [];
    /// <summary>The sample of the first half of the current step (null: the next call is a first half).</summary>
    protected Tensor? FirstHalfSample { get; set; }

    /// <inheritdoc/>
    public override int Order => 2;
    /// <summary>diffusers' <c>state_in_first_order</c>.</summary>
    public bool StateInFirstOrder => FirstHalfSample is null;

    /// <summary>The config's <c>use_karras_sigmas</c>.</summary>
    protected abstract bool UseKarras { get; }

    /// <summary>(sigmas with the final 0, their log-sigma table, the float timesteps) of one set_timesteps call (its step
    /// count checked and recorded). The tables have one entry per spaced timestep, which is one more than the steps asked
    /// for where "trailing" spacing's <c>np.arange</c> overshoots (1000 training steps, 61 steps: 62 timesteps, the last
    /// −1, its σ the table's first by <c>np.interp</c>): callers size their tables by <c>Timesteps.Length</c>, as diffusers
    /// does by the arrays' lengths.</summary>
    protected (float[] Sigmas, float[] LogSigmas, double[] Timesteps, bool Float64) BaseSchedule(int n)
    {
        var (ts32, train) = BeginSchedule(n);
        var logSigmas = SigmaMath.Log32(train);
        var sigmas = SigmaMath.InterpSigmas(ts32, train);
        double[] ts = ts32.Select(v => (double)v).ToArray();
        if (UseKarras)
        {
            sigmas = SigmaMath.Karras(sigmas, n);
            ts = sigmas.Select(s => SchedulerMath.NpRound(SigmaMath.SigmaToT(s, logSigmas))).ToArray();
        }
        return ([.. sigmas.Select(s => (float)s), 0f], logSigmas, ts, UseKarras);
    }

    /// <summary>exp(lerp(log a, log b, 0.5)) in float32 (torch's lerp at weight 0.5: b − (b − a) · 0.5).</summary>
    protected static float LogMidpoint(float a, float b)
    {
        float la = ExactFloat32.Log(a), lb = ExactFloat32.Log(b);
        return ExactFloat32.Exp(lb - (lb - la) * 0.5f);
    }

    /// <summary>
    /// <c>_sigma_to_t</c> as diffusers evaluates it on the 0-dim float32 torch tensors of <c>sigmas_interpol</c>:
    /// float32 throughout, including the final blend.
    /// </summary>
    protected static float SigmaToTFloat32(float sigma, float[] logSigmas)
    {
        SigmaMath.CheckInterpolable(logSigmas);
        float logSigma = (float)Math.Log(Math.Max(sigma, 1e-10));
        int n = logSigmas.Length, last = -1;
        for (int i = 0; i < n; i++) if (logSigma - logSigmas[i] >= 0) last = i;
        int lowIdx = Math.Min(Math.Max(last, 0), n - 2), highIdx = lowIdx + 1;
        float low = logSigmas[lowIdx], high = logSigmas[highIdx];
        float w = Math.Clamp((low - logSigma) / (low - high), 0f, 1f);
        if (float.IsNaN(logSigma)) w = float.NaN;
        return (1f - w) * lowIdx + w * highIdx;
    }

    /// <summary><c>cat([x[:1], x[1:].repeat_interleave(2), x[-1:]])</c>.</summary>
    protected static float[] Doubled(float[] x)
    {
        var r = new List<float> { x[0] };
        for (int i = 1; i < x.Length; i++) { r.Add(x[i]); r.Add(x[i]); }
        r.Add(x[^1]);
        return [.. r];
    }

    /// <summary>Installs the tables and timesteps of one set_timesteps call and resets the step state.</summary>
    protected void Install(float[] sigmas, float[] interpol, double[] timesteps, bool float64, Device? device)
    {
        InterpolTable = Doubled(interpol);
        var t = float64 ? torch.tensor(timesteps, ScalarType.Float64) : torch.tensor(timesteps.Select(v => (float)v).ToArray(), ScalarType.Float32);
        SetSchedule(Doubled(sigmas), device is null ? t : t.to(device, disposeAfter: true), null);
        Release(FirstHalfSample);
        FirstHalfSample = null;
    }

    /// <summary>The σ the model input is scaled with at step <paramref name="i"/> (first or second half).</summary>
    protected abstract override float InputSigma(int i);

    /// <inheritdoc/>
    protected override Tensor AddNoiseCore(Tensor originalSamples, Tensor noise, Tensor timesteps) =>
        AddNoiseCounted(originalSamples, noise, timesteps);
}
