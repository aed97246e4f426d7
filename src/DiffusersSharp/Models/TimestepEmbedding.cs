using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>TimestepEmbedding</c> (models/embeddings.py, v0.25.1): linear_1 → act → linear_2
/// [→ post_act], with an optional <c>cond_proj</c> of a condition added to the input first.
/// Weight names: <c>linear_1</c>, <c>linear_2</c>, <c>cond_proj</c>.
/// </summary>
public sealed class TimestepEmbedding : nn.Module<Tensor, Tensor>
{
    private readonly Linear linear_1;
    private readonly Linear? cond_proj;
    private readonly Linear linear_2;
    private readonly Func<Tensor, Tensor> _act;
    private readonly Func<Tensor, Tensor>? _postAct;

    /// <summary>
    /// Builds the block from diffusers' constructor arguments (same names and defaults, in .NET casing).
    /// </summary>
    public TimestepEmbedding(int inChannels, int timeEmbedDim, string actFn = "silu", int? outDim = null,
        string? postActFn = null, int? condProjDim = null, bool sampleProjBias = true)
        : base(nameof(TimestepEmbedding))
    {
        linear_1 = Layers.Linear(inChannels, timeEmbedDim, hasBias: sampleProjBias);
        if (condProjDim is int cd)
            cond_proj = Layers.Linear(cd, inChannels, hasBias: false);
        _act = Activations.Get(actFn, mayOverwriteInput: true);
        linear_2 = Layers.Linear(timeEmbedDim, outDim ?? timeEmbedDim, hasBias: sampleProjBias);
        if (postActFn is not null)
            _postAct = Activations.Get(postActFn, mayOverwriteInput: true);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor sample) => Forward(sample);

    /// <summary>
    /// linear_1 → activation → linear_2 (→ post activation), with the optional condition projection added first (a
    /// condition of one row, 1-D, serves the whole batch, as torch broadcasts it); the caller owns the result.
    /// </summary>
    public Tensor Forward(Tensor sample, Tensor? condition = null)
    {
        if (condition is not null)
        {
            if (cond_proj is null)
                throw new ArgumentException("TimestepEmbedding: a condition was given but cond_proj_dim is not set");
            long width = cond_proj.weight!.shape[1];
            // (B, width), (1, width) or one row (width): cond_proj's result broadcasts onto the (B, in_channels) input, as in torch
            bool fits = condition.dim() switch
            {
                1 => condition.shape[0] == width,
                2 => condition.shape[1] == width && (condition.shape[0] == 1 || condition.shape[0] == sample.shape[0]),
                _ => false,
            };
            if (!fits)
                throw new ArgumentException(
                    $"timestep_cond has shape {Layers.Shape(condition)}, but the time embedding takes [{sample.shape[0]} (the batch) or 1, {width} (time_cond_proj_dim)] or [{width}]",
                    "timestep_cond");
            // "mat1 and mat2 must have the same dtype" in libtorch, as in diffusers (its LCM pipeline casts w to the latents' dtype)
            if (condition.dtype != cond_proj.weight.dtype)
                throw new ArgumentException(
                    $"timestep_cond has dtype {condition.dtype}, but the time embedding runs in {cond_proj.weight.dtype}; pass it in {cond_proj.weight.dtype}",
                    "timestep_cond");
            sample = sample + cond_proj.forward(condition);
        }
        var h = _act(linear_1.forward(sample));
        h = linear_2.forward(h);
        if (_postAct is not null) h = _postAct(h);
        return h;
    }
}
