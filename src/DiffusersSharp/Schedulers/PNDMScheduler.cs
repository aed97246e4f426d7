using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// diffusers' <c>PNDMScheduler</c> (Liu et al. 2022, pseudo numerical methods; scheduling_pndm.py of 0.25.1):
/// four Runge-Kutta (PRK) warm-up steps of 3 model calls each, then linear multistep (PLMS); with
/// <c>skip_prk_steps</c> PLMS from the start (Stable Diffusion's default), the first step taken twice.
/// The scheduler is stateful: call <see cref="SchedulerBase.SetTimesteps(int, Device?)"/> before each loop.
/// </summary>
public sealed class PNDMScheduler : SchedulerBase<PNDMScheduler, PNDMSchedulerConfig>
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>scheduler_config.json</c>.</summary>
    public const string Name = "PNDMScheduler";
    private const int PndmOrder = 4;

    private float _finalAlphaCumprod;
    private long[] _prkTimesteps = [];
    private readonly List<Tensor> _ets = [];
    private Tensor? _curModelOutput;
    private Tensor? _curSample;
    private int _counter;

    /// <summary>
    /// Builds the scheduler from <paramref name="config"/> (null: diffusers' defaults); a value out of range is a
    /// <see cref="ConfigException"/> naming the key.
    /// </summary>
    public PNDMScheduler(PNDMSchedulerConfig? config = null) : base(config) { }

    /// <inheritdoc/>
    protected override void InitCore()
    {
        var c = TypedConfig;
        DDPMScheduler.Check(Name, "prediction_type", c.PredictionType, ["epsilon", "v_prediction"]);
        DDPMScheduler.Check(Name, "timestep_spacing", c.TimestepSpacing, ["linspace", "leading", "trailing"]);
        _finalAlphaCumprod = c.SetAlphaToOne ? 1f : AlphaCumprodAt(0);
    }

    /// <summary>PNDM's step takes no keyword arguments.</summary>
    public override IReadOnlySet<string> StepArguments => NoStepArguments;

    /// <summary>
    /// alpha_prod used after the last timestep: 1, or alphas_cumprod[0] when set_alpha_to_one is false.
    /// </summary>
    public double FinalAlphaCumprod => _finalAlphaCumprod;

    /// <summary>The Runge-Kutta part of <see cref="SchedulerBase.Timesteps"/> (empty with skip_prk_steps).</summary>
    public IReadOnlyList<long> PrkTimesteps => _prkTimesteps;

    /// <inheritdoc/>
    protected override void SetTimestepsCore(int numInferenceSteps, Device? device)
    {
        CheckInferenceSteps(numInferenceSteps);
        var c = TypedConfig;
        int n = numInferenceSteps, T = c.NumTrainTimesteps;
        // diffusers keeps _timesteps ascending here.
        long[] asc = SchedulerMath.IntSpacing(Name, c.TimestepSpacing, T, n, c.StepsOffset).Reverse().ToArray();
        CheckSpacedTimesteps(asc, c.TimestepSpacing, n, c.StepsOffset);
        long[] plms;
        if (c.SkipPrkSteps)
        {
            _prkTimesteps = [];
            // concatenate([ts[:-1], ts[-2:-1], ts[-1:]])[::-1]
            var cat = asc[..^1].Concat(asc.Length >= 2 ? asc[^2..^1] : []).Concat(asc[^1..]).ToArray();
            plms = cat.Reverse().ToArray();
        }
        else
        {
            if (n < PndmOrder)
                throw new DiffusersException($"{Name}: the Runge-Kutta warm-up needs at least {PndmOrder} inference steps, got {n} (or set skip_prk_steps)");
            long half = T / n / 2;
            var last = asc[^PndmOrder..];
            var prk = new List<long>();
            foreach (var v in last) { prk.Add(v); prk.Add(v + half); }   // repeat(2) + tile([0, half])
            var rep = prk.Take(prk.Count - 1).SelectMany(v => new[] { v, v }).ToList(); // [:-1].repeat(2)
            _prkTimesteps = rep.Skip(1).Take(rep.Count - 2).Reverse().ToArray();      // [1:-1][::-1]
            plms = asc[..^3].Reverse().ToArray();
        }
        NumInferenceSteps = n;
        Timesteps = torch.tensor(_prkTimesteps.Concat(plms).ToArray(), ScalarType.Int64, device);
        ResetState();
    }

    private void ResetState()
    {
        foreach (var e in _ets) Release(e);
        _ets.Clear();
        _counter = 0;
        Release(_curModelOutput);
        _curModelOutput = null;
        Release(_curSample);
        _curSample = null;
    }

    /// <inheritdoc/>
    protected override SchedulerOutput StepCore(Tensor modelOutput, double timestep, Tensor sample, StepOptions? options)
    {
        CheckStepInputs(modelOutput, sample);
        if (NumInferenceSteps is null)
            throw new DiffusersException($"{Name}: the number of inference steps is not set; call SetTimesteps before Step");
        long t = CheckTrainTimestep(timestep);
        return _counter < _prkTimesteps.Length && !TypedConfig.SkipPrkSteps
            ? StepPrk(modelOutput, t, sample)
            : StepPlms(modelOutput, t, sample);
    }

    private SchedulerOutput StepPrk(Tensor modelOutput, long timestep, Tensor sample)
    {
        using var scope = torch.NewDisposeScope();
        int n = NumInferenceSteps!.Value;
        long diffToPrev = _counter % 2 != 0 ? 0 : NumTrainTimesteps / n / 2;
        long prevTimestep = timestep - diffToPrev;
        timestep = _prkTimesteps[_counter / 4 * 4];

        switch (_counter % 4)
        {
            case 0:
                SetCur(ref _curModelOutput, (1.0 / 6) * modelOutput);
                _ets.Add(Keep(modelOutput));
                SetCur(ref _curSample, sample);
                break;
            case 1:
            case 2:
                SetCur(ref _curModelOutput, _curModelOutput! + (1.0 / 3) * modelOutput);
                break;
            default:
                modelOutput = _curModelOutput! + (1.0 / 6) * modelOutput;
                Release(_curModelOutput);
                _curModelOutput = null;
                break;
        }
        var curSample = _curSample ?? sample;
        var prev = PrevSample(curSample, timestep, prevTimestep, modelOutput);
        _counter++;
        return new SchedulerOutput(prev.MoveToOuterDisposeScope());
    }

    private SchedulerOutput StepPlms(Tensor modelOutput, long timestep, Tensor sample)
    {
        if (!TypedConfig.SkipPrkSteps && _ets.Count < 3)
            throw new DiffusersException($"{Name}: PLMS steps can only run after the scheduler ran 12 Runge-Kutta (prk) steps");
        using var scope = torch.NewDisposeScope();
        int n = NumInferenceSteps!.Value;
        long ratio = NumTrainTimesteps / n;
        long prevTimestep = timestep - ratio;
        if (_counter != 1)
        {
            while (_ets.Count > 3) { Release(_ets[0]); _ets.RemoveAt(0); }
            _ets.Add(Keep(modelOutput));
        }
        else
        {
            prevTimestep = timestep;
            timestep += ratio;
        }

        if (_ets.Count == 1 && _counter == 0)
        {
            SetCur(ref _curSample, sample);
        }
        else if (_ets.Count == 1 && _counter == 1)
        {
            modelOutput = (modelOutput + _ets[^1]) / 2;
            sample = _curSample!.alias();
            Release(_curSample);
            _curSample = null;
        }
        else if (_ets.Count == 2)
            modelOutput = (3 * _ets[^1] - _ets[^2]) / 2;
        else if (_ets.Count == 3)
            modelOutput = (23 * _ets[^1] - 16 * _ets[^2] + 5 * _ets[^3]) / 12;
        else
            modelOutput = (1.0 / 24) * (55 * _ets[^1] - 59 * _ets[^2] + 37 * _ets[^3] - 9 * _ets[^4]);

        var prev = PrevSample(sample, timestep, prevTimestep, modelOutput);
        _counter++;
        return new SchedulerOutput(prev.MoveToOuterDisposeScope());
    }

    private void SetCur(ref Tensor? slot, Tensor value)
    {
        var kept = Keep(value);
        Release(slot);
        slot = kept;
    }

    /// <summary>diffusers' <c>_get_prev_sample</c> (formula (9) of the PNDM paper).</summary>
    private Tensor PrevSample(Tensor sample, long timestep, long prevTimestep, Tensor modelOutput)
    {
        if (timestep < 0 || timestep >= NumTrainTimesteps)
            throw new DiffusersException($"{Name}: timestep {timestep} is outside [0, {NumTrainTimesteps})");
        float alphaProdT = AlphaCumprodAt(timestep);
        float alphaProdTPrev = prevTimestep >= 0 ? AlphaCumprodAt(prevTimestep) : _finalAlphaCumprod;
        float betaProdT = 1f - alphaProdT;
        float betaProdTPrev = 1f - alphaProdTPrev;
        if (TypedConfig.PredictionType == "v_prediction")
            modelOutput = ExactFloat32.Sqrt(alphaProdT) * modelOutput + ExactFloat32.Sqrt(betaProdT) * sample;
        float sampleCoeff = ExactFloat32.Sqrt(alphaProdTPrev / alphaProdT);
        float denom = alphaProdT * ExactFloat32.Sqrt(betaProdTPrev) + ExactFloat32.Sqrt(alphaProdT * betaProdT * alphaProdTPrev);
        return sampleCoeff * sample - (alphaProdTPrev - alphaProdT) * modelOutput / denom;
    }

    /// <inheritdoc/>
    protected override Tensor AddNoiseCore(Tensor originalSamples, Tensor noise, Tensor timesteps) =>
        AlphaMath.AddNoise(this, AlphasCumprodValues, originalSamples, noise, timesteps);
}
