using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models.Lora;

/// <summary>
/// The base of diffusers' <c>LoRACompatibleLinear</c> / <c>LoRACompatibleConv</c> (models/lora.py, v0.25.1): a layer whose
/// parameters are <c>weight</c> and <c>bias</c> (the names a checkpoint holds) and which adds its LoRA adapters to the
/// base output, <c>out = base(x) + s · Σ weight_i · (alpha_i / r_i) · up_i(down_i(x))</c>, with <c>s</c> read from
/// <see cref="ScaleSource"/> on every call (1.0 when none). Each update is two small products (x·downᵀ, then ·upᵀ), never a
/// dense delta. <see cref="Fuse"/> folds the active adapters into <c>weight</c> and keeps the original weight, which
/// <see cref="Unfuse"/> copies back bit for bit. The adapters are not registered parameters: they are not in the
/// model's state dict and are not moved by <c>to()</c> (load LoRAs after moving the model).
/// </summary>
public abstract class LoRACompatibleLayer : nn.Module<Tensor, Tensor>
{
    private readonly List<LoraAdapter> _adapters = [];
    private Tensor? _original;

    /// <summary>Registers <paramref name="weight"/> (and <paramref name="bias"/>) under the names <c>weight</c> / <c>bias</c>.</summary>
    protected LoRACompatibleLayer(string name, Tensor weight, Tensor? bias) : base(name)
    {
        // a module outlives the dispose scope it is built in (as TorchSharp's own layers do)
        register_parameter("weight", (Parameter)new Parameter(weight).DetachFromDisposeScope());
        if (bias is not null) register_parameter("bias", (Parameter)new Parameter(bias).DetachFromDisposeScope());
    }

    /// <summary>The layer's weight (after <see cref="Fuse"/>, the fused one).</summary>
    public Tensor Weight => get_parameter("weight")!;

    /// <summary>The layer's bias, or null.</summary>
    public Tensor? Bias => get_parameter("bias");

    /// <summary>The adapters loaded on this layer, in load order.</summary>
    public IReadOnlyList<LoraAdapter> Adapters => _adapters;

    /// <summary>True while the weight holds fused adapters (<see cref="Unfuse"/> restores the original).</summary>
    public bool IsFused => _original is not null;

    /// <summary>Where the per-call scale is read; null = 1.0. Set by the LoRA loader to the model's <see cref="LoraScale"/>.</summary>
    public LoraScale? ScaleSource { get; set; }

    /// <summary>The weight shape an adapter's <c>up · down</c> product must have: [out, in] or [out, in, kh, kw].</summary>
    public long[] WeightShape => Weight.shape;

    /// <summary>The layer without LoRA (<c>F.linear</c> / <c>F.conv2d</c>).</summary>
    protected Tensor BaseForward(Tensor x) => BaseForward(x, Weight);

    /// <summary>The layer's own operation with <paramref name="weight"/> in place of its weight (same shape and dtype).</summary>
    protected abstract Tensor BaseForward(Tensor x, Tensor weight);

    /// <summary>How many output positions (tokens, or pixels × batch) the layer computes for <paramref name="x"/>.</summary>
    protected abstract long OutputPositions(Tensor x);

    /// <summary><c>up(down(x))</c> of one adapter, in the adapter's dtype.</summary>
    protected abstract Tensor LoraForward(LoraAdapter adapter, Tensor x);

