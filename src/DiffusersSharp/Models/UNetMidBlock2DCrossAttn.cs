using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>UNetMidBlock2DCrossAttn</c> (models/unet_2d_blocks.py, v0.25.1): resnet, then
/// <c>num_layers</c> × (<see cref="Transformer2DModel"/> → resnet). Dual cross-attention is not ported.
/// </summary>
public sealed class UNetMidBlock2DCrossAttn : nn.Module
{
    private readonly ModuleList<Transformer2DModel> attentions;
    private readonly ModuleList<ResnetBlock2D> resnets;

    public int NumAttentionHeads { get; }

    public UNetMidBlock2DCrossAttn(int inChannels, int? tembChannels, double dropout = 0.0, int numLayers = 1,
        int[]? transformerLayersPerBlock = null, double resnetEps = 1e-6, string resnetTimeScaleShift = "default",
        string resnetActFn = "swish", int? resnetGroups = 32, bool resnetPreNorm = true, int numAttentionHeads = 1,
        double outputScaleFactor = 1.0, int crossAttentionDim = 1280, bool dualCrossAttention = false,
        bool useLinearProjection = false, bool upcastAttention = false, string attentionType = "default")
        : base(nameof(UNetMidBlock2DCrossAttn))
    {
        if (dualCrossAttention)
            throw new ArgumentException("UNetMidBlock2DCrossAttn: dual_cross_attention is not supported by DiffusersSharp");
        NumAttentionHeads = numAttentionHeads;
        int groups = resnetGroups ?? Math.Min(inChannels / 4, 32);
        var layers = CrossAttnDownBlock2D.ExpandLayers(transformerLayersPerBlock, numLayers, nameof(UNetMidBlock2DCrossAttn));
        resnets = new ModuleList<ResnetBlock2D>();
        attentions = new ModuleList<Transformer2DModel>();
        resnets.Add(MakeResnet());
        for (int i = 0; i < numLayers; i++)
        {
            attentions.Add(new Transformer2DModel(numAttentionHeads, inChannels / numAttentionHeads,
                inChannels: inChannels, numLayers: layers[i], crossAttentionDim: crossAttentionDim,
                normNumGroups: groups, useLinearProjection: useLinearProjection, upcastAttention: upcastAttention,
                attentionType: attentionType));
            resnets.Add(MakeResnet());
        }
        RegisterComponents();

        ResnetBlock2D MakeResnet() => new(inChannels, inChannels, tembChannels: tembChannels, eps: resnetEps,
            groups: groups, dropout: dropout, timeEmbeddingNorm: resnetTimeScaleShift, nonLinearity: resnetActFn,
            outputScaleFactor: outputScaleFactor, preNorm: resnetPreNorm);
    }

    public Tensor Forward(Tensor hiddenStates, Tensor? temb, Tensor? encoderHiddenStates,
        Tensor? attentionMask = null, Tensor? encoderAttentionMask = null)
    {
        var input = hiddenStates;
        var h = ScopedCall.Run(() => resnets[0].Forward(input, temb));
        for (int i = 0; i < attentions.Count; i++)
        {
            var a = ScopedCall.Run(() => attentions[i].Forward(h, encoderHiddenStates, attentionMask, encoderAttentionMask).Sample);
            ScopedCall.DisposeUnless(h, a, input);
            h = ScopedCall.Run(() => resnets[i + 1].Forward(a, temb));
            ScopedCall.DisposeUnless(a, h, input);
        }
        return h;
    }
}
