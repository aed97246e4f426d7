using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// diffusers' <c>CMStochasticIterativeScheduler</c> (scheduling_consistency_models.py of 0.25.1): multistep consistency
/// sampling (Song et al. 2023, Algorithm 1). Karras sigmas over <c>num_train_timesteps</c>, timesteps 250·log σ
/// (float64), the boundary-condition scalings c_skip and c_out, x0 clamped to [-1, 1] by <c>clip_denoised</c>, and
/// fresh noise (from the step's generator) added back at the next sigma, except in a schedule of one step. Custom
/// timesteps are indices into the training discretisation (<c>[22, 0]</c> for openai/diffusers-cd_imagenet64_l2).
/// As in diffusers, the constructor sets the full schedule (float64 sigmas, no final entry), so a step needs no
/// <c>SetTimesteps</c>; after it the sigmas are float32 with sigma_min as the final one.
/// </summary>
public sealed class CMStochasticIterativeScheduler : SchedulerBase<CMStochasticIterativeScheduler, CMStochasticIterativeSchedulerConfig>
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>scheduler_config.json</c>.</summary>
    public const string Name = "CMStochasticIterativeScheduler";

    private double[] _sigmas = [];   // as diffusers holds them: float64 after the constructor, float32 values after SetTimesteps
    private bool _float64Sigmas;
    private double[] _schedule = [];
    private int? _stepIndex;

    /// <summary>
    /// Builds the scheduler from <paramref name="config"/> (null: diffusers' defaults); a value out of range is a
    /// <see cref="ConfigException"/> naming the key.
    /// </summary>
    public CMStochasticIterativeScheduler(CMStochasticIterativeSchedulerConfig? config = null) : base(config) { }

    /// <inheritdoc/>
    protected override void InitCore()
    {
        var c = TypedConfig;
        foreach (var (key, value) in new[] { ("sigma_data", c.SigmaData), ("rho", c.Rho) })
            if (!(value > 0 && double.IsFinite(value)))
                throw new ConfigException($"{Name}: config key '{key}': {key} must be a finite positive number, got {Fmt(value)}") { Key = key };
        if (!(c.SNoise >= 0 && double.IsFinite(c.SNoise)))
            throw new ConfigException($"{Name}: config key 's_noise': s_noise must be a finite number ≥ 0, got {Fmt(c.SNoise)}") { Key = "s_noise" };
        if (c.NumTrainTimesteps < 2)
            throw new ConfigException($"{Name}: config key 'num_train_timesteps': num_train_timesteps must be at least 2 (the Karras ramp runs from sigma_max to sigma_min), got {c.NumTrainTimesteps}") { Key = "num_train_timesteps" };
        var sigmas = Karras(SchedulerMath.NpLinspace(0, 1, c.NumTrainTimesteps));
        // a tiny rho overflows σ^(1/ρ): diffusers' schedule is then NaN and no timestep can be found
        int bad = Array.FindIndex(sigmas, v => !(double.IsFinite(v) && v > 0));
        if (bad >= 0)
            throw new ConfigException($"{Name}: config key 'rho': rho {Fmt(c.Rho)} gives Karras sigmas that are not finite positive numbers " +
                $"(σ^(1/ρ) of sigma_min {Fmt(c.SigmaMin)} and sigma_max {Fmt(c.SigmaMax)} overflows, sigma {bad} is {Fmt(sigmas[bad])}); diffusers' models use rho 7")
            { Key = "rho" };
        Install(SigmaToT(sigmas), sigmas, float64: true, device: null);
    }

    /// <summary>Draws the noise of each step from the generator(s) (or <see cref="StepOptions.VarianceNoise"/>).</summary>
    public override IReadOnlySet<string> StepArguments => GeneratorOnly;

    /// <summary><c>sigma_max</c>: the sample starts as noise of that scale.</summary>
    protected override double InitNoiseSigmaCore => TypedConfig.SigmaMax;

    /// <summary>diffusers' <c>step_index</c>: the index of the next step in <see cref="SchedulerBase.Timesteps"/>; null before the first.</summary>
    public int? StepIndex => _stepIndex;

    /// <inheritdoc/>
    public override bool AcceptsCustomTimesteps => true;

    /// <summary>diffusers' <c>custom_timesteps</c>: the last <c>SetTimesteps</c> was given timesteps.</summary>
    public bool CustomTimesteps { get; private set; }

    /// <summary>diffusers' <c>_convert_to_karras</c> (float64 numpy): (σ_max^(1/ρ) + ramp · (σ_min^(1/ρ) − σ_max^(1/ρ)))^ρ.</summary>
    private double[] Karras(double[] ramp)
    {
        var c = TypedConfig;
        double minInv = Math.Pow(c.SigmaMin, 1 / c.Rho), maxInv = Math.Pow(c.SigmaMax, 1 / c.Rho);
        return ramp.Select(r => Math.Pow(maxInv + r * (minInv - maxInv), c.Rho)).ToArray();
    }

    /// <summary>diffusers' <c>sigma_to_t</c>: 1000 · 0.25 · log(σ + 1e-44), float64.</summary>
    private static double[] SigmaToT(double[] sigmas) => sigmas.Select(s => 250.0 * Math.Log(s + 1e-44)).ToArray();

    private void Install(double[] timesteps, double[] sigmas, bool float64, Device? device)
    {
        _sigmas = sigmas;
        _float64Sigmas = float64;
        if (float64) SetSigmas(sigmas, device);
        else SetSigmas(sigmas.Select(s => (float)s).ToArray(), device);
        Timesteps = torch.tensor(timesteps, ScalarType.Float64, device);
        _schedule = timesteps;
        _stepIndex = null;
    }

    /// <inheritdoc/>
    /// <remarks>Timesteps (arange(N) · (T // N))[::-1] of the training discretisation; refused above num_train_timesteps, as in diffusers.</remarks>
    protected override void SetTimestepsCore(int numInferenceSteps, Device? device)
    {
        CheckInferenceSteps(numInferenceSteps);
        long ratio = NumTrainTimesteps / numInferenceSteps;
        var ts = Enumerable.Range(0, numInferenceSteps).Select(i => i * ratio).Reverse().ToArray();
        Schedule(ts, device);
        NumInferenceSteps = numInferenceSteps;
        CustomTimesteps = false;
    }

    /// <inheritdoc/>
    /// <remarks>diffusers' <c>set_timesteps(timesteps=...)</c>: descending indices below num_train_timesteps (here also
    /// not negative); <see cref="SchedulerBase.NumInferenceSteps"/> becomes their count (diffusers leaves it as it was).</remarks>
    protected override void SetTimestepsCore(IReadOnlyList<long> timesteps, Device? device)
    {
        CheckCustomTimesteps(timesteps);
        Schedule(timesteps.ToArray(), device);
        NumInferenceSteps = timesteps.Count;
        CustomTimesteps = true;
    }

    private void Schedule(long[] timesteps, Device? device)
    {
        // ramp = timesteps[::-1] / (T - 1); Karras sigmas; timesteps from them; sigmas + [sigma_min] as float32
        var ramp = timesteps.Reverse().Select(t => t / (double)(NumTrainTimesteps - 1)).ToArray();
        var sigmas = Karras(ramp);
        var ts = SigmaToT(sigmas);
        Install(ts, [.. sigmas.Select(s => (double)(float)s), (float)TypedConfig.SigmaMin], float64: false, device);
    }

    /// <summary>The sigma of step <paramref name="i"/> as diffusers computes with it (a float32 value after SetTimesteps).</summary>
    private double SigmaAt(int i) => _sigmas[i];

    /// <summary>diffusers' <c>scale_model_input</c>: x / sqrt(σ² + σ_data²) at the step's sigma (it sets the step index, as diffusers).</summary>
    protected override Tensor ScaleModelInputCore(Tensor sample, double timestep)
    {
        _stepIndex = SigmaMath.CurrentIndex(this, _stepIndex, timestep, _schedule, float32: false);
        int i = SigmaMath.StepInRange(this, _stepIndex.Value, _schedule.Length);
        double sd = TypedConfig.SigmaData;
        if (_float64Sigmas)
            return sample / (float)Math.Sqrt(SigmaAt(i) * SigmaAt(i) + sd * sd);
        float sigma = (float)SigmaAt(i);
        return sample / ExactFloat32.Sqrt(sigma * sigma + (float)(sd * sd));
    }

    /// <summary>
    /// diffusers' <c>step(model_output, timestep, sample, generator)</c>: x0 = c_out · model_output + c_skip · x (clamped
    /// with clip_denoised), then x0 + s_noise · z · sqrt(σ̂² − σ_min²) at the next sigma σ̂ (clamped to [σ_min, σ_max]).
    /// </summary>
    protected override SchedulerOutput StepCore(Tensor modelOutput, double timestep, Tensor sample, StepOptions? options)
    {
        CheckStepInputs(modelOutput, sample);
        var c = TypedConfig;
        _stepIndex = SigmaMath.CurrentIndex(this, _stepIndex, timestep, _schedule, float32: false);
        int i = SigmaMath.StepInRange(this, _stepIndex.Value, _schedule.Length);
        double next = i + 1 < c.NumTrainTimesteps ? SigmaAt(i + 1) : _sigmas[^1];
        var (cSkip, cOut, noiseScale) = _float64Sigmas ? Coefficients64(SigmaAt(i), next) : Coefficients32((float)SigmaAt(i), (float)next);
        using var scope = torch.NewDisposeScope();
        var denoised = modelOutput * cOut + sample * cSkip;
        if (c.ClipDenoised) denoised = denoised.clamp(-1, 1);
        var noise = Timesteps.shape[0] > 1
            ? DrawNoise(modelOutput.shape, modelOutput.dtype, modelOutput.device, options ?? StepOptions.Default)
            : torch.zeros_like(modelOutput);
        var z = noise * c.SNoise;
        var prev = denoised + z * noiseScale;
        _stepIndex = i + 1;
        return new SchedulerOutput(prev.MoveToOuterDisposeScope());
    }

    /// <summary>c_skip, c_out and sqrt(σ̂² − σ_min²) in float32, as diffusers computes them on 0-dim float32 tensors.</summary>
    private (float CSkip, float COut, float NoiseScale) Coefficients32(float sigma, float next)
    {
        var c = TypedConfig;
        float sd2 = (float)(c.SigmaData * c.SigmaData), d = sigma - (float)c.SigmaMin;
        float cSkip = 1f / (d * d + sd2) * sd2;   // python float / tensor is reciprocal(tensor) * float
        float cOut = d * (float)c.SigmaData / ExactFloat32.Sqrt(sigma * sigma + sd2);
        float hat = Math.Clamp(next, (float)c.SigmaMin, (float)c.SigmaMax);
        return (cSkip, cOut, ExactFloat32.Sqrt(hat * hat - (float)(c.SigmaMin * c.SigmaMin)));
    }

    /// <summary>The same in float64, for the constructor's float64 schedule, rounded to the sample's float32 at the end.</summary>
    private (float CSkip, float COut, float NoiseScale) Coefficients64(double sigma, double next)
    {
        var c = TypedConfig;
        double sd2 = c.SigmaData * c.SigmaData, d = sigma - c.SigmaMin;
        double hat = Math.Clamp(next, c.SigmaMin, c.SigmaMax);
        return ((float)(1 / (d * d + sd2) * sd2), (float)(d * c.SigmaData / Math.Sqrt(sigma * sigma + sd2)),
            (float)Math.Sqrt(hat * hat - c.SigmaMin * c.SigmaMin));
    }

    /// <inheritdoc/>
    protected override Tensor AddNoiseCore(Tensor originalSamples, Tensor noise, Tensor timesteps) =>
        SigmaMath.AddNoise(this, Sigmas!, Timesteps, originalSamples, noise, timesteps);
}