    /// <summary>Checks that <paramref name="down"/> / <paramref name="up"/> fit this layer; returns null or what is wrong.</summary>
    public abstract string? CheckShapes(Tensor down, Tensor up);

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        if (_adapters.Count == 0) return BaseForward(x);
        double s = ScaleSource?.Value ?? 1.0;
        if (EffectiveWeight(x, s) is { } effective)
        {
            using (effective) return BaseForward(x, effective);
        }
        var y = BaseForward(x);
        foreach (var a in _adapters)
        {
            double k = s * a.Weight * a.Factor;
            if (!a.Active || k == 0) continue;
            using var scope = torch.NewDisposeScope();
            var input = x.dtype == a.Down.dtype ? x : x.to_type(a.Down.dtype);
            var u = LoraForward(a, input);
            if (u.dtype != y.dtype) u = u.to_type(y.dtype);
            // diffusers: base + scale · (up(down(x)) · alpha / rank); one fused multiply-add here
            y.add_(u, alpha: k);
        }
        return y;
    }

    /// <summary>
    /// For a float32 layer over many positions, W + Σ k·(up·down) once per call is cheaper than two small products per
    /// position (a 3×3 LoCon of rank 64 over a 64² latent costs ~20% of the layer's own work per position; the weight sum
    /// costs out·rank·in once): then the call runs the layer's own operation with that weight. The result equals the
    /// per-position form up to float rounding (order of the sums). Null: take the per-position form.
    /// </summary>
    private Tensor? EffectiveWeight(Tensor x, double s)
    {
        var w = Weight;
        if (w.dtype != ScalarType.Float32 || w.requires_grad && torch.is_grad_enabled()) return null;
        long outFeatures = w.shape[0], inFeatures = w.numel() / outFeatures;
        long positions = OutputPositions(x);
        var active = _adapters.Where(a => a.Active && s * a.Weight * a.Factor != 0 && a.Down.dtype == ScalarType.Float32).ToList();
        if (active.Count != _adapters.Count(a => a.Active && s * a.Weight * a.Factor != 0)) return null;
        long rank = active.Sum(a => (long)a.Rank);
        // per position: rank·(in + out) multiply-adds; once: rank·in·out for the products plus in·out for the sum
        if (positions * rank * (inFeatures + outFeatures) < 2 * (rank + 1) * inFeatures * outFeatures) return null;
        using var scope = torch.NewDisposeScope();
        var effective = w.clone();
        foreach (var a in active)
            effective.add_(torch.mm(a.Up.flatten(1), a.Down.flatten(1)).reshape(w.shape), alpha: s * a.Weight * a.Factor);
        return effective.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Adds an adapter. With <paramref name="replace"/>, every adapter of the same name on this layer is removed first
    /// (diffusers 0.25.1's single LoRA slot: a second load without a name replaces the first where both name a layer).
    /// </summary>
    public void AddAdapter(LoraAdapter adapter, bool replace)
    {
        if (replace) RemoveAdapters(adapter.Name);
        else if (_adapters.Any(a => a.Name == adapter.Name))
            throw new DiffusersException($"LoRA adapter '{adapter.Name}' is already loaded on this layer");
        _adapters.Add(adapter);
    }

    /// <summary>Removes (and frees) the adapters named <paramref name="name"/>, or all when null.</summary>
    public void RemoveAdapters(string? name = null)
    {
        for (int i = _adapters.Count - 1; i >= 0; i--)
        {
            if (name is not null && _adapters[i].Name != name) continue;
            _adapters[i].Dispose();
            _adapters.RemoveAt(i);
        }
    }

    /// <summary>
    /// diffusers' <c>_fuse_lora(lora_scale)</c>: <c>weight = W + lora_scale · Σ (weight_i · up_i · alpha_i / r_i) @ down_i</c>,
    /// computed in float32 and cast back to the weight's dtype; the active adapters are then dropped (as diffusers drops
    /// the LoRA layer) and the original weight is kept for <see cref="Unfuse"/>. Returns false when nothing was active.
    /// </summary>
    public bool Fuse(double loraScale = 1.0)
    {
        var active = _adapters.Where(a => a.Active).ToList();
        if (active.Count == 0) return false;
        using var noGrad = torch.no_grad();
        using (var scope = torch.NewDisposeScope())
        {
            var w = Weight;
            var fused = w.to_type(ScalarType.Float32, copy: true);
            foreach (var a in active)
            {
                var up = a.Up.to_type(ScalarType.Float32);
                if (a.Alpha is double alpha) up = up * (alpha / a.Rank);
                if (a.Weight != 1.0) up = up * a.Weight;
                var delta = torch.mm(up.flatten(1), a.Down.to_type(ScalarType.Float32).flatten(1)).reshape(w.shape);
                fused = fused + loraScale * delta;
            }
            if (_original is null) _original = w.detach().clone().DetachFromDisposeScope();
            w.copy_(fused);
        }
        foreach (var a in active)
        {
            _adapters.Remove(a);
            a.Dispose();
        }
        return true;
    }

    /// <summary>diffusers' <c>_unfuse_lora</c>, exact: the weight kept by <see cref="Fuse"/> is copied back bit for bit.</summary>
    public bool Unfuse()
    {
        if (_original is null) return false;
        using var noGrad = torch.no_grad();
        Weight.copy_(_original);
        _original.Dispose();
        _original = null;
        return true;
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            RemoveAdapters();
            _original?.Dispose();
            _original = null;
        }
        base.Dispose(disposing);
    }

    /// <summary>
    /// PyTorch's default init of a Linear / Conv2d weight and bias (kaiming-uniform, a = √5), as TorchSharp's; left
    /// uninitialised while a checkpoint's strict load follows the build (<see cref="Layers.LeaveUninitialized"/>).
    /// </summary>
    protected static (Tensor Weight, Tensor? Bias) DefaultInit(long[] weightShape, bool bias)
    {
        using var noGrad = torch.no_grad();
        var w = torch.empty(weightShape, dtype: Layers.BuildDType);
        if (Layers.LeaveUninitialized)
            return (w, bias ? torch.empty(weightShape[0], dtype: Layers.BuildDType) : null);
        nn.init.kaiming_uniform_(w, a: Math.Sqrt(5));
        Tensor? b = null;
        if (bias)
        {
            b = torch.empty(weightShape[0], dtype: Layers.BuildDType);
            var (fanIn, _) = nn.init.CalculateFanInAndFanOut(w);
            double bound = fanIn > 0 ? 1 / Math.Sqrt(fanIn) : 0;
            nn.init.uniform_(b, -bound, bound);
        }
        return (w, b);
    }
}
