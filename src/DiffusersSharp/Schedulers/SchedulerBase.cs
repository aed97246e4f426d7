using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// Shared plumbing of the schedulers: the beta / alpha tables, timestep bookkeeping, tensor-timestep
/// overloads, the noise source (generator or injected) and the common argument checks. Per-class maths
/// lives in the subclasses, each a port of one diffusers 0.25.1 file.
/// </summary>
public abstract class SchedulerBase : IScheduler
{
    /// <summary>Empty int64 tensor until <see cref="SetTimesteps(int, Device?)"/>.</summary>
    private Tensor _timesteps = torch.empty(0, ScalarType.Int64).DetachFromDisposeScope();

    public abstract string ClassName { get; }
    public abstract SchedulerConfig Config { get; }
    public int NumTrainTimesteps => Config.TrainTimesteps;
    public virtual int Order => 1;
    public int? NumInferenceSteps { get; protected set; }
    public virtual double InitNoiseSigma => 1.0;
    public Func<long[], Tensor>? NoiseSource { get; set; }

    public Tensor Timesteps
    {
        get => _timesteps;
        protected set { _timesteps = value.DetachFromDisposeScope(); }
    }

    /// <summary>The timesteps as doubles (for loops: <c>foreach (var t in s.TimestepValues)</c>).</summary>
    public double[] TimestepValues
    {
        get
        {
            using var d = Timesteps.to(ScalarType.Float64, CPU);
            return d.data<double>().ToArray();
        }
    }

    /// <summary>The betas ([num_train_timesteps], float32), as diffusers computes them.</summary>
    public Tensor Betas { get; private set; } = null!;
    /// <summary>1 - betas.</summary>
    public Tensor Alphas { get; private set; } = null!;
    /// <summary>cumprod(alphas), float32.</summary>
    public Tensor AlphasCumprod { get; private set; } = null!;

    /// <summary>Builds betas / alphas / alphas_cumprod as every diffusers scheduler's constructor does.</summary>
    protected void InitBetas(int numTrainTimesteps, double betaStart, double betaEnd, string betaSchedule,
        double[]? trainedBetas, bool rescaleBetasZeroSnr = false)
    {
        SchedulerConfigValidation.Validate(Config, ClassName);
        if (numTrainTimesteps <= 0)
            throw new ConfigException($"{ClassName}: num_train_timesteps must be positive, got {numTrainTimesteps}") { Key = "num_train_timesteps" };
        using var scope = torch.NewDisposeScope();
        var betas = SchedulerMath.Betas(ClassName, numTrainTimesteps, betaStart, betaEnd, betaSchedule, trainedBetas);
        if (rescaleBetasZeroSnr) betas = SchedulerMath.RescaleZeroTerminalSnr(betas);
        var alphas = 1.0f - betas;
        var cumprod = torch.cumprod(alphas, 0);
        Betas = betas.DetachFromDisposeScope();
        Alphas = alphas.DetachFromDisposeScope();
        AlphasCumprod = cumprod.DetachFromDisposeScope();
    }

    public abstract void SetTimesteps(int numInferenceSteps, Device? device = null);

    /// <summary>
    /// Writes <c>scheduler_config.json</c> into <paramref name="directory"/> (created if needed), as diffusers'
    /// <c>save_pretrained</c>: every key of the typed config, the unknown keys kept aside, <c>_class_name</c>.
    /// </summary>
    public void SavePretrained(string directory)
    {
        Directory.CreateDirectory(directory);
        var config = Config with { ClassName = ClassName, DiffusersVersion = Config.DiffusersVersion ?? "0.25.1" };
        // ConfigJson.Write<TRuntime>: atomic, non-finite floats written as Python writes them.
        try
        {
            typeof(Loading.ConfigJson).GetMethod(nameof(Loading.ConfigJson.Write))!.MakeGenericMethod(config.GetType())
                .Invoke(null, [config, Path.Combine(directory, "scheduler_config.json")]);
        }
        catch (System.Reflection.TargetInvocationException e) when (e.InnerException is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerException).Throw();
        }
    }

    public virtual void SetTimesteps(IReadOnlyList<long> timesteps, Device? device = null) =>
        throw new DiffusersException($"{ClassName} does not accept custom timesteps (diffusers' set_timesteps(timesteps=...)); pass a number of inference steps");

    public virtual Tensor ScaleModelInput(Tensor sample, double timestep) => sample;

    public Tensor ScaleModelInput(Tensor sample, Tensor timestep) => ScaleModelInput(sample, ToDouble(timestep));

    public abstract SchedulerOutput Step(Tensor modelOutput, double timestep, Tensor sample, Generator? generator = null);

    public SchedulerOutput Step(Tensor modelOutput, Tensor timestep, Tensor sample, Generator? generator = null) =>
        Step(modelOutput, ToDouble(timestep), sample, generator);

    public abstract Tensor AddNoise(Tensor originalSamples, Tensor noise, Tensor timesteps);

    /// <summary>The sigma schedule of the sigma-based schedulers (null for the others); last entry per diffusers' convention.</summary>
    public virtual Tensor? Sigmas => null;

    /// <summary>v-prediction target (diffusers' <c>get_velocity</c>); only the alpha-based schedulers define it.</summary>
    public virtual Tensor GetVelocity(Tensor sample, Tensor noise, Tensor timesteps) =>
        throw new DiffusersException($"{ClassName} does not define get_velocity (diffusers defines it for DDPM, DDIM, LCM and a few others)");

    /// <summary>
    /// One noise draw inside <c>Step</c>: from <see cref="NoiseSource"/> when set, else diffusers'
    /// <c>randn_tensor(shape, generator, device, dtype)</c> (a CPU generator draws on the CPU, then moves).
    /// </summary>
    protected Tensor DrawNoise(long[] shape, ScalarType dtype, Device device, Generator? generator)
    {
        if (NoiseSource is { } source)
        {
            var n = source(shape);
            if (!n.shape.SequenceEqual(shape))
                throw new DiffusersException($"{ClassName}: the injected noise has shape [{string.Join(", ", n.shape)}], expected [{string.Join(", ", shape)}]");
            return n.to(dtype, device);
        }
        return SchedulerMath.RandnTensor(shape, generator, dtype, device);
    }

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

    protected static double[] ToDoubles(Tensor t)
    {
        using var d = t.to(ScalarType.Float64, CPU);
        return d.data<double>().ToArray();
    }

    protected static double ToDouble(Tensor t)
    {
        if (t.numel() != 1)
            throw new DiffusersException($"a timestep tensor must hold one value, got shape [{string.Join(", ", t.shape)}]");
        using var d = t.to(ScalarType.Float64, CPU);
        return d.item<double>();
    }

    protected static string Fmt(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>Stores a tensor as scheduler state: an alias that outlives the caller's dispose scope.</summary>
    protected static Tensor Keep(Tensor t) => t.alias().DetachFromDisposeScope();

    /// <summary>x reshaped to broadcast against a tensor of rank <paramref name="rank"/> (diffusers' flatten + unsqueeze(-1) loop).</summary>
    protected static Tensor BroadcastTo(Tensor x, long rank)
    {
        var f = x.flatten();
        while (f.dim() < rank) f = f.unsqueeze(-1);
        return f;
    }
}
