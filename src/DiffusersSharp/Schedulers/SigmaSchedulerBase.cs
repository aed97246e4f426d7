using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// What diffusers' sigma-space schedulers share (k-diffusion's samplers: Euler, Euler ancestral, LMS, Heun, and through
/// <see cref="KDpm2SchedulerBase{TSelf, TConfig}"/> KDPM2 and KDPM2 ancestral): the float32 table of sigmas the steps
/// read (diffusers' <c>sigmas</c>, ending in 0, longer than the timesteps), <c>init_noise_sigma</c> from its largest
/// value, the step index found from the first timestep given (<c>_init_step_index</c>: the second match where a timestep
/// occurs twice), <c>scale_model_input</c> (sample / √(σ² + 1)) and the sigma-based <c>add_noise</c>.
/// <para>A class installs its table and timesteps with <see cref="SetSchedule"/> (its constructor and every
/// <c>SetTimesteps</c>), starts each step with <see cref="BeginStep"/> (<see cref="BeginCountedStep"/> where diffusers
/// counts the timesteps stepped, with <see cref="AddNoiseCounted"/> as its <c>add_noise</c>) and moves
/// <see cref="StepIndex"/> on at its end, and overrides <see cref="InputSigma"/> where a second half scales the input by
/// another σ.</para>
/// </summary>
/// <typeparam name="TSelf">The scheduler class.</typeparam>
/// <typeparam name="TConfig">Its config record.</typeparam>
public abstract class SigmaSchedulerBase<TSelf, TConfig> : SchedulerBase<TSelf, TConfig>
    where TSelf : SigmaSchedulerBase<TSelf, TConfig>
    where TConfig : SchedulerConfig, ISigmaScheduleConfig, new()
{
    private double[] _schedule = [];
    private readonly Dictionary<double, int> _indexCounter = [];

    /// <summary>Stores the config and builds the betas (see <see cref="SchedulerBase{TSelf, TConfig}"/>).</summary>
    protected SigmaSchedulerBase(TConfig? config, params string[] extraBetaSchedules) : base(config, extraBetaSchedules) { }

    /// <summary>The sigma table the steps read (float32, ending in 0).</summary>
    protected float[] SigmaValues { get; private set; } = [];

    /// <summary>
    /// diffusers' <c>step_index</c>: the index of the next step in <see cref="SchedulerBase.Timesteps"/>; null before
    /// the first step.
    /// </summary>
    public int? StepIndex { get; protected set; }

    /// <inheritdoc/>
    protected override double InitNoiseSigmaCore
    {
        get
        {
            float max = SigmaValues.Max();
            return TypedConfig.TimestepSpacing is "linspace" or "trailing" ? max : ExactFloat32.Sqrt(max * max + 1f);
        }
    }

    /// <summary>
    /// The start of every <c>SetTimesteps</c>: checks and records the step count, and gives the float32 timesteps of the
    /// config's spacing and the float32 training sigmas (ascending t) the schedule is interpolated from.
    /// </summary>
    protected (float[] Timesteps, float[] TrainSigmas) BeginSchedule(int numInferenceSteps)
    {
        CheckInferenceSteps(numInferenceSteps);
        NumInferenceSteps = numInferenceSteps;
        var c = TypedConfig;
        return (SigmaMath.FloatSpacing(ClassName, c.TimestepSpacing, c.NumTrainTimesteps, numInferenceSteps, c.StepsOffset),
            SchedulerMath.TrainSigmas(AlphasCumprodValues));
    }

    /// <summary>
    /// Installs the sigma table (its tensor, <see cref="SchedulerBase.Sigmas"/>, on <paramref name="sigmasDevice"/>; null: the CPU) and
    /// the timesteps, and restarts the step index and the timestep counts.
    /// </summary>
    protected void SetSchedule(float[] sigmas, Tensor timesteps, Device? sigmasDevice)
    {
        SigmaValues = sigmas;
        SetSigmas(sigmas, sigmasDevice);
        Timesteps = timesteps;
        _schedule = TimestepValues;
        StepIndex = null;
        _indexCounter.Clear();
    }

    private bool Float32Schedule => Timesteps.dtype == ScalarType.Float32;

    /// <summary>The index of the current call: <see cref="StepIndex"/>, found from <paramref name="timestep"/> at the first
    /// call after <see cref="SetSchedule"/> (diffusers' <c>_init_step_index</c>). Later calls must still pass a timestep of
    /// the schedule: diffusers ignores the timestep once the index is set, so a foreign one (a fraction, another
    /// schedule's) went on silently at the index's σ.</summary>
    protected int CurrentIndex(double timestep) =>
        (StepIndex = SigmaMath.CurrentIndex(this, StepIndex, timestep, _schedule, Float32Schedule)).Value;

    /// <summary>The index of this step (<see cref="CurrentIndex"/>), an error once the schedule is done.</summary>
    protected int BeginStep(double timestep) => SigmaMath.StepInRange(this, CurrentIndex(timestep), _schedule.Length);

    /// <summary>The σ the model input is scaled with at index <paramref name="i"/>: the table's, unless a class says otherwise.</summary>
    protected virtual float InputSigma(int i) => SigmaValues[i];

    /// <inheritdoc/>
    protected override Tensor ScaleModelInputCore(Tensor sample, double timestep)
    {
        float sigma = InputSigma(CurrentIndex(timestep));
        return sample / ExactFloat32.Sqrt(sigma * sigma + 1f);
    }

    /// <summary>
    /// x0 from the model output at σ (diffusers' <c>pred_original_sample</c>): epsilon <c>sample − σ · output</c>,
    /// v_prediction <c>output · (−σ / √(σ² + 1)) + sample / (σ² + 1)</c>, sample the output itself.
    /// <paramref name="epsilonSigma"/>: the σ of the epsilon case where it differs (Euler's σ̂ under churn).
    /// </summary>
    protected Tensor PredictOriginal(Tensor modelOutput, Tensor sample, float sigma, float? epsilonSigma = null)
    {
        float s2 = sigma * sigma + 1f;
        return TypedConfig.PredictionType switch
        {
            "epsilon" => sample - (epsilonSigma ?? sigma) * modelOutput,
            "v_prediction" => modelOutput * (-sigma / ExactFloat32.Sqrt(s2)) + sample / s2,
            _ => modelOutput.alias(),
        };
    }

    /// <summary>diffusers' <c>add_noise</c> of the one-call schedulers: each timestep's σ (it must occur once in the
    /// timesteps), then <c>original + noise · σ</c>.</summary>
    protected override Tensor AddNoiseCore(Tensor originalSamples, Tensor noise, Tensor timesteps) =>
        SigmaMath.AddNoise(this, Sigmas!, Timesteps, originalSamples, noise, timesteps);

    /// <summary><see cref="BeginStep"/> that also counts the timestep (diffusers' <c>_index_counter</c> of the two-call
    /// schedulers, which <see cref="AddNoiseCounted"/> reads).</summary>
    protected int BeginCountedStep(double timestep)
    {
        int i = BeginStep(timestep);
        double key = Float32Schedule ? (float)timestep : timestep;
        _indexCounter[key] = _indexCounter.GetValueOrDefault(key) + 1;
        return i;
    }

    /// <summary>
    /// diffusers' <c>add_noise</c> of the two-call schedulers (Heun, KDPM2), whose timesteps repeat: each timestep's σ
    /// at its <c>index_for_timestep</c> (its second occurrence before any step, else the occurrence
    /// <see cref="BeginCountedStep"/>'s count points at), then <c>original + noise · σ</c>.
    /// </summary>
    protected Tensor AddNoiseCounted(Tensor originalSamples, Tensor noise, Tensor timesteps)
    {
        CheckNoiseInputs("add_noise", originalSamples, "original_samples", noise, timesteps);
        using var scope = torch.NewDisposeScope();
        var idx = ToDoubles(timesteps).Select(t =>
        {
            double key = Float32Schedule ? (float)t : t;
            var hits = Enumerable.Range(0, _schedule.Length).Where(i => _schedule[i] == key).ToList();
            if (hits.Count == 0)
                throw new DiffusersException($"{ClassName}: add_noise timestep {Fmt(key)} is not in the scheduler's timesteps");
            int pos = _indexCounter.Count == 0 ? (hits.Count > 1 ? 1 : 0) : _indexCounter.GetValueOrDefault(key);
            if (pos >= hits.Count)
                throw new DiffusersException($"{ClassName}: add_noise timestep {Fmt(key)} has no occurrence #{pos + 1} in the scheduler's timesteps");
            return (long)hits[pos];
        }).ToArray();
        var sig = BroadcastTo(Sigmas!.to(originalSamples.dtype, originalSamples.device)
            .index_select(0, torch.tensor(idx, ScalarType.Int64, originalSamples.device)), originalSamples.dim());
        return (originalSamples + noise * sig).MoveToOuterDisposeScope();
    }
}
