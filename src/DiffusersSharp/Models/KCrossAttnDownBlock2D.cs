using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>KCrossAttnDownBlock2D</c> (models/unet_2d_blocks.py, v0.25.1): <c>num_layers</c> × (ada_group resnet →
/// <see cref="KAttentionBlock"/> with a layer-normed cross-attention, and a self-attention when the block does not
/// downsample), then an optional <see cref="KDownsample2D"/>. Its skip states are each layer's output when it downsamples,
/// otherwise diffusers' <c>None</c> (<see cref="KBlockStates"/>).
/// </summary>
public sealed class KCrossAttnDownBlock2D : UNetDownBlock
{
    private readonly ModuleList<ResnetBlockCondNorm2D> resnets;
    private readonly ModuleList<KAttentionBlock> attentions;
    private readonly ModuleList<KDownsample2D>? downsamplers;

    /// <inheritdoc/>
    public override bool HasCrossAttention => true;

    /// <summary>Builds the block from diffusers' constructor arguments (same names and defaults, in .NET casing).</summary>
    public KCrossAttnDownBlock2D(int inChannels, int outChannels, int tembChannels, int crossAttentionDim,
        double dropout = 0.0, int numLayers = 4, int resnetGroupSize = 32, bool addDownsample = true,
        int attentionHeadDim = 64, bool addSelfAttention = false, double resnetEps = 1e-5, string resnetActFn = "gelu")
        : base(nameof(KCrossAttnDownBlock2D))
    {
        resnets = new ModuleList<ResnetBlockCondNorm2D>();
        attentions = new ModuleList<KAttentionBlock>();
        for (int i = 0; i < numLayers; i++)
        {
            int inCh = i == 0 ? inChannels : outChannels;
            resnets.Add(new ResnetBlockCondNorm2D(inCh, outChannels, dropout, tembChannels, groups: inCh / resnetGroupSize,
                groupsOut: outChannels / resnetGroupSize, eps: resnetEps, nonLinearity: resnetActFn, convShortcutBias: false));
            attentions.Add(new KAttentionBlock(outChannels, outChannels / attentionHeadDim, attentionHeadDim,
                crossAttentionDim: crossAttentionDim, tembChannels: tembChannels, attentionBias: true,
                addSelfAttention: addSelfAttention, crossAttentionNorm: "layer_norm", groupSize: resnetGroupSize));
        }
        downsamplers = addDownsample ? new ModuleList<KDownsample2D>(new KDownsample2D()) : null;
        RegisterComponents();
    }

    /// <inheritdoc/>
    protected override Tensor ForwardCore(Tensor hiddenStates, Tensor? temb, BlockContext context, List<Tensor> outputStates)
    {
        var emb = temb ?? throw new ArgumentException("KCrossAttnDownBlock2D: needs the time embedding (temb)");
        if (context.AdditionalResidual is not null)
            throw new ArgumentException("KCrossAttnDownBlock2D takes no T2I-Adapter residual (diffusers' block has no additional_residuals argument)",
                "down_intrablock_additional_residuals");
        var h = new Chain(hiddenStates);
        for (int i = 0; i < resnets.Count; i++)
        {
            var (resnet, attention) = (resnets[i], attentions[i]);
            h.Then(x => resnet.Forward(x, emb));
            h.Then(x => attention.Forward(x, context.EncoderHiddenStates, emb, context.AttentionMask, context.EncoderAttentionMask));
            outputStates.Add(downsamplers is null ? KBlockStates.None() : h.Keep());
        }
        if (downsamplers is not null)
            foreach (var downsampler in downsamplers)
                h.Then(downsampler.forward);
        return h.Value;
    }
}
