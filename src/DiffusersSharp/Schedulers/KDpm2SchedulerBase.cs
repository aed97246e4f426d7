using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// What diffusers' <c>KDPM2DiscreteScheduler</c> and <c>KDPM2AncestralDiscreteScheduler</c> share (k-diffusion's
/// DPM-Solver-2 as a two-call step): the interpolated float32 sigma table, the "interpolated" sigmas at the
/// log-midpoints and their fractional timesteps, the doubled tables (<c>cat([s[:1], s[1:].repeat_interleave(2),
/// s[-1:]])</c>), the first/second-half state, <c>scale_model_input</c>, <c>init_noise_sigma</c>, <c>add_noise</c>.
/// </summary>
/// <typeparam name="TSelf">The scheduler class.</typeparam>
/// <typeparam name="TConfig">Its config record.</typeparam>
public abstract class KDpm2SchedulerBase<TSelf, TConfig> : SchedulerBase<TSelf, TConfig>
    where TSelf : KDpm2SchedulerBase<TSelf, TConfig>
    where TConfig : SchedulerConfig, IBetaScheduleConfig, new()
{
    /// <summary>Stores the config and builds the betas (see <see cref="SchedulerBase{TSelf, TConfig}"/>).</summary>
    protected KDpm2SchedulerBase(TConfig? config) : base(config) { }

    private Tensor? _sigmasTensor;
    private readonly Dictionary<double, int> _indexCounter = [];

    /// <summary>The doubled sigma table (2N + 2 float32 values, the last two 0).</summary>
    protected float[] SigmaTable { get; private set; } = [];
    /// <summary>The doubled interpolated sigmas.</summary>
    protected float[] InterpolTable { get; private set; } = [];
    /// <summary>The sample of the first half of the current step (null: the next call is a first half).</summary>
    protected Tensor? FirstHalfSample { get; set; }

    /// <inheritdoc/>
    public override Tensor? Sigmas => _sigmasTensor;
    /// <inheritdoc/>
    public override int Order => 2;
    /// <summary>
    /// diffusers' <c>step_index</c>: the index of the next step in <see cref="SchedulerBase.Timesteps"/>; null before
    /// the first step.
    /// </summary>
    public int? StepIndex { get; protected set; }
    /// <summary>diffusers' <c>state_in_first_order</c>.</summary>
    public bool StateInFirstOrder => FirstHalfSample is null;

    /// <summary>The config's <c>timestep_spacing</c>.</summary>
    protected abstract string Spacing { get; }
    /// <summary>The config's <c>steps_offset</c>.</summary>
    protected abstract int StepsOffset { get; }
    /// <summary>The config's <c>use_karras_sigmas</c>.</summary>
    protected abstract bool UseKarras { get; }

    /// <inheritdoc/>
    public override double InitNoiseSigma
    {
        get
        {
            float max = SigmaTable.Max();
            return Spacing is "linspace" or "trailing" ? max : ExactFloat32.Sqrt(max * max + 1f);
        }
    }

    /// <summary>(sigmas with the final 0, their log-sigma table, the float timesteps) of one set_timesteps call.</summary>
    protected (float[] Sigmas, float[] LogSigmas, double[] Timesteps, bool Float64) BaseSchedule(int n)
    {
        var ts32 = SigmaMath.FloatSpacing(ClassName, Spacing, NumTrainTimesteps, n, StepsOffset);
        var train = SchedulerMath.TrainSigmas(AlphasCumprodValues);
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
    protected void Install(float[] sigmas, float[] interpol, double[] timesteps, bool float64, int n, Device? device)
    {
        SigmaTable = Doubled(sigmas);
        InterpolTable = Doubled(interpol);
        _sigmasTensor?.Dispose();
        _sigmasTensor = torch.tensor(SigmaTable, ScalarType.Float32).DetachFromDisposeScope();
        var t = float64 ? torch.tensor(timesteps, ScalarType.Float64) : torch.tensor(timesteps.Select(v => (float)v).ToArray(), ScalarType.Float32);
        Timesteps = device is null ? t : t.to(device, disposeAfter: true);
        NumInferenceSteps = n;
        FirstHalfSample?.Dispose();
        FirstHalfSample = null;
        StepIndex = null;
        _indexCounter.Clear();
    }

    private bool F32 => Timesteps.dtype == ScalarType.Float32;

    /// <summary>Starts the step counter at the first call (diffusers' <c>_init_step_index</c>, no fallback).</summary>
    protected int CurrentIndex(double timestep) =>
        StepIndex ??= SigmaMath.InitStepIndex(this, timestep, TimestepValues, F32);

    /// <summary>Counts the timestep (diffusers' <c>_index_counter</c>, used by add_noise) and checks the schedule is not done.</summary>
    protected int BeginStep(double timestep)
    {
        int i = CurrentIndex(timestep);
        if (i >= Timesteps.shape[0])
            throw new DiffusersException($"{ClassName}: Step called more times than there are timesteps ({Timesteps.shape[0]}); call SetTimesteps to start a new loop");
        double key = F32 ? (float)timestep : timestep;
        _indexCounter[key] = _indexCounter.GetValueOrDefault(key) + 1;
        return i;
    }

    /// <summary>The σ the model input is scaled with at step <paramref name="i"/> (first or second half).</summary>
    protected abstract float InputSigma(int i);

    /// <inheritdoc/>
    public override Tensor ScaleModelInput(Tensor sample, double timestep)
    {
        float sigma = InputSigma(CurrentIndex(timestep));
        return sample / ExactFloat32.Sqrt(sigma * sigma + 1f);
    }

    /// <summary>x0 from the model output at σ_input (epsilon or v_prediction; "sample" is rejected at construction).</summary>
    protected static Tensor PredictX0(string predictionType, Tensor modelOutput, Tensor sample, float sigmaInput)
    {
        if (predictionType == "epsilon") return sample - modelOutput * sigmaInput;
        float s2 = sigmaInput * sigmaInput + 1f;
        return modelOutput * (-sigmaInput / ExactFloat32.Sqrt(s2)) + sample / s2;
    }

    /// <summary>diffusers' <c>add_noise</c>: σ of each timestep via <c>index_for_timestep</c>, then x0 + ε σ.</summary>
    public override Tensor AddNoise(Tensor originalSamples, Tensor noise, Tensor timesteps)
    {
        if (_sigmasTensor is null) throw new DiffusersException($"{ClassName}: call SetTimesteps before AddNoise");
        using var scope = torch.NewDisposeScope();
        var schedule = TimestepValues;
        var idx = ToDoubles(timesteps.flatten()).Select(t =>
        {
            double key = F32 ? (float)t : t;
            var hits = Enumerable.Range(0, schedule.Length).Where(i => schedule[i] == key).ToList();
            int pos = _indexCounter.Count == 0 ? (hits.Count > 1 ? 1 : 0) : _indexCounter.GetValueOrDefault(key);
            if (pos >= hits.Count)
                throw new DiffusersException($"{ClassName}: add_noise timestep {Fmt(t)} is not in the scheduler's timesteps");
            return (long)hits[pos];
        }).ToArray();
        var sig = BroadcastTo(_sigmasTensor.to(originalSamples.dtype, originalSamples.device)
            .index_select(0, torch.tensor(idx, ScalarType.Int64, originalSamples.device)), originalSamples.dim());
        return (originalSamples + noise * sig).MoveToOuterDisposeScope();
    }
}
