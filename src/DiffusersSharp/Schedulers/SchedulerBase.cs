using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// Shared plumbing of the schedulers: the beta / alpha tables, timestep bookkeeping, tensor-timestep
/// overloads, the noise draws of a step and the common argument checks. Per-class maths lives in the
/// subclasses, each a port of one diffusers 0.25.1 file; they derive from
/// <see cref="SchedulerBase{TSelf, TConfig}"/>, which holds the typed config and the construction from it.
/// <para>Ownership (docs/ARCHITECTURE.md, "Tensor ownership"): a scheduler owns every tensor it keeps (betas, alphas,
/// alphas_cumprod, timesteps, sigmas, a solver's history); it takes each with <see cref="Own"/> or <see cref="Keep"/> and
/// frees one it replaces with <see cref="Release"/>, and <see cref="Dispose"/> frees the rest, here, for every class.
/// The public operations are written once here and check that the scheduler is not disposed before calling the class's
/// <c>…Core</c> override.</para>
/// </summary>
public abstract partial class SchedulerBase : IScheduler
{
    private Tensor _timesteps;
    private Tensor _betas = null!, _alphas = null!, _alphasCumprod = null!;

    /// <summary>Starts with empty int64 timesteps (until <see cref="SetTimesteps(int, Device?)"/> or the class's <c>InitCore</c>).</summary>
    protected SchedulerBase()
    {
        using var scope = torch.NewDisposeScope();
        _timesteps = Own(torch.empty(0, ScalarType.Int64));
    }

    /// <inheritdoc/>
    public abstract string ClassName { get; }
    /// <inheritdoc/>
    public abstract SchedulerConfig Config { get; }
    /// <inheritdoc/>
    public int NumTrainTimesteps => Config.TrainTimesteps;
    /// <inheritdoc/>
    public virtual int Order => 1;
    /// <inheritdoc/>
    public int? NumInferenceSteps { get; protected set; }
    /// <inheritdoc/>
    public double InitNoiseSigma
    {
        get
        {
            ThrowIfDisposed();
            return InitNoiseSigmaCore;
        }
    }

    /// <summary><see cref="InitNoiseSigma"/> of this class: 1 unless the class scales its first noise draw.</summary>
    protected virtual double InitNoiseSigmaCore => 1.0;

    /// <summary>The <c>step</c> arguments of schedulers that draw noise and read nothing else.</summary>
    protected static readonly IReadOnlySet<string> GeneratorOnly = new HashSet<string> { "generator" };

    /// <summary>The <c>step</c> arguments of schedulers that read none.</summary>
    protected static readonly IReadOnlySet<string> NoStepArguments = new HashSet<string>();

    /// <inheritdoc/>
    public abstract IReadOnlySet<string> StepArguments { get; }

    /// <inheritdoc/>
    public Tensor Timesteps
    {
        get
        {
            ThrowIfDisposed();
            return _timesteps;
        }
        protected set
        {
            // the scheduler owns its timesteps: the previous ones go now, not when the GC finalizes them
            var old = _timesteps;
            _timesteps = Own(value);
            if (!ReferenceEquals(old, _timesteps)) Release(old);
        }
    }

    /// <summary>The timesteps as doubles (for loops: <c>foreach (var t in s.TimestepValues)</c>).</summary>
    public double[] TimestepValues
    {
        get
        {
            using var scope = torch.NewDisposeScope();
            return Timesteps.to(ScalarType.Float64, CPU).data<double>().ToArray();
        }
    }

    /// <summary>The betas ([num_train_timesteps], float32), as diffusers computes them.</summary>
    public Tensor Betas => Checked(_betas);
    /// <summary>1 - betas.</summary>
    public Tensor Alphas => Checked(_alphas);
    /// <summary>cumprod(alphas), float32.</summary>
    public Tensor AlphasCumprod => Checked(_alphasCumprod);

    /// <summary><see cref="AlphasCumprod"/> as floats: what the per-step coefficients are computed from.</summary>
    protected float[] AlphasCumprodValues { get; private set; } = [];

