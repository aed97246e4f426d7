using DiffusersSharp.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// diffusers' <c>DEISMultistepScheduler</c> (0.25.1; Zhang &amp; Chen 2022, arXiv 2204.13902): the log-ρ multistep
/// exponential integrator on ε (ρ = σ_t / α_t), orders 1–3, lower-order warm-up and final steps, Karras sigmas.
/// The Lagrange-integral coefficients are computed in float32 as diffusers does on 0-dim float32 tensors.
/// </summary>
public sealed class DEISMultistepScheduler : VpSolverBase<DEISMultistepScheduler, DEISMultistepSchedulerConfig>
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>scheduler_config.json</c>.</summary>
    public const string Name = "DEISMultistepScheduler";
    private Tensor?[] _modelOutputs = [];
    private int _lowerOrderNums;
    private int _lastOrder;   // the order of the last step's update (0: none since SetTimesteps)

    /// <summary>
    /// Builds the scheduler from <paramref name="config"/> (null: diffusers' defaults); a value out of range is a
    /// <see cref="ConfigException"/> naming the key.
    /// </summary>
    public DEISMultistepScheduler(DEISMultistepSchedulerConfig? config = null) : base(Normalize(config)) { }

    /// <inheritdoc/>
    protected override void InitCore()
    {
        var c = TypedConfig;
        if (c.AlgorithmType != "deis")
            throw new ConfigException($"{Name}: algorithm_type \"{c.AlgorithmType}\" is not implemented; expected \"deis\" (\"dpmsolver\", \"dpmsolver++\" are read as \"deis\")") { Key = "algorithm_type" };
        if (c.SolverType != "logrho")
            throw new ConfigException($"{Name}: solver_type \"{c.SolverType}\" is not implemented; expected \"logrho\" (\"midpoint\", \"heun\", \"bh1\", \"bh2\" are read as \"logrho\")") { Key = "solver_type" };
        if (c.SolverOrder is < 1 or > 3)
            throw new ConfigException($"{Name}: solver_order {c.SolverOrder} is not supported; DEIS has orders 1, 2 and 3") { Key = "solver_order" };
        if (!DPMSolverMultistepScheduler.Predictions.Contains(c.PredictionType))
            throw new ConfigException($"{Name}: prediction_type \"{c.PredictionType}\" must be one of {DPMSolverMultistepScheduler.Quote(DPMSolverMultistepScheduler.Predictions)}") { Key = "prediction_type" };
        if (c.TimestepSpacing is not ("linspace" or "leading" or "trailing"))
            throw SchedulerMath.BadSpacing(Name, c.TimestepSpacing);
        _modelOutputs = new Tensor?[c.SolverOrder];
        Timesteps = torch.arange(c.NumTrainTimesteps - 1, -1, -1, ScalarType.Int64);
    }

    /// <summary>DEIS's step takes no keyword arguments.</summary>
    public override IReadOnlySet<string> StepArguments => NoStepArguments;

    /// <summary>diffusers' renames of the other solvers' option values (register_toTypedConfig in its constructor).</summary>
    private static DEISMultistepSchedulerConfig Normalize(DEISMultistepSchedulerConfig? config)
    {
        var c = config ?? new DEISMultistepSchedulerConfig();
        if (c.AlgorithmType is "dpmsolver" or "dpmsolver++") c = c with { AlgorithmType = "deis" };
        if (c.SolverType is "midpoint" or "heun" or "bh1" or "bh2") c = c with { SolverType = "logrho" };
        return c;
    }

    /// <inheritdoc/>
    protected override void SetTimestepsCore(int numInferenceSteps, Device? device)
    {
        CheckInferenceSteps(numInferenceSteps);
        var (ts, sigmas) = Schedule(numInferenceSteps, TypedConfig.TimestepSpacing);
        var t = torch.tensor(ts, ScalarType.Int64);
        SetSchedule(device is null ? t : t.to(device, disposeAfter: true), sigmas, numInferenceSteps);
        for (int i = 0; i < _modelOutputs.Length; i++) { Release(_modelOutputs[i]); _modelOutputs[i] = null; }
        _lowerOrderNums = 0;
        _lastOrder = 0;
    }

    /// <summary>set_timesteps' timesteps and sigmas for <paramref name="n"/> steps and <paramref name="spacing"/>.</summary>
    private (long[] Timesteps, float[] Sigmas) Schedule(int n, string spacing) =>
        BuildSchedule(SpacedTimesteps(spacing, n, NumTrainTimesteps, TypedConfig.StepsOffset), n, TypedConfig.UseKarrasSigmas == true, lu: false);

    /// <inheritdoc/>
    /// <remarks>Also a second- or third-order step whose sigmas coincide (SD 1.x's "leading" spacing with steps_offset 1
    /// at 999 and 1000 of 1000 steps, "trailing" where it overshoots to −1 next to 0, "linspace" at 1000): diffusers'
    /// Lagrange coefficients divide by log ρ_b − log ρ_c = 0. Named from the schedule, with the nearby step counts and the
    /// spacings where no step divides by zero.</remarks>
    protected override string? NonFiniteCauseCore(double timestep)
    {
        if (LastStepIndex is int i && _lastOrder >= 2 && Division(i, _lastOrder) is { } arithmetic
            && EqualSigmasCause(i - _lastOrder + 1, i + 1, arithmetic, TypedConfig.TimestepSpacing, TypedConfig.StepsOffset,
                TypedConfig.UseKarrasSigmas == true, _ => false, (n, s) => Schedule(n, s).Sigmas) is { } cause)
            return cause;
        return base.NonFiniteCauseCore(timestep);
    }

    /// <summary>The log-ρ differences of the update of order <paramref name="order"/> at step <paramref name="i"/> that are
    /// 0 and its first non-finite coefficient (as <see cref="SchedulerBase.Step(TorchSharp.torch.Tensor, double, TorchSharp.torch.Tensor, StepOptions?)"/> computes them); null where its coefficients are finite.</summary>
    private string? Division(int i, int order)
    {
        var (_, rt) = RhoAt(i + 1);
        var (_, r0) = RhoAt(i);
        var (_, r1) = RhoAt(i - 1);
        var d01 = ("log(rho_s0) - log(rho_s1) (rho = sigma / alpha)", MathF.Log(r0) - MathF.Log(r1));
        if (order == 2)
        {
            string? bad = NonFiniteSchedules.FirstNonFinite(("coef1", Ind(rt, r0, r1) - Ind(r0, r0, r1)), ("coef2", Ind(rt, r1, r0) - Ind(r0, r1, r0)));
            return NonFiniteSchedules.Division(NonFiniteSchedules.ZeroDifferences(d01), "second-order update",
                bad is null ? null : $"Lagrange coefficients divide by that difference: {bad}");
        }
        var (_, r2) = RhoAt(i - 2);
        string? third = NonFiniteSchedules.FirstNonFinite(
            ("coef1", Ind(rt, r0, r1, r2) - Ind(r0, r0, r1, r2)), ("coef2", Ind(rt, r1, r2, r0) - Ind(r0, r1, r2, r0)),
            ("coef3", Ind(rt, r2, r0, r1) - Ind(r0, r2, r0, r1)));
        return NonFiniteSchedules.Division(NonFiniteSchedules.ZeroDifferences(
                d01, ("log(rho_s1) - log(rho_s2)", MathF.Log(r1) - MathF.Log(r2)), ("log(rho_s0) - log(rho_s2)", MathF.Log(r0) - MathF.Log(r2))),
            "third-order update", third is null ? null : $"Lagrange coefficients divide by the log-rho differences: {third}");
    }

    /// <inheritdoc/>
    protected override SchedulerOutput StepCore(Tensor modelOutput, double timestep, Tensor sample, StepOptions? options)
    {
        CheckStepInputs(modelOutput, sample);
        if (NumInferenceSteps is not int n)
            throw new DiffusersException($"{Name}: call SetTimesteps before Step");
        int i = BeginStep(timestep);
        int order = TypedConfig.SolverOrder;
        bool lowerOrderFinal = i == n - 1 && TypedConfig.LowerOrderFinal && n < 15;
        bool lowerOrderSecond = i == n - 2 && TypedConfig.LowerOrderFinal && n < 15;
        using var scope = torch.NewDisposeScope();
        var m = ConvertModelOutput(modelOutput, sample, i);
        Release(_modelOutputs[0]);
        for (int k = 0; k < order - 1; k++) _modelOutputs[k] = _modelOutputs[k + 1];
        _modelOutputs[order - 1] = Keep(m);

        Tensor prev;
        _lastOrder = order == 1 || _lowerOrderNums < 1 || lowerOrderFinal ? 1
            : order == 2 || _lowerOrderNums < 2 || lowerOrderSecond ? 2 : 3;
        if (_lastOrder == 1)
        {
            var (at, st, lt) = At(i + 1);
            var (as_, _, ls) = At(i);
            prev = sample * (at / as_) - m * (st * (ExactFloat32.Exp(lt - ls) - 1f));
        }
        else if (_lastOrder == 2) prev = SecondOrderUpdate(sample, i);
        else prev = ThirdOrderUpdate(sample, i);

        if (_lowerOrderNums < order) _lowerOrderNums++;
        StepIndex = i + 1;
        return new SchedulerOutput(prev.MoveToOuterDisposeScope());
    }

    /// <summary>diffusers' <c>convert_model_output</c>: x0 from the prediction (thresholded if set), returned as ε.</summary>
    private Tensor ConvertModelOutput(Tensor modelOutput, Tensor sample, int i)
    {
        var (alpha, sigma) = AlphaSigma(SigmaValues[i]);
        var x0 = DataPrediction(TypedConfig.PredictionType, modelOutput, sample, alpha, sigma);
        if (TypedConfig.Thresholding) x0 = SchedulerMath.ThresholdSample(x0, TypedConfig.DynamicThresholdingRatio, TypedConfig.SampleMaxValue);
        return (sample - x0 * alpha) / sigma;
    }

    /// <summary>ρ = σ_t / α_t of inference sigma <paramref name="index"/> (float32).</summary>
    private (float Alpha, float Rho) RhoAt(int index)
    {
        var (a, s, _) = At(index);
        return (a, s / a);
    }

    private Tensor SecondOrderUpdate(Tensor sample, int i)
    {
        var (at, rt) = RhoAt(i + 1);
        var (a0, r0) = RhoAt(i);
        var (_, r1) = RhoAt(i - 1);
        float coef1 = Ind(rt, r0, r1) - Ind(r0, r0, r1);
        float coef2 = Ind(rt, r1, r0) - Ind(r0, r1, r0);
        return (sample / a0 + _modelOutputs[^1]! * coef1 + _modelOutputs[^2]! * coef2) * at;
    }

    private Tensor ThirdOrderUpdate(Tensor sample, int i)
    {
        var (at, rt) = RhoAt(i + 1);
        var (a0, r0) = RhoAt(i);
        var (_, r1) = RhoAt(i - 1);
        var (_, r2) = RhoAt(i - 2);
        float coef1 = Ind(rt, r0, r1, r2) - Ind(r0, r0, r1, r2);
        float coef2 = Ind(rt, r1, r2, r0) - Ind(r0, r1, r2, r0);
        float coef3 = Ind(rt, r2, r0, r1) - Ind(r0, r2, r0, r1);
        return (sample / a0 + _modelOutputs[^1]! * coef1 + _modelOutputs[^2]! * coef2 + _modelOutputs[^3]! * coef3) * at;
    }

    // np.log of a 0-dim tensor takes numpy's scalar (libm) path, i.e. a correctly rounded float32 log.
    // ∫ of the Lagrange basis (log ρ − log c) / (log b − log c) dρ: t (log t − log c − 1) / (log b − log c)
    private static float Ind(float t, float b, float c) =>
        t * (-MathF.Log(c) + MathF.Log(t) - 1f) / (MathF.Log(b) - MathF.Log(c));

    // the same for the quadratic basis through b, c and d
    private static float Ind(float t, float b, float c, float d)
    {
        float lt = MathF.Log(t), lc = MathF.Log(c), ld = MathF.Log(d), lb = MathF.Log(b);
        float numerator = t * (lc * (ld - lt + 1f) - ld * lt + ld + lt * lt - 2f * lt + 2f);
        float denominator = (lb - lc) * (lb - ld);
        return numerator / denominator;
    }
}
