using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// diffusers' <c>DDIMInverseScheduler</c> (scheduling_ddim_inverse.py of 0.25.1): deterministic DDIM run backwards,
/// from a clean sample towards noise (DDIM inversion, as the DiffEdit and pix2pix-zero pipelines use it). Its timesteps
/// ascend; each step goes from the previous timestep's ᾱ (<c>set_alpha_to_one</c>'s 1 or alphas_cumprod[0] before the
/// first) to the given timestep's. "leading" (with <c>steps_offset</c>) or "trailing" spacing; clipping of x0; no
/// <c>add_noise</c> (diffusers' class has none).
/// </summary>
public sealed class DDIMInverseScheduler : SchedulerBase<DDIMInverseScheduler, DDIMInverseSchedulerConfig>
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>scheduler_config.json</c>.</summary>
    public const string Name = "DDIMInverseScheduler";

    private float _initialAlphaCumprod;

    /// <summary>
    /// Builds the scheduler from <paramref name="config"/> (null: diffusers' defaults); a value out of range is a
    /// <see cref="ConfigException"/> naming the key.
    /// </summary>
    public DDIMInverseScheduler(DDIMInverseSchedulerConfig? config = null) : base(config) { }

    /// <inheritdoc/>
    protected override void InitCore()
    {
        var c = TypedConfig;
        DDPMScheduler.Check(Name, "prediction_type", c.PredictionType, DDPMScheduler.PredictionTypes);
        DDPMScheduler.Check(Name, "timestep_spacing", c.TimestepSpacing, ["leading", "trailing"]);
        bool alphaToOne = c.SetAlphaToOne;
        // diffusers' deprecated set_alpha_to_zero (a kwarg it reads from a config too) replaces set_alpha_to_one
        if (c.Extra is { } extra && extra.TryGetValue("set_alpha_to_zero", out var zero) && zero.ValueKind != JsonValueKind.Null)
        {
            if (zero.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
                throw new ConfigException($"{Name}: config key 'set_alpha_to_zero': set_alpha_to_zero must be true or false, got {zero.GetRawText()}") { Key = "set_alpha_to_zero" };
            alphaToOne = zero.GetBoolean();
        }
        _initialAlphaCumprod = alphaToOne ? 1f : AlphaCumprodAt(0);
        Timesteps = torch.arange(0, c.NumTrainTimesteps, 1, ScalarType.Int64);
    }

    /// <summary>DDIM inverse's step takes no keyword arguments.</summary>
    public override IReadOnlySet<string> StepArguments => NoStepArguments;

    /// <summary>diffusers' <c>initial_alpha_cumprod</c>: ᾱ before the first timestep, 1 or alphas_cumprod[0].</summary>
    public double InitialAlphaCumprod => _initialAlphaCumprod;

    /// <inheritdoc/>
    protected override void SetTimestepsCore(int numInferenceSteps, Device? device)
    {
        CheckInferenceSteps(numInferenceSteps);
        var c = TypedConfig;
        // DDIM's spacings, ascending (leading: arange(N) * (T // N) + steps_offset; trailing: round(arange(T, 0, -T/N))[::-1] - 1)
        var ts = SchedulerMath.IntSpacing(Name, c.TimestepSpacing, c.NumTrainTimesteps, numInferenceSteps, c.StepsOffset).Reverse().ToArray();
        CheckSpacedTimesteps(ts, c.TimestepSpacing, numInferenceSteps, c.StepsOffset);
        NumInferenceSteps = numInferenceSteps;
        Timesteps = torch.tensor(ts, ScalarType.Int64, device);
    }

    /// <summary>The ᾱ the step at <paramref name="timestep"/> starts from: that of timestep - T / N, or the initial one before 0.</summary>
    private float StartAlphaCumprod(long timestep, int n)
    {
        long from = Math.Min(timestep - NumTrainTimesteps / n, NumTrainTimesteps - 1);
        return from >= 0 ? AlphaCumprodAt(from) : _initialAlphaCumprod;
    }

    /// <summary>diffusers' <c>step(model_output, timestep, sample)</c>: from the previous timestep's ᾱ to <paramref name="timestep"/>'s.</summary>
    protected override SchedulerOutput StepCore(Tensor modelOutput, double timestep, Tensor sample, StepOptions? options)
    {
        CheckStepInputs(modelOutput, sample);
        if (NumInferenceSteps is not int n)
            throw new DiffusersException($"{Name}: the number of inference steps is not set; call SetTimesteps before Step");
        var c = TypedConfig;
        long to = CheckTrainTimestep(timestep);
        using var scope = torch.NewDisposeScope();
        float alphaProdT = StartAlphaCumprod(to, n);
        float alphaProdTPrev = AlphaCumprodAt(to);
        float betaProdT = 1f - alphaProdT;
        float sqrtAlpha = ExactFloat32.Sqrt(alphaProdT), sqrtBeta = ExactFloat32.Sqrt(betaProdT);

        var (predOriginal, predEpsilon) = AlphaMath.PredictOriginalAndEpsilon(c.PredictionType, modelOutput, sample, sqrtAlpha, sqrtBeta);
        if (c.ClipSample)
            predOriginal = predOriginal.clamp(-c.ClipSampleRange, c.ClipSampleRange);

        var direction = ExactFloat32.Sqrt(1f - alphaProdTPrev) * predEpsilon;
        var prevSample = ExactFloat32.Sqrt(alphaProdTPrev) * predOriginal + direction;
        return new SchedulerOutput(prevSample.MoveToOuterDisposeScope(), predOriginal.alias().MoveToOuterDisposeScope());
    }

    /// <inheritdoc/>
    /// <remarks>A "sample" prediction whose step starts from ᾱ = 1 (the initial ᾱ of <c>set_alpha_to_one</c>, at the
    /// first step) divides by sqrt(1 - 1) = 0 to get ε, as in diffusers.</remarks>
    protected override string? NonFiniteCauseCore(double timestep)
    {
        if (NumInferenceSteps is not int n || timestep != Math.Floor(timestep) || timestep < 0 || timestep >= NumTrainTimesteps) return null;
        if (TypedConfig.PredictionType == "sample" && StartAlphaCumprod((long)timestep, n) == 1f)
            return $"the step to timestep {Fmt(timestep)} starts from alpha_cumprod 1 ({(_initialAlphaCumprod == 1f ? "set_alpha_to_one" : "alphas_cumprod")}), " +
                   "and a \"sample\" prediction's epsilon, (x - sqrt(alpha_cumprod) * x0) / sqrt(1 - alpha_cumprod), divides by 0 there, as in diffusers: " +
                   "set set_alpha_to_one false";
        return null;
    }

    /// <summary>False: diffusers' <c>DDIMInverseScheduler</c> has no <c>add_noise</c>.</summary>
    public override bool DefinesAddNoise => false;

    /// <summary>Refused: diffusers' <c>DDIMInverseScheduler</c> defines no <c>add_noise</c>.</summary>
    protected override Tensor AddNoiseCore(Tensor originalSamples, Tensor noise, Tensor timesteps) =>
        throw new DiffusersException($"{Name} does not define add_noise (diffusers' DDIMInverseScheduler has none): it runs a clean sample towards noise itself; use DDIMScheduler to noise a sample");
}