    /// <summary>
    /// Builds betas / alphas / alphas_cumprod as every diffusers scheduler's constructor does, in managed float32
    /// arithmetic (<see cref="ExactFloat32"/>): the same values on every CPU. <paramref name="extraSchedules"/>: the
    /// beta schedules this class accepts beyond linear, scaled_linear and squaredcos_cap_v2.
    /// </summary>
    protected void InitBetas(IBetaScheduleConfig c, IReadOnlyList<string> extraSchedules)
    {
        SchedulerConfigValidation.Validate(Config, ClassName);
        if (c.NumTrainTimesteps <= 0)
            throw new ConfigException($"{ClassName}: num_train_timesteps must be positive, got {c.NumTrainTimesteps}") { Key = "num_train_timesteps" };
        if (!c.HasTrainingBetas)
        {
            ReplaceBetas([], []);
            SetAlphasCumprod([]);
            return;
        }
        float[] betas = SchedulerMath.Betas(ClassName, c, extraSchedules);
        if (c.RescaleBetasZeroSnr) betas = SchedulerMath.RescaleZeroTerminalSnr(betas);
        float[] alphas = betas.Select(b => 1f - b).ToArray();
        using var scope = torch.NewDisposeScope();
        _betas = Own(torch.tensor(betas, ScalarType.Float32));
        _alphas = Own(torch.tensor(alphas, ScalarType.Float32));
        SetAlphasCumprod(ExactFloat32.Cumprod(alphas));
    }

    /// <summary>
    /// Replaces <see cref="Betas"/> and <see cref="Alphas"/> (IPNDM's set_timesteps rebuilds both; its alphas are
    /// sqrt(1 - beta²)), freeing the ones they replace.
    /// </summary>
    protected void ReplaceBetas(float[] betas, float[] alphas)
    {
        using var scope = torch.NewDisposeScope();
        var (oldBetas, oldAlphas) = (_betas, _alphas);
        _betas = Own(torch.tensor(betas, ScalarType.Float32));
        _alphas = Own(torch.tensor(alphas, ScalarType.Float32));
        Release(oldBetas);
        Release(oldAlphas);
    }

    /// <summary>Replaces the alphas_cumprod table (Euler's zero-SNR fix sets its last entry to 2^-24).</summary>
    protected void SetAlphasCumprod(float[] values)
    {
        Release(_alphasCumprod);
        AlphasCumprodValues = values;
        using var scope = torch.NewDisposeScope();
        _alphasCumprod = Own(torch.tensor(values, ScalarType.Float32));
    }

    /// <summary>ᾱ at an integer training timestep (as a float32, what diffusers indexes as a 0-dim tensor).</summary>
    protected float AlphaCumprodAt(long t) => AlphasCumprodValues[t];

    /// <inheritdoc/>
    /// <remarks>Here: an ᾱ of 0 at an integer training timestep (rescale_betas_zero_snr's zero terminal SNR), where x0
    /// from an epsilon prediction divides by √ᾱ. Classes with causes of their own extend it (DDPM's variance, LMS's and
    /// the multistep solvers' coinciding sigmas, KDPM2 ancestral's σ_up reaching σ_to) through
    /// <see cref="NonFiniteCauseCore"/>.</remarks>
    public string? NonFiniteCause(double timestep)
    {
        ThrowIfDisposed();
        return NonFiniteCauseCore(timestep);
    }

    /// <summary>The class's <see cref="NonFiniteCause"/>: the cause above; a class with causes of its own overrides it
    /// and falls back on this one.</summary>
    protected virtual string? NonFiniteCauseCore(double timestep)
    {
        if (timestep != Math.Floor(timestep) || timestep < 0 || timestep >= AlphasCumprodValues.Length) return null;
        if (AlphasCumprodValues[(long)timestep] != 0) return null;
        return $"alphas_cumprod at timestep {Fmt(timestep)} is 0 (rescale_betas_zero_snr: zero terminal SNR), and x0 from an epsilon " +
               "prediction, (x - sqrt(1 - alpha_cumprod) * eps) / sqrt(alpha_cumprod), divides by it, as in diffusers: zero terminal SNR " +
               "is for v_prediction models (prediction_type=v_prediction), or leave rescale_betas_zero_snr off";
    }

    /// <inheritdoc/>
    public void SetTimesteps(int numInferenceSteps, Device? device = null)
    {
        ThrowIfDisposed();
        using var scope = torch.NewDisposeScope();
        SetTimestepsCore(numInferenceSteps, device);
    }

    /// <summary>The class's <c>set_timesteps(num_inference_steps, device)</c> (<see cref="SetTimesteps(int, Device?)"/>).</summary>
    protected abstract void SetTimestepsCore(int numInferenceSteps, Device? device);

    /// <summary>
    /// Writes <c>scheduler_config.json</c> into <paramref name="directory"/> (created if needed), as diffusers'
    /// <c>save_pretrained</c>: every key of the typed config, the unknown keys kept aside, <c>_class_name</c>.
    /// </summary>
    public abstract void SavePretrained(string directory);

    /// <inheritdoc/>
    public void SetTimesteps(IReadOnlyList<long> timesteps, Device? device = null)
    {
        ThrowIfDisposed();
        using var scope = torch.NewDisposeScope();
        SetTimestepsCore(timesteps, device);
    }

