using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// diffusers' <c>LMSDiscreteScheduler</c> (k-diffusion's linear multistep; scheduling_lms_discrete.py of 0.25.1).
/// The step coefficients are the integrals over [σ_t, σ_{t+1}] of the Lagrange basis polynomials through the
/// last <c>order</c> sigmas; diffusers integrates them numerically (<c>scipy.integrate.quad</c>), here they are
/// integrated exactly (the polynomials have degree ≤ 3; a 4-point Gauss-Legendre rule is exact to degree 7).
/// </summary>
public sealed class LMSDiscreteScheduler : SigmaSchedulerBase<LMSDiscreteScheduler, LMSDiscreteSchedulerConfig>
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>scheduler_config.json</c>.</summary>
    public const string Name = "LMSDiscreteScheduler";

    private static readonly IReadOnlySet<string> Arguments = new HashSet<string> { "order" };

    private readonly List<Tensor> _derivatives = [];
    private int _lastOrder;   // the multistep order of the last step (0: none since SetTimesteps)

    /// <summary>
    /// Builds the scheduler from <paramref name="config"/> (null: diffusers' defaults); a value out of range is a
    /// <see cref="ConfigException"/> naming the key.
    /// </summary>
    public LMSDiscreteScheduler(LMSDiscreteSchedulerConfig? config = null) : base(config) { }

    /// <inheritdoc/>
    protected override void InitCore()
    {
        var c = TypedConfig;
        DDPMScheduler.Check(Name, "prediction_type", c.PredictionType, DDPMScheduler.PredictionTypes);
        DDPMScheduler.Check(Name, "timestep_spacing", c.TimestepSpacing, ["linspace", "leading", "trailing"]);
        SetTimesteps(c.NumTrainTimesteps);
        NumInferenceSteps = null;
    }

    /// <summary>Reads <see cref="StepOptions.Order"/> (diffusers' <c>order</c>, default 4).</summary>
    public override IReadOnlySet<string> StepArguments => Arguments;

    /// <inheritdoc/>
    protected override void SetTimestepsCore(int numInferenceSteps, Device? device)
    {
        var c = TypedConfig;
        int n = numInferenceSteps;
        var (ts, train) = BeginSchedule(n);
        var sigmas = SigmaMath.InterpSigmas(ts, train);
        Tensor timesteps;
        if (c.UseKarrasSigmas == true)
        {
            var logSigmas = SigmaMath.Log32(train);
            sigmas = SigmaMath.Karras(sigmas, n);
            // diffusers leaves these float64 (np.array of _sigma_to_t results, never cast).
            timesteps = torch.tensor(sigmas.Select(s => SigmaMath.SigmaToT(s, logSigmas)).ToArray(), ScalarType.Float64, device);
        }
        else timesteps = torch.tensor(ts, device: device);
        SetSchedule(sigmas.Select(s => (float)s).Append(0f).ToArray(), timesteps, device);
        foreach (var d in _derivatives) Release(d);
        _derivatives.Clear();
        _lastOrder = 0;
    }

    /// <inheritdoc/>
    /// <remarks>Also a step whose Lagrange points coincide, where a coefficient divides by σ_j − σ_k = 0 (as diffusers'
    /// <c>get_lms_coefficient</c> does): SD 1.x's "leading" spacing with steps_offset 1 at 1000 of 1000 steps starts at
    /// timestep 1000, which np.interp clamps to timestep 999's sigma; "trailing" spacing where it overshoots to −1 next to
    /// 0. Named from the schedule, with the nearby step counts and the spacings where no step divides by zero.</remarks>
    protected override string? NonFiniteCauseCore(double timestep)
    {
        var c = TypedConfig;
        if (StepIndex is int next && _lastOrder >= 2 && next - 1 is var i
            && Enumerable.Range(0, _lastOrder).Any(j => !double.IsFinite(LmsCoefficient(_lastOrder, i, j)))
            && NonFiniteSchedules.Describe(TimestepValues, SigmaValues, i - _lastOrder + 1, i, NumTrainTimesteps, null,
                $"timestep_spacing \"{c.TimestepSpacing}\", steps_offset {c.StepsOffset}, {NumInferenceSteps} inference steps of {NumTrainTimesteps} trained")
                is { } equal)
        {
            string? remedy = NonFiniteSchedules.Remedy("no step divides by zero", NumInferenceSteps ?? 0, c.TimestepSpacing, NumTrainTimesteps, -1,
                spacing => new LMSDiscreteScheduler(c with { TimestepSpacing = spacing }),
                copy => NonFiniteSchedules.Distinct(copy.SigmaValues, compareFinal: true));
            return $"{equal}. So the order-{_lastOrder} coefficients, integrals of the product of (tau - sigma_k) / (sigma_j - sigma_k) " +
                   $"over k != j, divide by sigma_j - sigma_k = 0, as in diffusers' {Name}.step" + (remedy is null ? "" : "; " + remedy);
        }
        return base.NonFiniteCauseCore(timestep);
    }

    /// <summary>
    /// ∫_{σ_t}^{σ_{t+1}} Π_{k≠j} (τ - σ_{t-k}) / (σ_{t-j} - σ_{t-k}) dτ (diffusers' <c>get_lms_coefficient</c>), exact.
    /// </summary>
    public double LmsCoefficient(int order, int t, int currentOrder)
    {
        double Basis(double tau)
        {
            double prod = 1.0;
            for (int k = 0; k < order; k++)
            {
                if (k == currentOrder) continue;
                prod *= (tau - SigmaValues[t - k]) / (SigmaValues[t - currentOrder] - SigmaValues[t - k]);
            }
            return prod;
        }
        double a = SigmaValues[t], b = SigmaValues[t + 1];
        double half = (b - a) / 2, mid = (a + b) / 2, sum = 0;
        for (int i = 0; i < GaussNodes.Length; i++) sum += GaussWeights[i] * Basis(mid + half * GaussNodes[i]);
        return sum * half;
    }

    // 4-point Gauss-Legendre on [-1, 1]: exact for polynomials of degree ≤ 7.
    private static readonly double[] GaussNodes = [-0.8611363115940526, -0.3399810435848563, 0.3399810435848563, 0.8611363115940526];
    private static readonly double[] GaussWeights = [0.3478548451374538, 0.6521451548625461, 0.6521451548625461, 0.3478548451374538];

    /// <summary>diffusers' <c>step(model_output, timestep, sample, order)</c>: reads <see cref="StepOptions.Order"/>.</summary>
    protected override SchedulerOutput StepCore(Tensor modelOutput, double timestep, Tensor sample, StepOptions? options)
    {
        CheckStepInputs(modelOutput, sample);
        int order = (options ?? StepOptions.Default).Order;
        if (order < 1) throw new DiffusersException($"{Name}: the multistep order must be at least 1, got {order}");
        int i = BeginStep(timestep);
        using var scope = torch.NewDisposeScope();
        float sigma = SigmaValues[i];
        var predOriginal = PredictOriginal(modelOutput, sample, sigma);
        var derivative = (sample - predOriginal) / sigma;
        _derivatives.Add(Keep(derivative));
        if (_derivatives.Count > order) { Release(_derivatives[0]); _derivatives.RemoveAt(0); }
        int ord = _lastOrder = Math.Min(i + 1, order);
        Tensor? acc = null;
        for (int j = 0; j < ord && j < _derivatives.Count; j++)
        {
            double coeff = LmsCoefficient(ord, i, j);
            var term = coeff * _derivatives[_derivatives.Count - 1 - j];
            acc = acc is null ? term : acc + term;
        }
        var prev = sample + acc!;
        StepIndex = i + 1;
        return new SchedulerOutput(prev.MoveToOuterDisposeScope(), predOriginal.MoveToOuterDisposeScope());
    }
}
