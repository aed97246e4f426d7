using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// The DPM-Solver / DPM-Solver++ multistep update (arXiv 2206.00927, 2211.01095) that diffusers' <c>DPMSolverMultistepScheduler</c>
/// and <c>DPMSolverMultistepInverseScheduler</c> share (the inverse's step, updates and conversions are "Copied from" the
/// forward class): orders 1–3, their SDE variants (noise drawn in every step from the generator, as diffusers does),
/// lower-order warm-up and final steps, the config checks of their common keys. The classes differ in their schedules
/// (<c>SetTimestepsCore</c>, <see cref="InitialTimesteps"/>). Scalar coefficients are computed in float32 as diffusers
/// computes them on 0-dim float32 tensors.
/// </summary>
/// <typeparam name="TSelf">The scheduler class.</typeparam>
/// <typeparam name="TConfig">Its config record.</typeparam>
public abstract class DPMSolverMultistepBase<TSelf, TConfig> : VpSolverBase<TSelf, TConfig>
    where TSelf : DPMSolverMultistepBase<TSelf, TConfig>
    where TConfig : SchedulerConfig, IDPMSolverMultistepConfig, new()
{
    private Tensor?[] _modelOutputs = [];
    private int _lowerOrderNums;
    private int _lastOrder;   // the order of the last step's update (0: none since SetTimesteps)

    /// <summary>Stores the config and builds the betas (see <see cref="SchedulerBase{TSelf, TConfig}"/>).</summary>
    protected DPMSolverMultistepBase(TConfig? config) : base(config) { }

    /// <inheritdoc/>
    protected override void InitCore()
    {
        var c = TypedConfig;
        Validate(c);
        _modelOutputs = new Tensor?[c.SolverOrder];
        Timesteps = InitialTimesteps();
    }

    /// <summary>The timesteps right after the constructor (diffusers' <c>__init__</c>).</summary>
    protected abstract Tensor InitialTimesteps();

    /// <summary>The order of the last step's update (0: none since <c>SetTimesteps</c>).</summary>
    protected int LastOrder => _lastOrder;

    /// <summary>Reads the generator(s) (and <see cref="StepOptions.VarianceNoise"/>) for the SDE variants; nothing otherwise.</summary>
    public override IReadOnlySet<string> StepArguments => IsSde ? GeneratorOnly : NoStepArguments;

    private bool IsSde => TypedConfig.AlgorithmType.StartsWith("sde-", StringComparison.Ordinal);
    private bool IsDataPrediction => TypedConfig.AlgorithmType is "dpmsolver++" or "sde-dpmsolver++";

    private void Validate(TConfig c)
    {
        string name = ClassName;
        string[] algorithms = DPMSolverMultistepScheduler.Algorithms, predictions = DPMSolverMultistepScheduler.Predictions;
        if (!algorithms.Contains(c.AlgorithmType))
            throw new ConfigException($"{name}: algorithm_type \"{c.AlgorithmType}\" is not implemented; expected one of {DPMSolverMultistepScheduler.Quote(algorithms)} (or \"deis\", read as \"dpmsolver++\")") { Key = "algorithm_type" };
        if (c.SolverType is not ("midpoint" or "heun"))
            throw new ConfigException($"{name}: solver_type \"{c.SolverType}\" is not implemented; expected \"midpoint\" or \"heun\" (\"logrho\", \"bh1\", \"bh2\" are read as \"midpoint\")") { Key = "solver_type" };
        if (c.SolverOrder is < 1 or > 3)
            throw new ConfigException($"{name}: solver_order {c.SolverOrder} is not supported; DPM-Solver has orders 1, 2 and 3") { Key = "solver_order" };
        if (c.SolverOrder == 3 && c.AlgorithmType.StartsWith("sde-", StringComparison.Ordinal))
            throw new ConfigException($"{name}: solver_order 3 is not defined for algorithm_type \"{c.AlgorithmType}\" (diffusers has no third-order SDE update and fails at the first third-order step); use solver_order 1 or 2") { Key = "solver_order" };
        if (!predictions.Contains(c.PredictionType))
            throw new ConfigException($"{name}: prediction_type \"{c.PredictionType}\" must be one of {DPMSolverMultistepScheduler.Quote(predictions)}") { Key = "prediction_type" };
        if (c.TimestepSpacing is not ("linspace" or "leading" or "trailing"))
            throw SchedulerMath.BadSpacing(name, c.TimestepSpacing);
    }

    /// <summary>
    /// What the update of order <paramref name="order"/> at step <paramref name="i"/> divides by zero (its λ differences
    /// that are 0, then its first non-finite coefficient, computed as <see cref="SchedulerBase.Step(TorchSharp.torch.Tensor, double, TorchSharp.torch.Tensor, StepOptions?)"/> computes it); null where its
    /// coefficients are finite.
    /// </summary>
    protected string? Division(int i, int order)
    {
        var (_, _, lt) = At(i + 1);
        var (_, _, l0) = At(i);
        var (_, _, l1) = At(i - 1);
        float h = lt - l0, h0 = l0 - l1, r0 = h0 / h;
        string alg = TypedConfig.AlgorithmType;
        if (order == 2)
        {
            var (heunExpr, heunTerm) = alg switch
            {
                "dpmsolver++" => ("(exp(-h) - 1) / h", (ExactFloat32.Exp(-h) - 1f) / h),
                "sde-dpmsolver++" => ("(1 - exp(-2h)) / (-2h)", (1f - ExactFloat32.Exp(-2f * h)) / (-2f * h)),
                _ => ("(exp(h) - 1) / h", (ExactFloat32.Exp(h) - 1f) / h),
            };
            string? bad = float.IsNaN(r0) ? "r0 = h0 / h is NaN"
                : float.IsInfinity(1f / r0) ? "D1 = (m0 - m1) / r0 divides by r0 = h0 / h = 0"
                : TypedConfig.SolverType == "heun" && !float.IsFinite(heunTerm) ? $"heun term {heunExpr} is NaN"
                : null;
            return NonFiniteSchedules.Division(
                NonFiniteSchedules.ZeroDifferences(("h = lambda(t) - lambda(s0)", h), ("h0 = lambda(s0) - lambda(s1)", h0)), "second-order update", bad);
        }
        var (_, _, l2) = At(i - 2);
        float h1 = l1 - l2, r1 = h1 / h;
        float e = alg == "dpmsolver++" ? ExactFloat32.Exp(-h) : ExactFloat32.Exp(h);
        string sign = alg == "dpmsolver++" ? "-h" : "h";
        string? third = NonFiniteSchedules.FirstNonFinite(
            ("1 / r0 (r0 = h0 / h)", 1f / r0), ("1 / r1 (r1 = h1 / h)", 1f / r1), ("r0 / (r0 + r1)", r0 / (r0 + r1)),
            ("1 / (r0 + r1)", 1f / (r0 + r1)), ($"(exp({sign}) - 1) / h", (e - 1f) / h),
            ($"(exp({sign}) - 1 {(alg == "dpmsolver++" ? "+" : "-")} h) / h^2", (alg == "dpmsolver++" ? e - 1f + h : e - 1f - h) / (h * h)));
        return NonFiniteSchedules.Division(NonFiniteSchedules.ZeroDifferences(
            ("h = lambda(t) - lambda(s0)", h), ("h0 = lambda(s0) - lambda(s1)", h0), ("h1 = lambda(s1) - lambda(s2)", h1)), "third-order update", third);
    }

    /// <summary>Forgets the model outputs and the warm-up count (a new loop after <c>SetTimesteps</c>).</summary>
    protected void ResetState()
    {
        for (int i = 0; i < _modelOutputs.Length; i++) { Release(_modelOutputs[i]); _modelOutputs[i] = null; }
        _lowerOrderNums = 0;
        _lastOrder = 0;
    }

    /// <inheritdoc/>
    protected override SchedulerOutput StepCore(Tensor modelOutput, double timestep, Tensor sample, StepOptions? options)
    {
        CheckStepInputs(modelOutput, sample,
            firstThreeChannels: TypedConfig.VarianceType is "learned" or "learned_range" && TypedConfig.PredictionType == "epsilon");
        if (NumInferenceSteps is not int n)
            throw new DiffusersException($"{ClassName}: call SetTimesteps before Step");
        int i = BeginStep(timestep);
        int order = TypedConfig.SolverOrder;
        bool lowerOrderFinal = i == n - 1 && (TypedConfig.EulerAtFinal || (TypedConfig.LowerOrderFinal && n < 15));
        bool lowerOrderSecond = i == n - 2 && TypedConfig.LowerOrderFinal && n < 15;

        using var scope = torch.NewDisposeScope();
        var m = ConvertModelOutput(modelOutput, sample, i);
        Release(_modelOutputs[0]);
        for (int k = 0; k < order - 1; k++) _modelOutputs[k] = _modelOutputs[k + 1];
        _modelOutputs[order - 1] = Keep(m);

        Tensor? noise = IsSde ? DrawNoise(m.shape, m.dtype, m.device, options ?? StepOptions.Default) : null;

        Tensor prev;
        _lastOrder = order == 1 || _lowerOrderNums < 1 || lowerOrderFinal ? 1
            : order == 2 || _lowerOrderNums < 2 || lowerOrderSecond ? 2 : 3;
        if (_lastOrder == 1) prev = FirstOrderUpdate(m, sample, noise, i);
        else if (_lastOrder == 2) prev = SecondOrderUpdate(sample, noise, i);
        else prev = ThirdOrderUpdate(sample, i);

        if (_lowerOrderNums < order) _lowerOrderNums++;
        StepIndex = i + 1;
        return new SchedulerOutput(prev.MoveToOuterDisposeScope());
    }

    /// <summary>diffusers' <c>convert_model_output</c>: x0 for the ++ variants, ε for the others.</summary>
    private Tensor ConvertModelOutput(Tensor modelOutput, Tensor sample, int i)
    {
        var (alpha, sigma) = AlphaSigma(SigmaValues[i]);
        string pred = TypedConfig.PredictionType;
        bool learned = TypedConfig.VarianceType is "learned" or "learned_range";
        var mean = learned && pred == "epsilon" ? modelOutput[.., ..3] : modelOutput;
        if (IsDataPrediction)
        {
            var x0 = DataPrediction(pred, mean, sample, alpha, sigma);
            if (TypedConfig.Thresholding) x0 = SchedulerMath.ThresholdSample(x0, TypedConfig.DynamicThresholdingRatio, TypedConfig.SampleMaxValue);
            return x0;
        }
        var eps = NoisePrediction(pred, mean, sample, alpha, sigma);
        if (TypedConfig.Thresholding)
        {
            var x0 = (sample - eps * sigma) / alpha;
            x0 = SchedulerMath.ThresholdSample(x0, TypedConfig.DynamicThresholdingRatio, TypedConfig.SampleMaxValue);
            eps = (sample - x0 * alpha) / sigma;
        }
        return eps;
    }

    private Tensor FirstOrderUpdate(Tensor m, Tensor sample, Tensor? noise, int i)
    {
        var (at, st, lt) = At(i + 1);
        var (as_, ss, ls) = At(i);
        float h = lt - ls;
        switch (TypedConfig.AlgorithmType)
        {
            case "dpmsolver++":
                return sample * (st / ss) - m * (at * (ExactFloat32.Exp(-h) - 1f));
            case "dpmsolver":
                return sample * (at / as_) - m * (st * (ExactFloat32.Exp(h) - 1f));
            case "sde-dpmsolver++":
            {
                float e2 = ExactFloat32.Exp(-2f * h);
                return sample * (st / ss * ExactFloat32.Exp(-h)) + m * (at * (1f - e2)) + noise! * (st * MathF.Sqrt(1f - e2));
            }
            default: // sde-dpmsolver
                return sample * (at / as_) - m * (2f * (st * (ExactFloat32.Exp(h) - 1f))) + noise! * (st * MathF.Sqrt(ExactFloat32.Exp(2f * h) - 1f));
        }
    }

    private Tensor SecondOrderUpdate(Tensor sample, Tensor? noise, int i)
    {
        var (at, st, lt) = At(i + 1);
        var (a0, s0, l0) = At(i);
        var (_, _, l1) = At(i - 1);
        var m0 = _modelOutputs[^1]!;
        var m1 = _modelOutputs[^2]!;
        float h = lt - l0, h0 = l0 - l1;
        float r0 = h0 / h;
        var d0 = m0;
        var d1 = (m0 - m1) * (1f / r0);
        bool mid = TypedConfig.SolverType == "midpoint";
        switch (TypedConfig.AlgorithmType)
        {
            case "dpmsolver++":
            {
                float c = at * (ExactFloat32.Exp(-h) - 1f);
                return mid
                    ? sample * (st / s0) - d0 * c - d1 * (0.5f * c)
                    : sample * (st / s0) - d0 * c + d1 * (at * ((ExactFloat32.Exp(-h) - 1f) / h + 1f));
            }
            case "dpmsolver":
            {
                float c = st * (ExactFloat32.Exp(h) - 1f);
                return mid
                    ? sample * (at / a0) - d0 * c - d1 * (0.5f * c)
                    : sample * (at / a0) - d0 * c - d1 * (st * ((ExactFloat32.Exp(h) - 1f) / h - 1f));
            }
            case "sde-dpmsolver++":
            {
                float e2 = ExactFloat32.Exp(-2f * h);
                float c = at * (1f - e2);
                var x = sample * (st / s0 * ExactFloat32.Exp(-h)) + d0 * c;
                x = mid ? x + d1 * (0.5f * c) : x + d1 * (at * ((1f - e2) / (-2f * h) + 1f));
                return x + noise! * (st * MathF.Sqrt(1f - e2));
            }
            default: // sde-dpmsolver
            {
                float c = st * (ExactFloat32.Exp(h) - 1f);
                var x = sample * (at / a0) - d0 * (2f * c);
                x = mid ? x - d1 * c : x - d1 * (2f * (st * ((ExactFloat32.Exp(h) - 1f) / h - 1f)));
                return x + noise! * (st * MathF.Sqrt(ExactFloat32.Exp(2f * h) - 1f));
            }
        }
    }

    private Tensor ThirdOrderUpdate(Tensor sample, int i)
    {
        var (at, st, lt) = At(i + 1);
        var (a0, s0, l0) = At(i);
        var (_, _, l1) = At(i - 1);
        var (_, _, l2) = At(i - 2);
        var m0 = _modelOutputs[^1]!;
        var m1 = _modelOutputs[^2]!;
        var m2 = _modelOutputs[^3]!;
        float h = lt - l0, h0 = l0 - l1, h1 = l1 - l2;
        float r0 = h0 / h, r1 = h1 / h;
        var d0 = m0;
        var d10 = (m0 - m1) * (1f / r0);
        var d11 = (m1 - m2) * (1f / r1);
        var d1 = d10 + (d10 - d11) * (r0 / (r0 + r1));
        var d2 = (d10 - d11) * (1f / (r0 + r1));
        if (TypedConfig.AlgorithmType == "dpmsolver++")
        {
            float e = ExactFloat32.Exp(-h);
            return sample * (st / s0) - d0 * (at * (e - 1f)) + d1 * (at * ((e - 1f) / h + 1f))
                   - d2 * (at * ((e - 1f + h) / (h * h) - 0.5f));
        }
        float ep = ExactFloat32.Exp(h);
        return sample * (at / a0) - d0 * (st * (ep - 1f)) - d1 * (st * ((ep - 1f) / h - 1f))
               - d2 * (st * ((ep - 1f - h) / (h * h) - 0.5f));
    }
}