    /// <inheritdoc/>
    /// <remarks>False here; the classes that override <see cref="SetTimestepsCore(IReadOnlyList{long}, Device?)"/> say true.</remarks>
    public virtual bool AcceptsCustomTimesteps => false;

    /// <summary>The class's custom timesteps (<see cref="SetTimesteps(IReadOnlyList{long}, Device?)"/>); refused unless it accepts them.</summary>
    protected virtual void SetTimestepsCore(IReadOnlyList<long> timesteps, Device? device) =>
        throw new DiffusersException($"{ClassName} does not accept custom timesteps (diffusers' set_timesteps(timesteps=...)); pass a number of inference steps");

    /// <inheritdoc/>
    public Tensor ScaleModelInput(Tensor sample, double timestep)
    {
        ThrowIfDisposed();
        using var scope = torch.NewDisposeScope();
        var scaled = ScaleModelInputCore(sample, timestep);
        return ReferenceEquals(scaled, sample) ? scaled : scaled.MoveToOuterDisposeScope();
    }

    /// <summary>The class's <c>scale_model_input</c> (<see cref="ScaleModelInput(Tensor, double)"/>): the sample as it is unless overridden.</summary>
    protected virtual Tensor ScaleModelInputCore(Tensor sample, double timestep) => sample;

    /// <summary>
    /// <see cref="ScaleModelInput(Tensor, double)"/> at a 0-dim timestep tensor (an entry of <see
    /// cref="Timesteps"/>).
    /// </summary>
    public Tensor ScaleModelInput(Tensor sample, Tensor timestep) => ScaleModelInput(sample, ToDouble(timestep));

    /// <inheritdoc/>
    public SchedulerOutput Step(Tensor modelOutput, double timestep, Tensor sample, StepOptions? options = null)
    {
        ThrowIfDisposed();
        return StepCore(modelOutput, timestep, sample, options);
    }

    /// <summary>The class's <c>step</c> (<see cref="Step(Tensor, double, Tensor, StepOptions?)"/>).</summary>
    protected abstract SchedulerOutput StepCore(Tensor modelOutput, double timestep, Tensor sample, StepOptions? options);

    /// <summary><see cref="Step(Tensor, double, Tensor, StepOptions?)"/> at a 0-dim timestep tensor (an entry of <see cref="Timesteps"/>).</summary>
    public SchedulerOutput Step(Tensor modelOutput, Tensor timestep, Tensor sample, StepOptions? options = null) =>
        Step(modelOutput, ToDouble(timestep), sample, options);

    /// <inheritdoc/>
    public Tensor AddNoise(Tensor originalSamples, Tensor noise, Tensor timesteps)
    {
        ThrowIfDisposed();
        return AddNoiseCore(originalSamples, noise, timesteps);
    }

    /// <summary>
    /// Whether the class defines diffusers' <c>add_noise</c>, which img2img and inpainting start from: all but IPNDM and
    /// DDIM inverse, whose diffusers classes have none (their <see cref="AddNoise"/> refuses, naming the class).
    /// </summary>
    public virtual bool DefinesAddNoise => true;

    /// <summary>The class's <c>add_noise</c> (<see cref="AddNoise"/>).</summary>
    protected abstract Tensor AddNoiseCore(Tensor originalSamples, Tensor noise, Tensor timesteps);

    /// <summary>v-prediction target (diffusers' <c>get_velocity</c>); only the alpha-based schedulers define it.</summary>
    public Tensor GetVelocity(Tensor sample, Tensor noise, Tensor timesteps)
    {
        ThrowIfDisposed();
        return GetVelocityCore(sample, noise, timesteps);
    }

    /// <summary>The class's <c>get_velocity</c> (<see cref="GetVelocity"/>); refused unless the class defines it.</summary>
    protected virtual Tensor GetVelocityCore(Tensor sample, Tensor noise, Tensor timesteps) =>
        throw new DiffusersException($"{ClassName} does not define get_velocity (diffusers defines it for DDPM, DDIM, LCM and a few others)");

    /// <summary>
    /// One noise draw inside <c>Step</c>: <see cref="StepOptions.VarianceNoise"/> when set, else diffusers'
    /// <c>randn_tensor(shape, generator, device, dtype)</c> with the options' generator(s).
    /// </summary>
    protected Tensor DrawNoise(long[] shape, ScalarType dtype, Device device, StepOptions options)
    {
        if (options.VarianceNoise is { } source)
        {
            if (options.Generators is not null)
                throw new DiffusersException($"{ClassName}: pass either a generator or variance noise to Step, not both");
            var n = source(shape);
            if (!n.shape.SequenceEqual(shape))
                throw new DiffusersException($"{ClassName}: the variance noise has shape [{string.Join(", ", n.shape)}], expected [{string.Join(", ", shape)}]");
            return n.to(dtype, device);
        }
        return Runtime.TorchUtils.RandnTensor(shape, options.Generators, dtype, device);
    }

