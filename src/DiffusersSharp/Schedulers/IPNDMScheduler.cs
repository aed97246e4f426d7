using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// diffusers' <c>IPNDMScheduler</c> (scheduling_ipndm.py of 0.25.1): the fourth-order improved pseudo linear multistep
/// sampler on its own schedule, β = sin²(s·π/2) for s from 1 down to 0 in num_inference_steps steps (or
/// <c>trained_betas</c>), α = sqrt(1 - β²) and timesteps atan2(β, α)·2/π (float32, in (0, 1]). Each step combines the
/// last four ε-like terms β·x + α·model_output with the Adams–Bashforth weights (the first three steps with fewer).
/// As in diffusers, the constructor already sets a schedule of num_train_timesteps steps; the step index comes from the
/// first timestep given to <see cref="SchedulerBase.Step(Tensor, double, Tensor, StepOptions?)"/>.
/// <para>sin and atan2 are torch 1.13's float32 kernels ported to managed code (<see cref="ExactTrig32"/>): the schedule
/// is bit-exact and the same on every CPU.</para>
/// </summary>
public sealed class IPNDMScheduler : SchedulerBase<IPNDMScheduler, IPNDMSchedulerConfig>
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>scheduler_config.json</c>.</summary>
    public const string Name = "IPNDMScheduler";

    private float[] _stepBetas = [], _stepAlphas = [];
    private double[] _schedule = [];
    private readonly List<Tensor> _ets = [];
    private int? _stepIndex;

    /// <summary>
    /// Builds the scheduler from <paramref name="config"/> (null: diffusers' defaults) and sets its schedule of
    /// num_train_timesteps steps, as diffusers' constructor does; a value out of range is a <see cref="ConfigException"/>
    /// naming the key.
    /// </summary>
    public IPNDMScheduler(IPNDMSchedulerConfig? config = null) : base(config) { }

    /// <inheritdoc/>
    protected override void InitCore()
    {
        if (TypedConfig.TrainedBetas is { Length: < 2 } trained)
            throw new ConfigException(
                $"{Name}: config key 'trained_betas': trained_betas needs at least 2 values (the betas of the steps and the one after the last), got {trained.Length}")
            { Key = "trained_betas" };
        SetTimestepsCore(TypedConfig.NumTrainTimesteps, null);
    }

    /// <summary>IPNDM's step takes no keyword arguments.</summary>
    public override IReadOnlySet<string> StepArguments => NoStepArguments;

    /// <summary>diffusers' <c>step_index</c>: the index of the next step in <see cref="SchedulerBase.Timesteps"/>; null before the first step.</summary>
    public int? StepIndex => _stepIndex;

    /// <inheritdoc/>
    /// <remarks>Any number of steps of at least 1 (diffusers' IPNDM has no upper bound: its schedule is continuous). With
    /// <c>trained_betas</c> the number of timesteps is their length - 1 whatever <paramref name="numInferenceSteps"/> is, as in diffusers.</remarks>
    protected override void SetTimestepsCore(int numInferenceSteps, Device? device)
    {
        if (numInferenceSteps < 1)
            throw new DiffusersException($"{Name}: num_inference_steps must be at least 1, got {numInferenceSteps}");
        if (numInferenceSteps > SchedulerConfigValidation.MaxTrainTimesteps)
            throw new DiffusersException($"{Name}: num_inference_steps must be at most {SchedulerConfigValidation.MaxTrainTimesteps}, got {numInferenceSteps}");
        float[] betas;
        if (TypedConfig.TrainedBetas is { } trained)
            betas = trained.Select(b => (float)b).ToArray();
        else
        {
            // torch.linspace(1, 0, N + 1)[:-1], then 0; sin(steps * pi / 2) ** 2 (float32 product with pi as a float)
            var steps = SchedulerMath.Linspace32(1, 0, numInferenceSteps + 1);
            steps[^1] = 0f;
            betas = steps.Select(s => ExactTrig32.Sin(s * (float)Math.PI / 2f)).Select(s => s * s).ToArray();
        }
        var alphas = betas.Select(b => ExactFloat32.Sqrt(1f - b * b)).ToArray();
        // (atan2(betas, alphas) / pi * 2)[:-1]
        var timesteps = ExactTrig32.Atan2(betas, alphas)[..^1].Select(a => a / (float)Math.PI * 2f).ToArray();

        NumInferenceSteps = numInferenceSteps;
        _stepBetas = betas;
        _stepAlphas = alphas;
        ReplaceBetas(betas, alphas);
        Timesteps = torch.tensor(timesteps, ScalarType.Float32, device);
        _schedule = timesteps.Select(t => (double)t).ToArray();
        foreach (var e in _ets) Release(e);
        _ets.Clear();
        _stepIndex = null;
    }

    /// <summary>diffusers' <c>step(model_output, timestep, sample)</c>: one linear multistep update of the ε-like terms.</summary>
    protected override SchedulerOutput StepCore(Tensor modelOutput, double timestep, Tensor sample, StepOptions? options)
    {
        CheckStepInputs(modelOutput, sample);
        int i = SigmaMath.StepInRange(this, SigmaMath.CurrentIndex(this, _stepIndex, timestep, _schedule, float32: true), _schedule.Length);
        using var scope = torch.NewDisposeScope();
        _ets.Add(Keep(sample * _stepBetas[i] + modelOutput * _stepAlphas[i]));
        if (_ets.Count > 4)
        {
            Release(_ets[0]);   // diffusers keeps them all; only the last four are ever read
            _ets.RemoveAt(0);
        }
        var ets = _ets.Count switch
        {
            1 => _ets[^1],
            2 => (3 * _ets[^1] - _ets[^2]) / 2,
            3 => (23 * _ets[^1] - 16 * _ets[^2] + 5 * _ets[^3]) / 12,
            _ => (1.0 / 24) * (55 * _ets[^1] - 59 * _ets[^2] + 37 * _ets[^3] - 9 * _ets[^4]),
        };
        // _get_prev_sample: x0 = (x - σ·ets) / max(α, 1e-8), x_next = α_next·x0 + σ_next·ets
        float alpha = _stepAlphas[i], sigma = _stepBetas[i];
        var pred = alpha < 1e-8f ? (sample - sigma * ets) / 1e-8 : (sample - sigma * ets) / alpha;
        var prev = _stepAlphas[i + 1] * pred + ets * _stepBetas[i + 1];
        _stepIndex = i + 1;
        return new SchedulerOutput(prev.MoveToOuterDisposeScope());
    }

    /// <summary>False: diffusers' <c>IPNDMScheduler</c> has no <c>add_noise</c>.</summary>
    public override bool DefinesAddNoise => false;

    /// <summary>Refused: diffusers' <c>IPNDMScheduler</c> defines no <c>add_noise</c> (an img2img pipeline fails on it there too).</summary>
    protected override Tensor AddNoiseCore(Tensor originalSamples, Tensor noise, Tensor timesteps) =>
        throw new DiffusersException($"{Name} does not define add_noise (diffusers' IPNDMScheduler has none), so it cannot start from a noised image (img2img, inpainting); use another scheduler there");
}
