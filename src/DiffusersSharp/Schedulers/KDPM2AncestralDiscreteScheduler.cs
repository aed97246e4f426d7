using DiffusersSharp.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// diffusers' <c>KDPM2AncestralDiscreteScheduler</c> (0.25.1; k-diffusion's <c>sample_dpm_2_ancestral</c>): the
/// two-call DPM-Solver-2 step towards σ_down, then noise of scale σ_up. A noise tensor is drawn from the generator
/// at every call (both halves), as diffusers does, and added in the second half.
/// </summary>
public sealed class KDPM2AncestralDiscreteScheduler : KDpm2SchedulerBase<KDPM2AncestralDiscreteScheduler, KDPM2AncestralDiscreteSchedulerConfig>
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>scheduler_config.json</c>.</summary>
    public const string Name = "KDPM2AncestralDiscreteScheduler";

    private float[] _up = [], _down = [];

    /// <summary>
    /// Builds the scheduler from <paramref name="config"/> (null: diffusers' defaults); a value out of range is a
    /// <see cref="ConfigException"/> naming the key.
    /// </summary>
    public KDPM2AncestralDiscreteScheduler(KDPM2AncestralDiscreteSchedulerConfig? config = null) : base(config) { }

    /// <inheritdoc/>
    protected override void InitCore()
    {
        KDPM2DiscreteScheduler.CheckOptions(Name, TypedConfig.PredictionType, TypedConfig.TimestepSpacing);
        SetTimesteps(TypedConfig.NumTrainTimesteps);
        NumInferenceSteps = null;
    }

    /// <summary>Reads <see cref="StepOptions.Generators"/> (and <see cref="StepOptions.VarianceNoise"/>); draws on both halves of a step.</summary>
    public override IReadOnlySet<string> StepArguments => GeneratorOnly;

    /// <inheritdoc/>
    protected override bool UseKarras => TypedConfig.UseKarrasSigmas == true;

    /// <summary>The doubled σ_up table (the ancestral noise scale of each step).</summary>
    public IReadOnlyList<float> SigmasUp => _up;
    /// <summary>The doubled σ_down table (the deterministic target of each step).</summary>
    public IReadOnlyList<float> SigmasDown => _down;

    /// <inheritdoc/>
    protected override void SetTimestepsCore(int numInferenceSteps, Device? device)
    {
        var (sigmas, logSigmas, ts, f64) = BaseSchedule(numInferenceSteps);
        int n = ts.Length;   // the spaced timesteps: one more than asked where trailing spacing overshoots
        var up = new float[n + 1];
        var down = new float[n + 1];
        var interpol = new float[n + 1];
        for (int i = 0; i <= n; i++)
        {
            float s = sigmas[i], next = i < n ? sigmas[i + 1] : 0f;
            float s2 = s * s, n2 = next * next;
            up[i] = ExactFloat32.Sqrt(n2 * (s2 - n2) / s2);
            down[i] = i < n ? ExactFloat32.Sqrt(n2 - up[i] * up[i]) : 0f;
            interpol[i] = LogMidpoint(s, down[i]);
        }
        interpol[n - 1] = 0f;
        interpol[n] = 0f;
        var tInterpol = interpol.Select(s => SigmaToTFloat32(s, logSigmas)).ToArray();
        // cat([t[:1], stack((t_interpol[:-2], t[1:]), -1).flatten()])
        var all = new List<double> { ts[0] };
        for (int i = 1; i < n; i++) { all.Add(f64 ? tInterpol[i - 1] : (float)tInterpol[i - 1]); all.Add(ts[i]); }
        _up = Doubled(up);
        _down = Doubled(down);
        Install(sigmas, interpol, [.. all], f64, device);
    }

    /// <inheritdoc/>
    /// <remarks>Also a step whose σ_up rounds up to σ_to or above it, as on the cosine schedule (squaredcos_cap_v2,
    /// σ_max = 20291.3) at 2 to 9 "linspace" or 2 to 5, 7 and 10 "trailing" steps of 1000: above it, diffusers' σ_down =
    /// sqrt(σ_to² − σ_up²) is NaN (4 linspace, 3 trailing steps); equal, σ_down is 0 and the log-midpoint σ of the step's
    /// first half, exp(torch.lerp(log σ, log σ_down, 0.5)), is NaN all the same (torch.lerp at weight 0.5 computes
    /// end − (end − start) · 0.5, −inf + inf). The first half steps to that σ. The table is diffusers' (Euler ancestral,
    /// which takes no log of σ_down, caps σ_up at σ_to instead); the cause names the step, its sigmas and the step counts
    /// and spacings whose interpolated sigmas are all finite.</remarks>
    protected override string? NonFiniteCauseCore(double timestep)
    {
        // after a first half the next call is a second half: the last call read entry StepIndex - 1, else StepIndex - 2
        if (StepIndex is int next && (StateInFirstOrder ? next - 2 : next - 1) is var k && k >= 0 && k + 1 < SigmaValues.Length
            && float.IsNaN(InterpolTable[k]) && _up[k] >= SigmaValues[k + 1] && SigmaValues[k + 1] > 0)
        {
            var c = TypedConfig;
            float from = SigmaValues[k], to = SigmaValues[k + 1], up = _up[k];
            int ulps = BitConverter.SingleToInt32Bits(up) - BitConverter.SingleToInt32Bits(to);
            // the doubled tables: entry 0 is step 0, entries 2s - 1 and 2s step s; the timesteps are [t0, ti0, t1, ti1, ...]
            int step = (k + 1) / 2;
            var ts = TimestepValues;
            string timesteps = 2 * step + 2 < ts.Length ? $" (timesteps {Fmt(ts[2 * step])} to {Fmt(ts[2 * step + 2])})" : "";
            string? remedy = NonFiniteSchedules.Remedy("the interpolated sigmas are finite", NumInferenceSteps ?? 0, c.TimestepSpacing,
                NumTrainTimesteps, +1, spacing => new KDPM2AncestralDiscreteScheduler(c with { TimestepSpacing = spacing }),
                copy => !copy.InterpolTable.Any(float.IsNaN));
            string split = ulps > 0
                ? $"{ulps} ulp above sigma_to. So sigma_down = sqrt(sigma_to^2 - sigma_up^2) is the square root of a negative number, NaN, " +
                  "and so is the interpolated sigma the step's first half steps to, exp(lerp(log sigma, log sigma_down, 0.5))"
                : "equal to sigma_to. So sigma_down = sqrt(sigma_to^2 - sigma_up^2) is 0, and the interpolated sigma the step's first half " +
                  "steps to, exp(lerp(log sigma, log sigma_down, 0.5)), is NaN: log 0 is -inf, and torch.lerp at weight 0.5 computes " +
                  "end - (end - start) * 0.5, -inf + inf";
            return $"sigma_up of the step from sigma {Fmt(from)} to {Fmt(to)}{timesteps}, sqrt(sigma_to^2 (sigma_from^2 - sigma_to^2) / " +
                   $"sigma_from^2) in float32, is {Fmt(up)}, {split} (beta_schedule \"{c.BetaSchedule}\", timestep_spacing " +
                   $"\"{c.TimestepSpacing}\", {NumInferenceSteps} inference steps), as in diffusers' KDPM2AncestralDiscreteScheduler.set_timesteps; " +
                   (remedy is null ? "" : remedy + ", or ") + "use EulerAncestralDiscreteScheduler, which caps sigma_up at sigma_to";
        }
        return base.NonFiniteCauseCore(timestep);
    }

    private static string Fmt(float v) => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture);

    /// <inheritdoc/>
    protected override float InputSigma(int i) => StateInFirstOrder ? SigmaValues[i] : InterpolTable[i - 1];

    /// <inheritdoc/>
    protected override SchedulerOutput StepCore(Tensor modelOutput, double timestep, Tensor sample, StepOptions? options)
    {
        CheckStepInputs(modelOutput, sample);
        int i = BeginCountedStep(timestep);
        bool first = StateInFirstOrder;
        int k = first ? i : i - 1;
        float sigma = SigmaValues[k];
        float sigmaInterpol = InterpolTable[k];
        float sigmaUp = _up[k];
        float sigmaDown = _down[(i - 1 + _down.Length) % _down.Length]; // sigmas_down[step_index - 1] (index -1 at the start)
        float sigmaHat = sigma; // gamma = 0
        using var scope = torch.NewDisposeScope();
        var noise = DrawNoise(modelOutput.shape, modelOutput.dtype, modelOutput.device, options ?? StepOptions.Default);
        var x0 = PredictOriginal(modelOutput, sample, first ? sigmaHat : sigmaInterpol);
        Tensor prev;
        if (first)
        {
            var derivative = (sample - x0) / sigmaHat;
            FirstHalfSample = Keep(sample);
            prev = sample + derivative * (sigmaInterpol - sigmaHat);
        }
        else
        {
            var derivative = (sample - x0) / sigmaInterpol;
            var start = FirstHalfSample!;
            prev = start + derivative * (sigmaDown - sigmaHat);
            prev = prev + noise * sigmaUp;
            Release(start);
            FirstHalfSample = null;
        }
        StepIndex = i + 1;
        return new SchedulerOutput(prev.MoveToOuterDisposeScope(), x0.MoveToOuterDisposeScope());
    }
}