    /// <summary>
    /// The start of every <c>Step</c>: <paramref name="modelOutput"/> must have the shape of <paramref name="sample"/>
    /// (with <paramref name="firstThreeChannels"/>, that of its first 3 channels: DPM-Solver's learned variance, where
    /// diffusers reads <c>model_output[:, :3]</c>). diffusers lets torch broadcast them, so a model output of another
    /// batch silently grows the sample's batch and other mismatches fail inside the step's arithmetic with torch's
    /// words; here both are refused, naming the shapes.
    /// </summary>
    protected void CheckStepInputs(Tensor modelOutput, Tensor sample, bool firstThreeChannels = false)
    {
        ArgumentNullException.ThrowIfNull(modelOutput);
        ArgumentNullException.ThrowIfNull(sample);
        var used = modelOutput.shape;
        if (firstThreeChannels && used.Length >= 2) used[1] = Math.Min(used[1], 3);
        if (!used.SequenceEqual(sample.shape))
            throw new DiffusersException(
                $"{ClassName}: model_output has shape {Dims(modelOutput)}{(firstThreeChannels ? " (its first 3 channels are read: variance_type learned)" : "")} " +
                $"but sample has shape {Dims(sample)}; Step needs the model's prediction for this sample, of its shape");
    }

    /// <summary>
    /// The start of <c>add_noise</c> / <c>get_velocity</c>: <paramref name="noise"/> of the shape of
    /// <paramref name="samples"/> (called <paramref name="samplesName"/> in <paramref name="op"/>'s diffusers signature),
    /// and one timestep or one per sample. diffusers lets torch broadcast them, so a larger noise or timestep batch
    /// silently grows the batch and the other mismatches fail in torch's words.
    /// </summary>
    internal void CheckNoiseInputs(string op, Tensor samples, string samplesName, Tensor noise, Tensor timesteps)
    {
        ArgumentNullException.ThrowIfNull(samples);
        ArgumentNullException.ThrowIfNull(noise);
        ArgumentNullException.ThrowIfNull(timesteps);
        if (!noise.shape.SequenceEqual(samples.shape))
            throw new DiffusersException($"{ClassName}: {op}: noise has shape {Dims(noise)} but {samplesName} has shape {Dims(samples)}; they must match");
        long batch = samples.dim() == 0 ? 1 : samples.shape[0];
        long count = timesteps.numel();
        if (count != 1 && count != batch)
            throw new DiffusersException(
                $"{ClassName}: {op}: timesteps hold {count} values for {samplesName} of shape {Dims(samples)}; pass one timestep or one per sample ({batch})");
    }

    private static string Dims(Tensor t) => $"[{string.Join(", ", t.shape)}]";

    /// <summary>Checks diffusers' bounds on num_inference_steps (diffusers fails later or not at all for ≤ 0).</summary>
    protected void CheckInferenceSteps(int numInferenceSteps)
    {
        if (numInferenceSteps <= 0)
            throw new DiffusersException($"{ClassName}: num_inference_steps must be at least 1, got {numInferenceSteps}");
        if (numInferenceSteps > NumTrainTimesteps)
            throw new DiffusersException(
                $"{ClassName}: num_inference_steps {numInferenceSteps} cannot be larger than num_train_timesteps {NumTrainTimesteps}: " +
                $"the model trained with this scheduler can only handle at most {NumTrainTimesteps} timesteps");
    }

    /// <summary>
    /// For the classes that index alphas_cumprod by the timestep (DDPM, DDIM, PNDM): refuses a spaced schedule with a
    /// timestep outside [0, num_train_timesteps), naming the spacing and the step count. diffusers 0.25.1 builds such
    /// schedules without a word: "trailing" rounds <c>np.arange(T, 0, -T/N)</c>, which for some N (61, 103, 121 of
    /// 1000 training steps) holds N + 1 values, the last rounding to 0, so the schedule ends at −1 and diffusers' last
    /// step reads <c>alphas_cumprod[-1]</c>, the table's other end, and returns a wrong sample; "leading" with a
    /// steps_offset can reach T, where its step fails with an IndexError.
    /// </summary>
    protected void CheckSpacedTimesteps(IReadOnlyList<long> timesteps, string spacing, int numInferenceSteps, int stepsOffset)
    {
        int train = NumTrainTimesteps;
        foreach (long t in timesteps)
        {
            if (t >= 0 && t < train) continue;
            string cause = t < 0
                ? $"np.arange({train}, 0, -{train}/{numInferenceSteps}) holds {timesteps.Count} values, the last rounding to 0, and " +
                  "diffusers' step at -1 reads alphas_cumprod[-1], the last entry, and returns a wrong sample"
                : $"steps_offset {stepsOffset} moves the first timestep past the last training step, where diffusers' step fails";
            throw new DiffusersException(
                $"{ClassName}: timestep_spacing \"{spacing}\" with num_inference_steps {numInferenceSteps} gives timestep {t}, " +
                $"outside [0, {train}): {cause}; use another number of steps");
        }
    }

