using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>CrossAttnDownBlock2D</c> (models/unet_2d_blocks.py, v0.25.1): <c>num_layers</c> × (resnet →
/// <see cref="Transformer2DModel"/> with <c>num_attention_heads</c> heads of <c>out_channels / heads</c>), then an
/// optional stride-2 conv downsampler (<c>downsamplers.0.conv</c>). Returns the hidden states and every
/// transformer output (plus the downsampled one) for the skip connections. Dual cross-attention is not ported.
/// </summary>
public sealed class CrossAttnDownBlock2D : UNetDownBlock
{
    private readonly ModuleList<Transformer2DModel> attentions;
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly ModuleList<Downsample2D>? downsamplers;

    /// <summary>diffusers' <c>num_attention_heads</c>: heads of each Transformer2DModel.</summary>
    public int NumAttentionHeads { get; }

    /// <inheritdoc/>
    public override bool HasCrossAttention => true;

    /// <param name="transformerLayersPerBlock">Transformer blocks per layer: one value for every layer, or one per layer.</param>
    public CrossAttnDownBlock2D(int inChannels, int outChannels, int? tembChannels, double dropout = 0.0,
        int numLayers = 1, int[]? transformerLayersPerBlock = null, double resnetEps = 1e-6,
        string resnetTimeScaleShift = "default", string resnetActFn = "swish", int resnetGroups = 32,
        bool resnetPreNorm = true, int numAttentionHeads = 1, int crossAttentionDim = 1280,
        double outputScaleFactor = 1.0, int downsamplePadding = 1, bool addDownsample = true,
        bool dualCrossAttention = false, bool useLinearProjection = false, bool onlyCrossAttention = false,
        bool upcastAttention = false, string attentionType = "default")
        : base(nameof(CrossAttnDownBlock2D))
    {
        if (dualCrossAttention)
            throw new ArgumentException("CrossAttnDownBlock2D: dual_cross_attention is not supported by DiffusersSharp");
        NumAttentionHeads = numAttentionHeads;
        var options = new ResnetOptions(tembChannels, resnetEps, resnetGroups, dropout, resnetTimeScaleShift, resnetActFn,
            outputScaleFactor, resnetPreNorm);
        var depths = AttentionLayers.Depths(transformerLayersPerBlock, numLayers, nameof(CrossAttnDownBlock2D));
        resnets = new ModuleList<ResnetBlock2D>();
        attentions = new ModuleList<Transformer2DModel>();
        for (int i = 0; i < numLayers; i++)
        {
            resnets.Add(options.Down(i, inChannels, outChannels));
            attentions.Add(AttentionLayers.Transformer(depths[i], outChannels, numAttentionHeads, crossAttentionDim,
                resnetGroups, useLinearProjection, onlyCrossAttention, upcastAttention, attentionType));
        }
        downsamplers = addDownsample ? ConvDownsampler(outChannels, downsamplePadding) : null;
        RegisterComponents();
    }

    /// <inheritdoc/>
    protected override Tensor ForwardCore(Tensor hiddenStates, Tensor? temb, BlockContext context, List<Tensor> outputStates)
    {
        var h = new Chain(hiddenStates);
        for (int i = 0; i < resnets.Count; i++)
        {
            h.Then(x => resnets[i].Forward(x, temb));
            h.Then(x => attentions[i].Forward(x, context).Sample);
            // a T2I-Adapter residual goes onto the output of the last resnet/attention pair
            if (i == resnets.Count - 1 && context.AdditionalResidual is { } residual)
                h.Then(x => x + CheckedResidual(residual, x));
            outputStates.Add(h.Keep());
        }
        if (downsamplers is not null)
        {
            foreach (var downsampler in downsamplers)
                h.Then(downsampler.Forward);
            outputStates.Add(h.Keep());
        }
        return h.Value;
    }
}
