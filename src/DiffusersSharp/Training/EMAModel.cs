using DiffusersSharp.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;

namespace DiffusersSharp.Training;

/// <summary>
/// diffusers' <c>training_utils.EMAModel</c>: shadow copies of a model's parameters updated after each optimisation
/// step with <c>s -= (1 - decay) * (s - p)</c> (a frozen parameter is copied). The decay at optimisation step n is
/// <see cref="GetDecay"/>: with <c>step = max(0, n - update_after_step - 1)</c>, 0 when <c>step &lt;= 0</c>, else
/// <c>1 - (1 + step / inv_gamma)^-power</c> with EMA warm-up or <c>(1 + step) / (10 + step)</c> without, clamped to
/// [min_decay, decay].
/// </summary>
public sealed class EMAModel : IDisposable
{
    private readonly Tensor[] _shadow;

    /// <summary>
    /// diffusers' <c>EMAModel</c>: a shadow copy of <paramref name="parameters"/>, with its constructor
    /// arguments (same names and defaults).
    /// </summary>
    public EMAModel(IEnumerable<Parameter> parameters, double decay = 0.9999, double minDecay = 0.0,
        int updateAfterStep = 0, bool useEmaWarmup = false, double invGamma = 1.0, double power = 2.0 / 3.0)
    {
        using (torch.no_grad())
            _shadow = parameters.Select(p => TorchUtils.Scoped(() => p.detach().clone())).ToArray();
        Decay = decay;
        MinDecay = minDecay;
        UpdateAfterStep = updateAfterStep;
        UseEmaWarmup = useEmaWarmup;
        InvGamma = invGamma;
        Power = power;
    }

    /// <summary>diffusers' <c>decay</c>: the largest decay the warm-up reaches.</summary>
    public double Decay { get; }
    /// <summary>diffusers' <c>min_decay</c>: the smallest decay.</summary>
    public double MinDecay { get; }
    /// <summary>diffusers' <c>update_after_step</c>: steps before the average starts moving.</summary>
    public int UpdateAfterStep { get; }
    /// <summary>diffusers' <c>use_ema_warmup</c>: the decay follows 1 - (1 + step / inv_gamma)^-power.</summary>
    public bool UseEmaWarmup { get; }
    /// <summary>diffusers' <c>inv_gamma</c> of the warm-up.</summary>
    public double InvGamma { get; }
    /// <summary>diffusers' <c>power</c> of the warm-up.</summary>
    public double Power { get; }

    /// <summary>Number of <see cref="Step"/> calls so far (diffusers' <c>optimization_step</c>).</summary>
    public long OptimizationStep { get; set; }

    /// <summary>The decay used by the last <see cref="Step"/>.</summary>
    public double CurDecayValue { get; private set; }

    /// <summary>The averaged parameters, in the order of the parameters given to the constructor.</summary>
    public IReadOnlyList<Tensor> ShadowParams => _shadow;

    /// <summary>diffusers' <c>get_decay</c>: the decay used at <paramref name="optimizationStep"/>.</summary>
    public double GetDecay(long optimizationStep)
    {
        long step = Math.Max(0, optimizationStep - UpdateAfterStep - 1);
        if (step <= 0) return 0.0;
        double value = UseEmaWarmup
            ? 1 - Math.Pow(1 + step / InvGamma, -Power)
            : (1.0 + step) / (10.0 + step);
        value = Math.Min(value, Decay);
        return Math.Max(value, MinDecay);
    }

    /// <summary>
    /// diffusers' <c>step</c>: moves every shadow parameter towards <paramref name="parameters"/> by (1 - decay).
    /// </summary>
    public void Step(IEnumerable<Parameter> parameters)
    {
        var ps = parameters.ToArray();
        if (ps.Length != _shadow.Length)
            throw new DiffusersException($"EMAModel.Step: got {ps.Length} parameters, the EMA holds {_shadow.Length}");
        OptimizationStep++;
        double decay = GetDecay(OptimizationStep);
        CurDecayValue = decay;
        double oneMinusDecay = 1 - decay;
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        for (int i = 0; i < ps.Length; i++)
        {
            if (ps[i].requires_grad) _shadow[i].sub_((_shadow[i] - ps[i]).mul_(oneMinusDecay));
            else _shadow[i].copy_(ps[i]);
        }
    }

    /// <summary>Copies the shadow values into <paramref name="parameters"/>.</summary>
    public void CopyTo(IEnumerable<Parameter> parameters)
    {
        using var _ = torch.no_grad();
        int i = 0;
        foreach (var p in parameters) p.copy_(_shadow[i++]);
        if (i != _shadow.Length)
            throw new DiffusersException($"EMAModel.CopyTo: got {i} parameters, the EMA holds {_shadow.Length}");
    }

    /// <summary>Replaces the shadow values (used when resuming).</summary>
    public void LoadShadow(IReadOnlyList<Tensor> values)
    {
        if (values.Count != _shadow.Length)
            throw new DiffusersException($"EMAModel: checkpoint has {values.Count} shadow tensors, expected {_shadow.Length}");
        using var _ = torch.no_grad();
        for (int i = 0; i < _shadow.Length; i++) _shadow[i].copy_(values[i]);
    }

    /// <summary>Disposes the shadow parameters.</summary>
    public void Dispose()
    {
        foreach (var t in _shadow) t.Dispose();
    }
}
