using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// What diffusers' VP-type exponential-integrator solvers share (DPMSolverMultistep, DPMSolverSinglestep,
/// UniPCMultistep, DEISMultistep): the sigma table <c>((1 - ᾱ) / ᾱ) ** 0.5</c> sampled at the inference
/// timesteps (+ one final entry), the step counter initialised from the first timestep, the conversions
/// <c>σ → (α_t, σ_t, λ)</c> done in float32 as diffusers does on 0-dim float32 tensors, and
/// <c>add_noise</c> (<c>α_t x0 + σ_t ε</c>). The per-class update rules live in the subclasses.
/// </summary>
/// <typeparam name="TSelf">The scheduler class.</typeparam>
/// <typeparam name="TConfig">Its config record.</typeparam>
public abstract class VpSolverBase<TSelf, TConfig> : SchedulerBase<TSelf, TConfig>
    where TSelf : VpSolverBase<TSelf, TConfig>
    where TConfig : SchedulerConfig, IBetaScheduleConfig, new()
{
    /// <summary>Stores the config and builds the betas (see <see cref="SchedulerBase{TSelf, TConfig}"/>).</summary>
    protected VpSolverBase(TConfig? config) : base(config) { }

    // the inference sigmas (float32, N + 1 entries; the last is σ(t=0) or a repeat of the last one): Sigmas, null before SetTimesteps
    private float[] _sigmas = [];

    /// <summary>diffusers' <c>step_index</c>: null until the first <c>Step</c> after <c>SetTimesteps</c>.</summary>
    public int? StepIndex { get; protected set; }

    /// <summary>The inference sigmas as floats (what diffusers indexes as 0-dim float32 tensors).</summary>
    protected float[] SigmaValues => _sigmas;

    /// <summary>The number of steps the last <c>SetTimesteps</c> asked for (the timesteps are one more where "trailing"
    /// spacing overshoots to −1).</summary>
    protected int RequestedSteps { get; private set; }

    /// <summary>Installs the schedule of one <c>set_timesteps</c> call (<paramref name="requestedSteps"/>: the steps asked for).</summary>
    protected void SetSchedule(Tensor timesteps, float[] sigmas, int requestedSteps)
    {
        RequestedSteps = requestedSteps;
        Timesteps = timesteps;
        _sigmas = sigmas;
        SetSigmas(sigmas);
        NumInferenceSteps = (int)timesteps.shape[0];
        StepIndex = null;
    }

    /// <summary>diffusers' <c>_sigma_to_alpha_sigma_t</c> on a float32 value: α = 1 / sqrt(σ² + 1), σ_t = σ α.</summary>
    protected static (float Alpha, float Sigma) AlphaSigma(float sigma)
    {
        float alpha = 1f / ExactFloat32.Sqrt(sigma * sigma + 1f);
        return (alpha, sigma * alpha);
    }

    /// <summary>
    /// The data prediction x0 of diffusers' <c>convert_model_output</c> (the four VP solvers): from ε
    /// (<c>(x − σ_t ε) / α_t</c>), the sample itself, or v (<c>α_t x − σ_t v</c>) as <paramref name="predictionType"/>
    /// says. <paramref name="mean"/> is the model output (its first three channels for learned variance).
    /// </summary>
    protected static Tensor DataPrediction(string predictionType, Tensor mean, Tensor sample, float alpha, float sigma) => predictionType switch
    {
        "epsilon" => (sample - mean * sigma) / alpha,
        "sample" => mean,
        _ => sample * alpha - mean * sigma,
    };

    /// <summary>The noise prediction ε of <c>convert_model_output</c>: the output itself, from x0 (<c>(x − α_t x0) / σ_t</c>) or from v (<c>α_t v + σ_t x</c>).</summary>
    protected static Tensor NoisePrediction(string predictionType, Tensor mean, Tensor sample, float alpha, float sigma) => predictionType switch
    {
        "epsilon" => mean,
        "sample" => (sample - mean * alpha) / sigma,
        _ => mean * alpha + sample * sigma,
    };

    /// <summary>The step index of the last <c>Step</c> (its <see cref="StepIndex"/> less one); null before the first.</summary>
    protected int? LastStepIndex => StepIndex - 1;

    /// <summary>
    /// The cause a solver's <c>NonFiniteCause</c> gives when its last step divided by the difference of two equal
    /// sigmas: the equal ones among entries <paramref name="lo"/>..<paramref name="hi"/> (what the step read) and why they
    /// are equal, computed from this schedule (<paramref name="finalRepeats"/>: Karras or Lu sigmas, whose final entry
    /// repeats the last); <paramref name="arithmetic"/>, what the step made of them ("h0 = … is 0, and the second-order
    /// update's … is infinite"); then <paramref name="remedy"/> where given, and the fewer steps and the other spacings
    /// where no step meets equal sigmas that it divides by (<paramref name="sigmasFor"/>: the class's sigmas for a step
    /// count and a timestep_spacing, its config otherwise; <paramref name="finalMatters"/>: whether a zero h on the last
    /// step of that many steps would divide by zero too). Null where the sigmas the step read all differ.
    /// </summary>
    protected string? EqualSigmasCause(int lo, int hi, string arithmetic, string spacing, int stepsOffset, bool finalRepeats,
        Func<int, bool> finalMatters, Func<int, string, float[]> sigmasFor, string? remedy = null)
    {
        string context = $"timestep_spacing \"{spacing}\", steps_offset {stepsOffset}, {RequestedSteps} inference steps of " +
                         $"{NumTrainTimesteps} trained{(finalRepeats ? ", Karras / Lu sigmas" : "")}";
        string? equal = NonFiniteSchedules.Describe(TimestepValues, _sigmas, lo, hi, NumTrainTimesteps,
            finalRepeats ? "the Karras / Lu schedule repeats its last sigma as the final one" : "the final sigma is sigma(t = 0)", context);
        if (equal is null) return null;
        string? elsewhere = NonFiniteSchedules.Remedy("no step divides by zero", RequestedSteps, spacing, NumTrainTimesteps, -1,
            (n, s) => NonFiniteSchedules.Distinct(sigmasFor(n, s), finalMatters(n)));
        var remedies = new[] { remedy, elsewhere }.OfType<string>().ToArray();
        return $"{equal}. So {arithmetic}, as in diffusers' {ClassName}.step" + (remedies.Length > 0 ? "; " + string.Join("; ", remedies) : "");
    }

    /// <summary>True where step <paramref name="i"/> is the last and reads the final sigma equal to its own (h = 0).</summary>
    protected bool LastStepKeepsSigma(int i) => i == _sigmas.Length - 2 && _sigmas[i] == _sigmas[i + 1];

    /// <summary>λ = log α_t − log σ_t (float32, as <c>torch.log(alpha_t) - torch.log(sigma_t)</c>).</summary>
    protected static float Lambda(float alpha, float sigma) => ExactFloat32.Log(alpha) - ExactFloat32.Log(sigma);

    /// <summary>(α_t, σ_t, λ) of inference sigma number <paramref name="index"/>.</summary>
    protected (float Alpha, float Sigma, float Lambda) At(int index)
    {
        if (index < 0 || index >= _sigmas.Length)
            throw new DiffusersException($"{ClassName}: step index {index} is outside the schedule of {_sigmas.Length - 1} steps; call SetTimesteps again before a new loop");
        var (a, s) = AlphaSigma(_sigmas[index]);
        return (a, s, Lambda(a, s));
    }

    /// <summary>
    /// The sigma table and timesteps of DPMSolverMultistep / UniPC / DEIS <c>set_timesteps</c>: integer timesteps
    /// from <paramref name="timesteps"/>, then Karras or Lu sigmas (timesteps recomputed from them) or the training
    /// sigmas at those timesteps, plus the final entry (a repeat of the last Karras/Lu sigma, else σ(t=0)).
    /// </summary>
    protected (long[] Timesteps, float[] Sigmas) BuildSchedule(long[] timesteps, int n, bool karras, bool lu)
    {
        float[] train = SchedulerMath.TrainSigmas(AlphasCumprodValues);
        float[] logSigmas = SigmaMath.Log32(train);
        double[] sig;
        long[] ts;
        if (karras)
        {
            // np.flip(sigmas): sigma_min = in_sigmas[-1] (train[0]), sigma_max = in_sigmas[0] (train[^1])
            sig = SchedulerMath.KarrasSigmas(train[0], train[^1], n);
            ts = sig.Select(s => (long)SchedulerMath.NpRound(SigmaMath.SigmaToT(s, logSigmas))).ToArray();
            sig = [.. sig, sig[^1]];
        }
        else if (lu)
        {
            // lambdas = flip(log_sigmas); (max + ramp * (min - max)) ** 1.0; sigmas = exp(lambdas)
            double lMin = logSigmas[0], lMax = logSigmas[^1];
            sig = SchedulerMath.NpLinspace(0, 1, n).Select(r => Math.Exp(lMax + r * (lMin - lMax))).ToArray();
            ts = sig.Select(s => (long)SchedulerMath.NpRound(SigmaMath.SigmaToT(s, logSigmas))).ToArray();
            sig = [.. sig, sig[^1]];
        }
        else
        {
            // np.interp at integer timesteps returns the table entries, clamped to its ends outside [0, T): "trailing"
            // spacing's np.arange overshoots to a last timestep of -1 for some step counts (1000 training steps and 61
            // steps give 62 timesteps), "leading" with steps_offset can reach T; sigma_last = sigma(t = 0)
            ts = timesteps;
            sig = [.. ts.Select(t => (double)train[Math.Clamp(t, 0, train.Length - 1)]), train[0]];
        }
        return (ts, sig.Select(s => (float)s).ToArray());
    }

    /// <summary>
    /// The integer timesteps of DPMSolverMultistep / UniPC / DEIS for the three spacings, counting down from
    /// <paramref name="lastTimestep"/> (num_train_timesteps, less the steps clipped by lambda_min_clipped).
    /// </summary>
    protected long[] SpacedTimesteps(string spacing, int n, int lastTimestep, int stepsOffset)
    {
        switch (spacing)
        {
            case "linspace":
            {
                var v = SchedulerMath.NpLinspace(0, lastTimestep - 1, n + 1);
                return v.Select(x => (long)SchedulerMath.NpRound(x)).Reverse().Take(n).ToArray();
            }
            case "leading":
            {
                long ratio = lastTimestep / (n + 1);
                return Enumerable.Range(0, n + 1).Select(i => i * ratio).Reverse().Take(n).Select(t => t + stepsOffset).ToArray();
            }
            case "trailing":
            {
                double ratio = NumTrainTimesteps / (double)n;
                return SchedulerMath.NpArange(lastTimestep, 0, -ratio).Select(x => (long)SchedulerMath.NpRound(x) - 1).ToArray();
            }
            default:
                throw SchedulerMath.BadSpacing(ClassName, spacing);
        }
    }

    /// <summary>
    /// num_train_timesteps − <c>searchsorted(flip(λ_t), lambda_min_clipped)</c>, with λ_t = log √ᾱ − log √(1−ᾱ)
    /// in float32 (all of them for the default −inf); torch compares the float32 λ with the float64 threshold.
    /// </summary>
    protected int LastTimestep(double lambdaMinClipped)
    {
        int below = 0;
        foreach (float ac in AlphasCumprodValues)
        {
            float lambda = Lambda(ExactFloat32.Sqrt(ac), ExactFloat32.Sqrt(1f - ac));
            if (lambda < lambdaMinClipped) below++;
        }
        return NumTrainTimesteps - below;
    }

    /// <summary>
    /// The step index of the first <c>Step</c>: the position of <paramref name="timestep"/> in
    /// <see cref="SchedulerBase.Timesteps"/> (the second one where it occurs twice, as diffusers).
    /// diffusers silently falls back to the last index for an unknown timestep; we refuse it.
    /// </summary>
    protected int InitStepIndex(double timestep)
    {
        var values = TimestepValues;
        if (values.Length == 0 || NumInferenceSteps is null)
            throw new DiffusersException($"{ClassName}: call SetTimesteps before Step (timestep {Fmt(timestep)})");
        var hits = Enumerable.Range(0, values.Length).Where(i => values[i] == timestep).ToList();
        if (hits.Count == 0)
            throw new DiffusersException(
                $"{ClassName}: timestep {Fmt(timestep)} is not in the scheduler's timesteps [{string.Join(", ", values.Select(Fmt))}]");
        return hits.Count > 1 ? hits[1] : hits[0];
    }

    /// <summary>Starts or continues the step counter; checks the timestep belongs to the schedule.</summary>
    protected int BeginStep(double timestep)
    {
        if (StepIndex is null) StepIndex = InitStepIndex(timestep);
        else if (!TimestepValues.Contains(timestep))
            throw new DiffusersException(
                $"{ClassName}: timestep {Fmt(timestep)} is not in the scheduler's timesteps [{string.Join(", ", TimestepValues.Select(Fmt))}]");
        if (StepIndex >= NumInferenceSteps)
            throw new DiffusersException($"{ClassName}: all {NumInferenceSteps} steps of the schedule are done; call SetTimesteps again before a new loop");
        return StepIndex.Value;
    }

    /// <summary>
    /// diffusers' <c>add_noise</c> of these solvers: σ looked up per timestep (the second occurrence where one occurs
    /// twice), then α_t x0 + σ_t ε. diffusers takes the last σ of the schedule for a timestep it does not hold, which
    /// noises to another level than asked without a word; we refuse it, as <see cref="InitStepIndex"/> does.
    /// </summary>
    protected override Tensor AddNoiseCore(Tensor originalSamples, Tensor noise, Tensor timesteps)
    {
        if (Sigmas is null)
            throw new DiffusersException($"{ClassName}: call SetTimesteps before AddNoise");
        CheckNoiseInputs("add_noise", originalSamples, "original_samples", noise, timesteps);
        using var scope = torch.NewDisposeScope();
        var schedule = TimestepValues;
        var idx = ToDoubles(timesteps.flatten()).Select(t =>
        {
            var hits = Enumerable.Range(0, schedule.Length).Where(i => schedule[i] == t).ToList();
            if (hits.Count == 0)
                throw new DiffusersException(
                    $"{ClassName}: add_noise timestep {Fmt(t)} is not in the scheduler's timesteps [{string.Join(", ", schedule.Select(Fmt))}]");
            return hits.Count > 1 ? hits[1] : hits[0];
        }).ToArray();
        // sigmas.to(dtype)[indices], then 1 / (σ² + 1) ** 0.5 and σ α in that dtype
        var sigma = torch.tensor(idx.Select(i => _sigmas[i]).ToArray(), ScalarType.Float32).to(originalSamples.dtype);
        var (alphaT, sigmaT) = AlphaSigmaTensors(sigma);
        alphaT = BroadcastTo(alphaT.to(originalSamples.device), originalSamples.dim());
        sigmaT = BroadcastTo(sigmaT.to(originalSamples.device), originalSamples.dim());
        return (alphaT * originalSamples + sigmaT * noise).MoveToOuterDisposeScope();
    }

    /// <summary><see cref="AlphaSigma"/> of a small CPU tensor of sigmas, element by element in its dtype.</summary>
    private static (Tensor Alpha, Tensor Sigma) AlphaSigmaTensors(Tensor sigma)
    {
        var denom = sigma * sigma + 1;
        using var f = denom.to(ScalarType.Float32);
        var root = torch.tensor(f.data<float>().Select(ExactFloat32.Sqrt).ToArray(), ScalarType.Float32).to(sigma.dtype);
        var alpha = 1 / root;
        return (alpha, sigma * alpha);
    }
}
