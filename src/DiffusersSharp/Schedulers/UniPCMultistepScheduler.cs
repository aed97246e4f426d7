using System.Text.Json;
using DiffusersSharp.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// diffusers' <c>UniPCMultistepScheduler</c> (0.25.1; Zhao et al. 2023, arXiv 2302.04867): the UniP-p predictor
/// and UniC-p corrector with B(h) = h (bh1) or e^h − 1 (bh2), on x0 (<c>predict_x0</c>) or ε, with warm-up and
/// lower-order final steps and per-step <c>disable_corrector</c>. The small linear systems for the ρ
/// coefficients are solved in float32 with <c>torch.linalg.solve</c>, as diffusers does.
/// </summary>
public sealed class UniPCMultistepScheduler : VpSolverBase<UniPCMultistepScheduler, UniPCMultistepSchedulerConfig>
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>scheduler_config.json</c>.</summary>
    public const string Name = "UniPCMultistepScheduler";
    private Tensor?[] _modelOutputs = [];
    private Tensor? _lastSample;
    private int _lowerOrderNums;
    private int _thisOrder;
    private int _correctorOrder;   // the order of the last step's corrector (0: none)

    /// <summary>
    /// Builds the scheduler from <paramref name="config"/> (null: diffusers' defaults); a value out of range is a
    /// <see cref="ConfigException"/> naming the key.
    /// </summary>
    public UniPCMultistepScheduler(UniPCMultistepSchedulerConfig? config = null) : base(Normalize(config)) { }

    /// <inheritdoc/>
    protected override void InitCore()
    {
        var c = TypedConfig;
        if (c.SolverType is not ("bh1" or "bh2"))
            throw new ConfigException($"{Name}: solver_type \"{c.SolverType}\" is not implemented; expected \"bh1\" or \"bh2\" (\"midpoint\", \"heun\", \"logrho\" are read as \"bh2\")") { Key = "solver_type" };
        if (c.SolverOrder < 1)
            throw new ConfigException($"{Name}: solver_order must be at least 1, got {c.SolverOrder}") { Key = "solver_order" };
        if (!DPMSolverMultistepScheduler.Predictions.Contains(c.PredictionType))
            throw new ConfigException($"{Name}: prediction_type \"{c.PredictionType}\" must be one of {DPMSolverMultistepScheduler.Quote(DPMSolverMultistepScheduler.Predictions)}") { Key = "prediction_type" };
        if (c.TimestepSpacing is not ("linspace" or "leading" or "trailing"))
            throw SchedulerMath.BadSpacing(Name, c.TimestepSpacing);
        if (c.Extra is { } extra && extra.TryGetValue("solver_p", out var sp) && sp.ValueKind != JsonValueKind.Null)
            throw new ConfigException($"{Name}: solver_p (a predictor scheduler object) is not supported; remove it from the config") { Key = "solver_p" };
        _modelOutputs = new Tensor?[c.SolverOrder];
        Timesteps = torch.arange(c.NumTrainTimesteps - 1, -1, -1, ScalarType.Int64);
    }

    /// <summary>UniPC's step takes no keyword arguments.</summary>
    public override IReadOnlySet<string> StepArguments => NoStepArguments;

    /// <summary>diffusers' renames of the other solvers' option values (register_toTypedConfig in its constructor).</summary>
    private static UniPCMultistepSchedulerConfig Normalize(UniPCMultistepSchedulerConfig? config)
    {
        var c = config ?? new UniPCMultistepSchedulerConfig();
        if (c.SolverType is "midpoint" or "heun" or "logrho") c = c with { SolverType = "bh2" };
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
        Release(_lastSample);
        _lastSample = null;
        _lowerOrderNums = 0;
        _correctorOrder = 0;
    }

    /// <summary>set_timesteps' timesteps and sigmas for <paramref name="n"/> steps and <paramref name="spacing"/>.</summary>
    private (long[] Timesteps, float[] Sigmas) Schedule(int n, string spacing) =>
        BuildSchedule(SpacedTimesteps(spacing, n, NumTrainTimesteps, TypedConfig.StepsOffset), n, TypedConfig.UseKarrasSigmas == true, lu: false);

    /// <inheritdoc/>
    /// <remarks>Also a step whose corrector or predictor reads coinciding sigmas (SD 1.x's "leading" spacing with
    /// steps_offset 1 at 999 and 1000 of 1000 steps, "trailing" where it overshoots to −1 next to 0, "linspace" at 1000):
    /// diffusers' r_k = (λ_k − λ_0) / h is 0 / 0, or D_k = (m_k − m_0) / r_k divides by r_k = 0, or b = hφ_k k! / B(h) is
    /// 0 / 0. Named from the schedule, with the nearby step counts and the spacings where no step divides by zero.</remarks>
    protected override string? NonFiniteCauseCore(double timestep)
    {
        if (LastStepIndex is int i)
        {
            // the corrector at step i reads sigmas i - c .. i, the predictor i - p + 1 .. i + 1
            if (_correctorOrder > 0 && Division(i - 1, _correctorOrder, "corrector") is { } corrector
                && Cause(i, i - _correctorOrder, i, corrector) is { } c)
                return c;
            if (Division(i, _thisOrder, "predictor") is { } predictor && Cause(i, i - _thisOrder + 1, i + 1, predictor) is { } p)
                return p;
        }
        return base.NonFiniteCauseCore(timestep);

        string? Cause(int step, int lo, int hi, string arithmetic) =>
            EqualSigmasCause(lo, hi, arithmetic, TypedConfig.TimestepSpacing, TypedConfig.StepsOffset,
                TypedConfig.UseKarrasSigmas == true, _ => !TypedConfig.LowerOrderFinal && TypedConfig.SolverOrder >= 3,
                (n, s) => Schedule(n, s).Sigmas,
                hi == step + 1 && LastStepKeepsSigma(step) ? "set lower_order_final true, which makes the last step first-order" : null);
    }

    /// <summary>
    /// What a UniP (or UniC) update of <paramref name="order"/> from sigma <paramref name="s0"/> to <paramref name="s0"/>
    /// + 1 divides by zero (its λ differences that are 0, then its first non-finite r_k, 1 / r_k or b_k, as
    /// <see cref="PredictorUpdate"/> / <see cref="CorrectorUpdate"/> compute them); null where they are finite.
    /// </summary>
    private string? Division(int s0, int order, string part)
    {
        var (_, _, lt) = At(s0 + 1);
        var (_, _, l0) = At(s0);
        float h = lt - l0;
        var differences = new List<(string, float)> { ("h = lambda(t) - lambda(s0)", h) };
        var terms = new List<(string, float)>();
        for (int k = 1; k < order; k++)
        {
            var (_, _, lk) = At(s0 - k);
            float rk = (lk - l0) / h;
            differences.Add(($"lambda(s{k}) - lambda(s0)", lk - l0));
            // r_k = ±inf (h = 0 alone) is harmless: D_k = (m_k − m_0) / r_k is then 0
            terms.Add(float.IsNaN(rk)
                ? ($"r{k} = (lambda(s{k}) - lambda(s0)) / h", rk)
                : ($"1 / r{k} in D{k} = (m{k} - m0) / r{k}", 1f / rk));
        }
        if (order > 2 || (order == 2 && part == "corrector"))
            terms.AddRange(BCoefficients(h, order).Select((b, k) => ($"b{k + 1} = h phi_{k + 1} {k + 1}! / B(h)", b)));
        return NonFiniteSchedules.Division(NonFiniteSchedules.ZeroDifferences([.. differences]), part,
            NonFiniteSchedules.FirstNonFinite([.. terms]));
    }

    /// <inheritdoc/>
    protected override SchedulerOutput StepCore(Tensor modelOutput, double timestep, Tensor sample, StepOptions? options)
    {
        CheckStepInputs(modelOutput, sample);
        if (NumInferenceSteps is not int n)
            throw new DiffusersException($"{Name}: call SetTimesteps before Step");
        int i = BeginStep(timestep);
        int order = TypedConfig.SolverOrder;
        using var scope = torch.NewDisposeScope();
        bool useCorrector = i > 0 && !TypedConfig.DisableCorrector.Contains(i - 1) && _lastSample is not null;
        var converted = ConvertModelOutput(modelOutput, sample, i);
        _correctorOrder = useCorrector ? _thisOrder : 0;
        if (useCorrector) sample = CorrectorUpdate(converted, _lastSample!, sample, _thisOrder, i);

        Release(_modelOutputs[0]);
        for (int k = 0; k < order - 1; k++) _modelOutputs[k] = _modelOutputs[k + 1];
        _modelOutputs[order - 1] = Keep(converted);

        int thisOrder = TypedConfig.LowerOrderFinal ? Math.Min(order, n - i) : order;
        _thisOrder = Math.Min(thisOrder, _lowerOrderNums + 1);

        Release(_lastSample);
        _lastSample = Keep(sample);
        var prev = PredictorUpdate(sample, _thisOrder, i);
        if (_lowerOrderNums < order) _lowerOrderNums++;
        StepIndex = i + 1;
        return new SchedulerOutput(prev.MoveToOuterDisposeScope());
    }

    private Tensor ConvertModelOutput(Tensor modelOutput, Tensor sample, int i)
    {
        var (alpha, sigma) = AlphaSigma(SigmaValues[i]);
        if (TypedConfig.PredictX0)
        {
            var x0 = DataPrediction(TypedConfig.PredictionType, modelOutput, sample, alpha, sigma);
            if (TypedConfig.Thresholding) x0 = SchedulerMath.ThresholdSample(x0, TypedConfig.DynamicThresholdingRatio, TypedConfig.SampleMaxValue);
            return x0;
        }
        return NoisePrediction(TypedConfig.PredictionType, modelOutput, sample, alpha, sigma);
    }

    /// <summary>
    /// The B(h) coefficients shared by UniP and UniC: R (rows rks^(k−1)), b_k = h φ_k k! / B(h), hφ_1 and B(h),
    /// all float32 as diffusers computes them on 0-dim tensors.
    /// </summary>
    private (Tensor R, Tensor B, float HPhi1, float Bh) Coefficients(float[] rks, float h, int order)
    {
        float hh = TypedConfig.PredictX0 ? -h : h;
        float hPhi1 = Expm1(hh);
        float bh = TypedConfig.SolverType == "bh1" ? hh : Expm1(hh);
        var b = BCoefficients(h, order);
        using var rk = torch.tensor(rks, ScalarType.Float32);
        var rows = Enumerable.Range(0, order).Select(k => rk.pow(k)).ToArray();
        var r = torch.stack(rows);
        foreach (var row in rows) row.Dispose();
        return (r, torch.tensor(b, ScalarType.Float32), hPhi1, bh);
    }

    /// <summary>b_k = hφ_k k! / B(h), k = 1..<paramref name="order"/> (float32, as diffusers computes them).</summary>
    private float[] BCoefficients(float h, int order)
    {
        float hh = TypedConfig.PredictX0 ? -h : h;
        float hPhiK = Expm1(hh) / hh - 1f;
        float bh = TypedConfig.SolverType == "bh1" ? hh : Expm1(hh);
        long factorial = 1;
        var b = new float[order];
        for (int k = 1; k <= order; k++)
        {
            b[k - 1] = hPhiK * factorial / bh;
            factorial *= k + 1;
            hPhiK = hPhiK / hh - (float)(1.0 / factorial);
        }
        return b;
    }

    /// <summary><c>torch.expm1</c> of a float32 value (correctly rounded through float64).</summary>
    private static float Expm1(float x)
    {
        double d = x;
        // e^x - 1 without cancellation: expm1 via the identity 2 tanh(x/2) / (1 - tanh(x/2)).
        double t = Math.Tanh(d / 2);
        return (float)(Math.Abs(d) < 0.5 ? 2 * t / (1 - t) : Math.Exp(d) - 1);
    }

    /// <summary>Σ_k ρ_k D_k (diffusers' <c>einsum("k,bkc...->bc...", rhos, D1s)</c>).</summary>
    private static Tensor Combine(Tensor rhos, List<Tensor> d1s, int count)
    {
        var rho = rhos.data<float>().ToArray();
        Tensor acc = d1s[0] * rho[0];
        for (int k = 1; k < count; k++) acc = acc + d1s[k] * rho[k];
        return acc;
    }

    /// <summary>diffusers' <c>multistep_uni_p_bh_update</c>.</summary>
    private Tensor PredictorUpdate(Tensor x, int order, int i)
    {
        var (at, st, lt) = At(i + 1);
        var (a0, s0, l0) = At(i);
        float h = lt - l0;
        var m0 = _modelOutputs[^1]!;
        var rks = new List<float>();
        var d1s = new List<Tensor>();
        for (int k = 1; k < order; k++)
        {
            var (_, _, lk) = At(i - k);
            float rk = (lk - l0) / h;
            rks.Add(rk);
            d1s.Add((_modelOutputs[^(k + 1)]! - m0) / rk);
        }
        rks.Add(1f);
        var (r, b, hPhi1, bh) = Coefficients([.. rks], h, order);
        Tensor? predRes = null;
        if (d1s.Count > 0)
        {
            Tensor rhosP = order == 2
                ? torch.tensor(new[] { 0.5f }, ScalarType.Float32)
                : torch.linalg.solve(r[..^1, ..^1], b[..^1]);
            predRes = Combine(rhosP, d1s, d1s.Count);
        }
        if (TypedConfig.PredictX0)
        {
            var xt = x * (st / s0) - m0 * (at * hPhi1);
            return predRes is null ? xt : xt - predRes * (at * bh);
        }
        var xe = x * (at / a0) - m0 * (st * hPhi1);
        return predRes is null ? xe : xe - predRes * (st * bh);
    }

    /// <summary>diffusers' <c>multistep_uni_c_bh_update</c>: corrects the sample at step i with the new model output.</summary>
    private Tensor CorrectorUpdate(Tensor modelT, Tensor lastSample, Tensor thisSample, int order, int i)
    {
        var (at, st, lt) = At(i);
        var (a0, s0, l0) = At(i - 1);
        float h = lt - l0;
        var m0 = _modelOutputs[^1]!;
        var rks = new List<float>();
        var d1s = new List<Tensor>();
        for (int k = 1; k < order; k++)
        {
            var (_, _, lk) = At(i - (k + 1));
            float rk = (lk - l0) / h;
            rks.Add(rk);
            d1s.Add((_modelOutputs[^(k + 1)]! - m0) / rk);
        }
        rks.Add(1f);
        var (r, b, hPhi1, bh) = Coefficients([.. rks], h, order);
        Tensor rhosC = order == 1 ? torch.tensor(new[] { 0.5f }, ScalarType.Float32) : torch.linalg.solve(r, b);
        float rhoLast = rhosC.data<float>()[rhosC.numel() - 1];
        var d1t = modelT - m0;
        var corr = d1s.Count > 0 ? Combine(rhosC, d1s, d1s.Count) + d1t * rhoLast : d1t * rhoLast;
        if (TypedConfig.PredictX0)
            return lastSample * (st / s0) - m0 * (at * hPhi1) - corr * (at * bh);
        return lastSample * (at / a0) - m0 * (st * hPhi1) - corr * (st * bh);
    }
}
