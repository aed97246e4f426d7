using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>CrossAttnUpBlock2D</c> (models/unet_2d_blocks.py, v0.25.1): <c>num_layers</c> × (concatenate
/// the next skip state → resnet → <see cref="Transformer2DModel"/>), then an optional nearest ×2 + conv
/// upsampler (<c>upsamplers.0.conv</c>). FreeU and dual cross-attention are not ported.
/// </summary>
public sealed class CrossAttnUpBlock2D : nn.Module
{
    private readonly ModuleList<Transformer2DModel> attentions;
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly ModuleList<Upsample2D>? upsamplers;

    public int NumResnets => resnets.Count;
    public int NumAttentionHeads { get; }
    public int? ResolutionIdx { get; }

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
        var layers = CrossAttnDownBlock2D.ExpandLayers(transformerLayersPerBlock, numLayers, nameof(CrossAttnUpBlock2D));
        resnets = new ModuleList<ResnetBlock2D>();
        attentions = new ModuleList<Transformer2DModel>();
        for (int i = 0; i < numLayers; i++)
        {
            int resSkipChannels = i == numLayers - 1 ? inChannels : outChannels;
            int resnetInChannels = i == 0 ? prevOutputChannel : outChannels;
            resnets.Add(new ResnetBlock2D(resnetInChannels + resSkipChannels, outChannels, tembChannels: tembChannels,
                eps: resnetEps, groups: resnetGroups, dropout: dropout, timeEmbeddingNorm: resnetTimeScaleShift,
                nonLinearity: resnetActFn, outputScaleFactor: outputScaleFactor, preNorm: resnetPreNorm));
            attentions.Add(new Transformer2DModel(numAttentionHeads, outChannels / numAttentionHeads,
                inChannels: outChannels, numLayers: layers[i], crossAttentionDim: crossAttentionDim,
                normNumGroups: resnetGroups, useLinearProjection: useLinearProjection,
                onlyCrossAttention: onlyCrossAttention, upcastAttention: upcastAttention, attentionType: attentionType));
        }
        if (addUpsample)
            upsamplers = new ModuleList<Upsample2D>(new Upsample2D(outChannels, useConv: true, outChannels: outChannels));
        RegisterComponents();
    }

    /// <param name="resHiddenStates">The skip states for this block, consumed last first.</param>
    public Tensor Forward(Tensor hiddenStates, IReadOnlyList<Tensor> resHiddenStates, Tensor? temb,
        Tensor? encoderHiddenStates, long[]? upsampleSize = null, Tensor? attentionMask = null,
        Tensor? encoderAttentionMask = null)
    {
        int next = resHiddenStates.Count - 1;
        for (int i = 0; i < resnets.Count; i++)
        {
            var cat = torch.cat(new[] { hiddenStates, resHiddenStates[next--] }, dim: 1);
            if (i > 0) hiddenStates.Dispose(); // this block's own intermediate (the first input is the caller's)
            var r = ScopedCall.Run(() => resnets[i].Forward(cat, temb));
            cat.Dispose();
            hiddenStates = ScopedCall.Run(() => attentions[i].Forward(r, encoderHiddenStates, attentionMask, encoderAttentionMask).Sample);
            ScopedCall.DisposeUnless(r, hiddenStates);
        }
        if (upsamplers is not null)
            foreach (var u in upsamplers)
            {
                var input = hiddenStates;
                hiddenStates = ScopedCall.Run(() => u.Forward(input, upsampleSize));
                ScopedCall.DisposeUnless(input, hiddenStates);
            }
        return hiddenStates;
    }
}
