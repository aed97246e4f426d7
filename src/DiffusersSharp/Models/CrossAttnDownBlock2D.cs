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
public sealed class CrossAttnDownBlock2D : nn.Module
{
    private readonly ModuleList<Transformer2DModel> attentions;
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly ModuleList<Downsample2D>? downsamplers;

    public int NumAttentionHeads { get; }

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
        var layers = ExpandLayers(transformerLayersPerBlock, numLayers, nameof(CrossAttnDownBlock2D));
        resnets = new ModuleList<ResnetBlock2D>();
        attentions = new ModuleList<Transformer2DModel>();
        for (int i = 0; i < numLayers; i++)
        {
            resnets.Add(new ResnetBlock2D(i == 0 ? inChannels : outChannels, outChannels, tembChannels: tembChannels,
                eps: resnetEps, groups: resnetGroups, dropout: dropout, timeEmbeddingNorm: resnetTimeScaleShift,
                nonLinearity: resnetActFn, outputScaleFactor: outputScaleFactor, preNorm: resnetPreNorm));
            attentions.Add(new Transformer2DModel(numAttentionHeads, outChannels / numAttentionHeads,
                inChannels: outChannels, numLayers: layers[i], crossAttentionDim: crossAttentionDim,
                normNumGroups: resnetGroups, useLinearProjection: useLinearProjection,
                onlyCrossAttention: onlyCrossAttention, upcastAttention: upcastAttention, attentionType: attentionType));
        }
        if (addDownsample)
            downsamplers = new ModuleList<Downsample2D>(
                new Downsample2D(outChannels, useConv: true, outChannels: outChannels, padding: downsamplePadding, name: "op"));
        RegisterComponents();
    }

    internal static int[] ExpandLayers(int[]? perBlock, int numLayers, string who)
    {
        if (perBlock is null || perBlock.Length == 0) return Enumerable.Repeat(1, numLayers).ToArray();
        if (perBlock.Length == 1) return Enumerable.Repeat(perBlock[0], numLayers).ToArray();
        if (perBlock.Length < numLayers)
            throw new ArgumentException($"{who}: transformer_layers_per_block has {perBlock.Length} entries for {numLayers} layers");
        return perBlock;
    }

    public (Tensor HiddenStates, Tensor[] OutputStates) Forward(Tensor hiddenStates, Tensor? temb,
        Tensor? encoderHiddenStates, Tensor? attentionMask = null, Tensor? encoderAttentionMask = null)
    {
        var output = new List<Tensor>(resnets.Count + 1);
        for (int i = 0; i < resnets.Count; i++)
        {
            var input = hiddenStates;
            var r = ScopedCall.Run(() => resnets[i].Forward(input, temb));
            hiddenStates = ScopedCall.Run(() => attentions[i].Forward(r, encoderHiddenStates, attentionMask, encoderAttentionMask).Sample);
            ScopedCall.DisposeUnless(r, hiddenStates);
            output.Add(hiddenStates);
        }
        if (downsamplers is not null)
        {
            foreach (var d in downsamplers)
            {
                var input = hiddenStates;
                hiddenStates = ScopedCall.Run(() => d.Forward(input));
            }
            output.Add(hiddenStates);
        }
        return (hiddenStates, output.ToArray());
    }
}
