using DiffusersSharp.Models.Lora;
using DiffusersSharp.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>FeedForward</c> (models/attention.py, v0.25.1): <c>net.0</c> = an input projection with its
/// activation ("geglu" → <see cref="GEGLU"/>, "gelu", "gelu-approximate" (tanh), "geglu-approximate"
/// (x·σ(1.702x))), <c>net.1</c> = dropout, <c>net.2</c> = the output linear, [<c>net.3</c> = final dropout].
/// Inner width <c>dim · mult</c> unless given.
/// </summary>
public sealed class FeedForward : nn.Module
{
    private readonly ModuleList<nn.Module> net;
    private readonly Func<Tensor, Tensor> _act;
    private readonly double _dropout;
    private readonly bool _finalDropout;

    /// <summary>
    /// Builds the block from diffusers' constructor arguments (same names and defaults, in .NET casing).
    /// </summary>
    public FeedForward(int dim, int? dimOut = null, int mult = 4, double dropout = 0.0, string activationFn = "geglu",
        bool finalDropout = false, int? innerDim = null, bool bias = true)
        : base(nameof(FeedForward))
    {
        int inner = innerDim ?? dim * mult;
        int outDim = dimOut ?? dim;
        nn.Module act;
        switch (activationFn)
        {
            case "geglu":
                var geglu = new GEGLU(dim, inner, bias);
                act = geglu;
                _act = geglu.Forward;
                break;
            case "gelu":
            case "gelu-approximate":
            case "geglu-approximate":
                var g = new ProjectedActivation(dim, inner, activationFn, bias);
                act = g;
                _act = g.Forward;
                break;
            default:
                throw new ArgumentException($"FeedForward: unsupported activation_fn '{activationFn}' (expected geglu, gelu, gelu-approximate or geglu-approximate)");
        }
        var output = new LoRACompatibleLinear(inner, outDim, hasBias: bias);
        _dropout = dropout;
        _finalDropout = finalDropout;
        // (no module-typed fields besides the registered ones: RegisterComponents would register them twice)
        net = new ModuleList<nn.Module>(act, nn.Dropout(dropout), output);
        if (finalDropout) net.Add(nn.Dropout(dropout));
        RegisterComponents();
    }

    /// <summary>The projection in (GEGLU or GELU), dropout, the projection out; the caller owns the result.</summary>
    public Tensor Forward(Tensor hiddenStates)
    {
        var h = _act(hiddenStates);
        if (_dropout > 0 && training) h = nn.functional.dropout(h, _dropout, training: true);
        using var hidden = h;
        var o = ((LoRACompatibleLinear)net[2]).forward(hidden);
        if (_finalDropout && _dropout > 0 && training) o = nn.functional.dropout(o, _dropout, training: true);
        return o;
    }

    /// <summary>diffusers' <c>GELU</c> (exact or tanh-approximate) and <c>ApproximateGELU</c>: a <c>proj</c> linear and the activation.</summary>
    private sealed class ProjectedActivation : nn.Module
    {
        private readonly LoRACompatibleLinear proj;
        private readonly string _kind;

        public ProjectedActivation(int dimIn, int dimOut, string kind, bool bias) : base(kind == "geglu-approximate" ? "ApproximateGELU" : "GELU")
        {
            proj = new LoRACompatibleLinear(dimIn, dimOut, hasBias: bias);
            _kind = kind;
            RegisterComponents();
        }

        public Tensor Forward(Tensor x)
        {
            using var p = proj.forward(x);
            return _kind switch
            {
                "gelu" => nn.functional.gelu(p),
                "gelu-approximate" => nn.functional.gelu(p, approximate: GELU.Approximate.tanh),
                _ => TorchUtils.Scoped(() => p * torch.sigmoid(p * 1.702)),
            };
        }
    }
}
