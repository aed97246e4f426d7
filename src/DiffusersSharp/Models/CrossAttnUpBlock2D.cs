using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>CrossAttnUpBlock2D</c> (models/unet_2d_blocks.py, v0.25.1): <c>num_layers</c> × (concatenate
/// the next skip state → resnet → <see cref="Transformer2DModel"/>), then an optional nearest ×2 + conv
/// upsampler (<c>upsamplers.0.conv</c>). FreeU: <see cref="UNetUpBlock.FreeU"/> before each skip state is
/// joined. Dual cross-attention is not ported.
/// </summary>
public sealed class CrossAttnUpBlock2D : UNetUpBlock
{
    private readonly ModuleList<Transformer2DModel> attentions;
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly ModuleList<Upsample2D>? upsamplers;

    /// <inheritdoc/>
    public override int NumResnets => resnets.Count;
    /// <inheritdoc/>
    public override bool HasCrossAttention => true;
    /// <summary>diffusers' <c>num_attention_heads</c>: heads of each Transformer2DModel.</summary>
    public int NumAttentionHeads { get; }

    /// <summary>
    /// Builds the block from diffusers' constructor arguments (same names and defaults, in .NET casing).
    /// </summary>
    public CrossAttnUpBlock2D(int inChannels, int outChannels, int prevOutputChannel, int? tembChannels,
        int? resolutionIdx = null, double dropout = 0.0, int numLayers = 1, int[]? transformerLayersPerBlock = null,
        double resnetEps = 1e-6, string resnetTimeScaleShift = "default", string resnetActFn = "swish",
        int resnetGroups = 32, bool resnetPreNorm = true, int numAttentionHeads = 1, int crossAttentionDim = 1280,
        double outputScaleFactor = 1.0, bool addUpsample = true, bool dualCrossAttention = false,
        bool useLinearProjection = false, bool onlyCrossAttention = false, bool upcastAttention = false,
        string attentionType = "default")
        : base(nameof(CrossAttnUpBlock2D))
    {
        if (dualCrossAttention)
            throw new ArgumentException("CrossAttnUpBlock2D: dual_cross_attention is not supported by DiffusersSharp");
        NumAttentionHeads = numAttentionHeads;
        ResolutionIdx = resolutionIdx;
        var options = new ResnetOptions(tembChannels, resnetEps, resnetGroups, dropout, resnetTimeScaleShift, resnetActFn,
            outputScaleFactor, resnetPreNorm);
        var depths = AttentionLayers.Depths(transformerLayersPerBlock, numLayers, nameof(CrossAttnUpBlock2D));
        resnets = new ModuleList<ResnetBlock2D>();
        attentions = new ModuleList<Transformer2DModel>();
        for (int i = 0; i < numLayers; i++)
        {
            resnets.Add(options.Up(i, numLayers, inChannels, prevOutputChannel, outChannels));
            attentions.Add(AttentionLayers.Transformer(depths[i], outChannels, numAttentionHeads, crossAttentionDim,
                resnetGroups, useLinearProjection, onlyCrossAttention, upcastAttention, attentionType));
        }
        upsamplers = addUpsample ? ConvUpsampler(outChannels) : null;
        RegisterComponents();
    }

    /// <inheritdoc/>
    protected override Tensor ForwardCore(Tensor hiddenStates, Stack<Tensor> resHiddenStates, Tensor? temb,
        BlockContext context, long[]? upsampleSize)
    {
        var h = new Chain(hiddenStates);
        for (int i = 0; i < resnets.Count; i++)
        {
            var skip = ApplyFreeU(h, resHiddenStates.Pop());
            h.Then(x => torch.cat([x, skip], dim: 1));
            h.Then(x => resnets[i].Forward(x, temb));
            h.Then(x => attentions[i].Forward(x, context).Sample);
        }
        if (upsamplers is not null)
            foreach (var upsampler in upsamplers)
                h.Then(x => upsampler.Forward(x, upsampleSize));
        return h.Value;
    }
}