    /// <summary>
    /// Custom timesteps as diffusers accepts them (<c>set_timesteps(timesteps=...)</c>): not empty, strictly descending,
    /// the first below num_train_timesteps, none negative; else a <see cref="DiffusersException"/> naming the offending value.
    /// </summary>
    protected void CheckCustomTimesteps(IReadOnlyList<long> timesteps)
    {
        if (timesteps.Count == 0) throw new DiffusersException($"{ClassName}: custom timesteps must not be empty");
        for (int i = 1; i < timesteps.Count; i++)
            if (timesteps[i] >= timesteps[i - 1])
                throw new DiffusersException($"{ClassName}: custom timesteps must be in descending order; {timesteps[i]} follows {timesteps[i - 1]}");
        if (timesteps[0] >= NumTrainTimesteps)
            throw new DiffusersException($"{ClassName}: custom timesteps must start before num_train_timesteps {NumTrainTimesteps}, got {timesteps[0]}");
        if (timesteps[^1] < 0)
            throw new DiffusersException($"{ClassName}: custom timesteps must not be negative, got {timesteps[^1]}");
    }

    /// <summary>An integer timestep in [0, num_train_timesteps) (the alpha tables are indexed by it).</summary>
    protected long CheckTrainTimestep(double timestep)
    {
        if (timestep != Math.Floor(timestep) || timestep < 0 || timestep >= NumTrainTimesteps)
            throw new DiffusersException(
                $"{ClassName}: timestep {Fmt(timestep)} is not an integer timestep in [0, {NumTrainTimesteps})");
        return (long)timestep;
    }

    /// <summary>The index of <paramref name="timestep"/> in <see cref="Timesteps"/> (first match), or an error naming it.</summary>
    protected int IndexForTimestep(double timestep, Tensor? scheduleTimesteps = null)
    {
        var values = scheduleTimesteps is null ? TimestepValues : ToDoubles(scheduleTimesteps);
        if (values.Length == 0)
            throw new DiffusersException($"{ClassName}: call SetTimesteps before Step / ScaleModelInput (timestep {Fmt(timestep)})");
        // Compare in the schedule's own dtype (float32 schedules compare float32 values).
        bool f32 = (scheduleTimesteps ?? Timesteps).dtype == ScalarType.Float32;
        double key = f32 ? (float)timestep : timestep;
        for (int i = 0; i < values.Length; i++)
            if (values[i] == key) return i;
        throw new DiffusersException(
            $"{ClassName}: timestep {Fmt(timestep)} is not in the scheduler's timesteps [{string.Join(", ", values.Select(Fmt))}]");
    }

    /// <summary>The values of <paramref name="t"/> as doubles, copied to the CPU.</summary>
    protected static double[] ToDoubles(Tensor t)
    {
        using var scope = torch.NewDisposeScope();
        return t.to(ScalarType.Float64, CPU).data<double>().ToArray();
    }

    /// <summary>
    /// The one value of a timestep tensor as a double; any other shape is a <see cref="DiffusersException"/>.
    /// </summary>
    protected static double ToDouble(Tensor t)
    {
        if (t.numel() != 1)
            throw new DiffusersException($"a timestep tensor must hold one value, got shape [{string.Join(", ", t.shape)}]");
        using var scope = torch.NewDisposeScope();
        return t.to(ScalarType.Float64, CPU).item<double>();
    }

    /// <summary>A double in round-trip form, for messages that must show the exact timestep.</summary>
    protected static string Fmt(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>x reshaped to broadcast against a tensor of rank <paramref name="rank"/> (diffusers' flatten + unsqueeze(-1) loop).</summary>
    protected static Tensor BroadcastTo(Tensor x, long rank)
    {
        var f = x.flatten();
        while (f.dim() < rank) f = f.unsqueeze(-1);
        return f;
    }
}
