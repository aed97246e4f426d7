using DiffusersSharp.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// diffusers' <c>DPMSolverSinglestepScheduler</c> (0.25.1): singlestep DPM-Solver / DPM-Solver++ of orders 1–3. Each
/// macro step of order k spends k model calls (the order list <c>[1, 2, 3, 1, 2, 3, …]</c>) and integrates from the
/// sample at its first sub-step, using the outputs evaluated at the intermediate sigmas.
/// </summary>
public sealed class DPMSolverSinglestepScheduler : VpSolverBase<DPMSolverSinglestepScheduler, DPMSolverSinglestepSchedulerConfig>
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>scheduler_config.json</c>.</summary>
    public const string Name = "DPMSolverSinglestepScheduler";
    private Tensor?[] _modelOutputs = [];
    private Tensor? _sample;
    private int[] _orderList = [];

    /// <summary>
    /// Builds the scheduler from <paramref name="config"/> (null: diffusers' defaults); a value out of range is a
    /// <see cref="ConfigException"/> naming the key.
    /// </summary>
    public DPMSolverSinglestepScheduler(DPMSolverSinglestepSchedulerConfig? config = null) : base(Normalize(config)) { }

    /// <inheritdoc/>
    protected override void InitCore()
    {
        var c = TypedConfig;
        if (c.AlgorithmType is not ("dpmsolver" or "dpmsolver++"))
            throw new ConfigException($"{Name}: algorithm_type \"{c.AlgorithmType}\" is not implemented; expected \"dpmsolver++\" or \"dpmsolver\" (the SDE variants exist only in DPMSolverMultistepScheduler)") { Key = "algorithm_type" };
        if (c.SolverType is not ("midpoint" or "heun"))
            throw new ConfigException($"{Name}: solver_type \"{c.SolverType}\" is not implemented; expected \"midpoint\" or \"heun\" (\"logrho\", \"bh1\", \"bh2\" are read as \"midpoint\")") { Key = "solver_type" };
        if (c.SolverOrder is < 1 or > 3)
            throw new ConfigException($"{Name}: solver_order {c.SolverOrder} is not supported; singlestep DPM-Solver has orders 1, 2 and 3") { Key = "solver_order" };
        if (!DPMSolverMultistepScheduler.Predictions.Contains(c.PredictionType))
            throw new ConfigException($"{Name}: prediction_type \"{c.PredictionType}\" must be one of {DPMSolverMultistepScheduler.Quote(DPMSolverMultistepScheduler.Predictions)}") { Key = "prediction_type" };
        _modelOutputs = new Tensor?[c.SolverOrder];
        Timesteps = torch.arange(c.NumTrainTimesteps - 1, -1, -1, ScalarType.Int64);
    }

    /// <summary>Singlestep DPM-Solver's step takes no keyword arguments.</summary>
    public override IReadOnlySet<string> StepArguments => NoStepArguments;

    /// <summary>diffusers' renames of the other solvers' option values (register_toTypedConfig in its constructor).</summary>
    private static DPMSolverSinglestepSchedulerConfig Normalize(DPMSolverSinglestepSchedulerConfig? config)
    {
        var c = config ?? new DPMSolverSinglestepSchedulerConfig();
        if (c.AlgorithmType == "deis") c = c with { AlgorithmType = "dpmsolver++" };
        if (c.SolverType is "logrho" or "bh1" or "bh2") c = c with { SolverType = "midpoint" };
        return c;
    }

    /// <summary>diffusers' <c>order_list</c>: the solver order of each step of the current schedule.</summary>
    public IReadOnlyList<int> OrderList => _orderList;

    /// <summary>diffusers' <c>get_order_list(num_inference_steps)</c>.</summary>
    public static int[] GetOrderList(int steps, int order, bool lowerOrderFinal)
    {
        static int[] Rep(int[] p, int times) => Enumerable.Repeat(p, Math.Max(times, 0)).SelectMany(x => x).ToArray();
        if (lowerOrderFinal)
        {
            return order switch
            {
                3 => (steps % 3) switch
                {
                    0 => [.. Rep([1, 2, 3], steps / 3 - 1), 1, 2, 1],
                    1 => [.. Rep([1, 2, 3], steps / 3), 1],
                    _ => [.. Rep([1, 2, 3], steps / 3), 1, 2],
                },
                2 => steps % 2 == 0 ? Rep([1, 2], steps / 2) : [.. Rep([1, 2], steps / 2), 1],
                _ => Rep([1], steps),
            };
        }
        return order switch
        {
            3 => Rep([1, 2, 3], steps / 3),
            2 => Rep([1, 2], steps / 2),
            _ => Rep([1], steps),
        };
    }

    /// <inheritdoc/>
    protected override void SetTimestepsCore(int numInferenceSteps, Device? device)
    {
        CheckInferenceSteps(numInferenceSteps);
        int last = LastTimestep(TypedConfig.LambdaMinClipped);
        // np.linspace(0, T - 1 - clipped_idx, N + 1).round()[::-1][:-1]
        var spaced = SchedulerMath.NpLinspace(0, last - 1, numInferenceSteps + 1)
            .Select(x => (long)SchedulerMath.NpRound(x)).Reverse().Take(numInferenceSteps).ToArray();
        var (ts, sigmas) = BuildSchedule(spaced, numInferenceSteps, TypedConfig.UseKarrasSigmas == true, lu: false);
        var t = torch.tensor(ts, ScalarType.Int64);
        SetSchedule(device is null ? t : t.to(device, disposeAfter: true), sigmas, numInferenceSteps);
        for (int i = 0; i < _modelOutputs.Length; i++) { Release(_modelOutputs[i]); _modelOutputs[i] = null; }
        Release(_sample);
        _sample = null;
        // diffusers switches lower_order_final on (with a warning) when the steps do not divide by the order.
        if (!TypedConfig.LowerOrderFinal && numInferenceSteps % TypedConfig.SolverOrder != 0)
            TypedConfig = TypedConfig with { LowerOrderFinal = true };
        _orderList = GetOrderList(numInferenceSteps, TypedConfig.SolverOrder, TypedConfig.LowerOrderFinal);
    }

    /// <inheritdoc/>
    protected override SchedulerOutput StepCore(Tensor modelOutput, double timestep, Tensor sample, StepOptions? options)
    {
        CheckStepInputs(modelOutput, sample,
            firstThreeChannels: TypedConfig.VarianceType == "learned_range" && TypedConfig.PredictionType == "epsilon");
        if (NumInferenceSteps is null)
            throw new DiffusersException($"{Name}: call SetTimesteps before Step");
        int i = BeginStep(timestep);
        int solverOrder = TypedConfig.SolverOrder;
        using var scope = torch.NewDisposeScope();
        var m = ConvertModelOutput(modelOutput, sample, i);
        Release(_modelOutputs[0]);
        for (int k = 0; k < solverOrder - 1; k++) _modelOutputs[k] = _modelOutputs[k + 1];
        _modelOutputs[solverOrder - 1] = Keep(m);

        int order = _orderList[i];
        while (_modelOutputs[solverOrder - order] is null) order--;
        if (order == 1)
        {
            Release(_sample);
            _sample = Keep(sample);
        }
        var prev = order switch
        {
            1 => FirstOrderUpdate(m, _sample!, i),
            2 => SecondOrderUpdate(_sample!, i),
            _ => ThirdOrderUpdate(_sample!, i),
        };
        StepIndex = i + 1;
        return new SchedulerOutput(prev.MoveToOuterDisposeScope());
    }

    private Tensor ConvertModelOutput(Tensor modelOutput, Tensor sample, int i)
    {
        var (alpha, sigma) = AlphaSigma(SigmaValues[i]);
        bool learned = TypedConfig.VarianceType == "learned_range";
        string pred = TypedConfig.PredictionType;
        var mean = learned && pred == "epsilon" ? modelOutput[.., ..3] : modelOutput;
        if (TypedConfig.AlgorithmType == "dpmsolver++")
        {
            var x0 = DataPrediction(pred, mean, sample, alpha, sigma);
            if (TypedConfig.Thresholding) x0 = SchedulerMath.ThresholdSample(x0, TypedConfig.DynamicThresholdingRatio, TypedConfig.SampleMaxValue);
            return x0;
        }
        return NoisePrediction(pred, mean, sample, alpha, sigma);
    }

    private Tensor FirstOrderUpdate(Tensor m, Tensor sample, int i)
    {
        var (at, st, lt) = At(i + 1);
        var (as_, ss, ls) = At(i);
        float h = lt - ls;
        return TypedConfig.AlgorithmType == "dpmsolver++"
            ? sample * (st / ss) - m * (at * (ExactFloat32.Exp(-h) - 1f))
            : sample * (at / as_) - m * (st * (ExactFloat32.Exp(h) - 1f));
    }

    private Tensor SecondOrderUpdate(Tensor sample, int i)
    {
        var (at, st, lt) = At(i + 1);
        var (_, _, l0) = At(i);
        var (a1, s1, l1) = At(i - 1);
        var m0 = _modelOutputs[^1]!;
        var m1 = _modelOutputs[^2]!;
        float h = lt - l1, h0 = l0 - l1;
        float r0 = h0 / h;
        var d0 = m1;
        var d1 = (m0 - m1) * (1f / r0);
        bool mid = TypedConfig.SolverType == "midpoint";
        if (TypedConfig.AlgorithmType == "dpmsolver++")
        {
            float c = at * (ExactFloat32.Exp(-h) - 1f);
            return mid
                ? sample * (st / s1) - d0 * c - d1 * (0.5f * c)
                : sample * (st / s1) - d0 * c + d1 * (at * ((ExactFloat32.Exp(-h) - 1f) / h + 1f));
        }
        float ce = st * (ExactFloat32.Exp(h) - 1f);
        return mid
            ? sample * (at / a1) - d0 * ce - d1 * (0.5f * ce)
            : sample * (at / a1) - d0 * ce - d1 * (st * ((ExactFloat32.Exp(h) - 1f) / h - 1f));
    }

    private Tensor ThirdOrderUpdate(Tensor sample, int i)
    {
        var (at, st, lt) = At(i + 1);
        var (_, _, l0) = At(i);
        var (_, _, l1) = At(i - 1);
        var (a2, s2, l2) = At(i - 2);
        var m0 = _modelOutputs[^1]!;
        var m1 = _modelOutputs[^2]!;
        var m2 = _modelOutputs[^3]!;
        float h = lt - l2, h0 = l0 - l2, h1 = l1 - l2;
        float r0 = h0 / h, r1 = h1 / h;
        var d0 = m2;
        var d10 = (m1 - m2) * (1f / r1);
        var d11 = (m0 - m2) * (1f / r0);
        var d1 = (d10 * r0 - d11 * r1) / (r0 - r1);
        var d2 = (d11 - d10) * 2f / (r0 - r1);
        bool mid = TypedConfig.SolverType == "midpoint";
        if (TypedConfig.AlgorithmType == "dpmsolver++")
        {
            float e = ExactFloat32.Exp(-h);
            var x = sample * (st / s2) - d0 * (at * (e - 1f));
            return mid
                ? x + d11 * (at * ((e - 1f) / h + 1f))
                : x + d1 * (at * ((e - 1f) / h + 1f)) - d2 * (at * ((e - 1f + h) / (h * h) - 0.5f));
        }
        float ep = ExactFloat32.Exp(h);
        var y = sample * (at / a2) - d0 * (st * (ep - 1f));
        return mid
            ? y - d11 * (st * ((ep - 1f) / h - 1f))
            : y - d1 * (st * ((ep - 1f) / h - 1f)) - d2 * (st * ((ep - 1f - h) / (h * h) - 0.5f));
    }
}
