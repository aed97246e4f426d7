using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>KCrossAttnUpBlock2D</c> (models/unet_2d_blocks.py, v0.25.1): the last of its skip states joined to the
/// hidden states (unless diffusers' <c>None</c>, <see cref="KBlockStates"/>), <c>num_layers - 1</c> × (ada_group resnet →
/// <see cref="KAttentionBlock"/>), then an optional <see cref="KUpsample2D"/>. Diffusers' "first block" (in, out and
/// time-embedding channels equal) takes no skip state and adds a self-attention; a "middle block" (in ≠ out) ends in
/// in_channels.
/// </summary>
public sealed class KCrossAttnUpBlock2D : UNetUpBlock
{
    private readonly ModuleList<ResnetBlockCondNorm2D> resnets;
    private readonly ModuleList<KAttentionBlock> attentions;
    private readonly ModuleList<KUpsample2D>? upsamplers;

    /// <inheritdoc/>
    public override int NumResnets => resnets.Count;
    /// <inheritdoc/>
    public override bool HasCrossAttention => true;
    /// <summary>diffusers' <c>attention_head_dim</c>: channels per attention head.</summary>
    public int AttentionHeadDim { get; }

    /// <summary>Builds the block from diffusers' constructor arguments (same names and defaults, in .NET casing).</summary>
    public KCrossAttnUpBlock2D(int inChannels, int outChannels, int tembChannels, int? resolutionIdx, double dropout = 0.0,
        int numLayers = 4, double resnetEps = 1e-5, string resnetActFn = "gelu", int resnetGroupSize = 32,
        int attentionHeadDim = 1, int crossAttentionDim = 768, bool addUpsample = true, bool upcastAttention = false)
        : base(nameof(KCrossAttnUpBlock2D))
    {
        ResolutionIdx = resolutionIdx;
        AttentionHeadDim = attentionHeadDim;
        bool isFirstBlock = inChannels == outChannels && outChannels == tembChannels;
        bool isMiddleBlock = inChannels != outChannels;
        int kIn = isFirstBlock ? outChannels : 2 * outChannels, kOut = inChannels, layers = numLayers - 1;
        resnets = new ModuleList<ResnetBlockCondNorm2D>();
        attentions = new ModuleList<KAttentionBlock>();
        for (int i = 0; i < layers; i++)
        {
            int inCh = i == 0 ? kIn : outChannels;
            bool last = i == layers - 1;
            resnets.Add(new ResnetBlockCondNorm2D(inCh, outChannels, dropout, tembChannels, groups: inCh / resnetGroupSize,
                groupsOut: outChannels / resnetGroupSize, eps: resnetEps, nonLinearity: resnetActFn, convShortcutBias: false,
                conv2dOutChannels: isMiddleBlock && last ? kOut : null));
            int dim = last ? kOut : outChannels;
            attentions.Add(new KAttentionBlock(dim, dim / attentionHeadDim, attentionHeadDim, crossAttentionDim: crossAttentionDim,
                tembChannels: tembChannels, attentionBias: true, addSelfAttention: isFirstBlock, crossAttentionNorm: "layer_norm",
                upcastAttention: upcastAttention));
        }
        upsamplers = addUpsample ? new ModuleList<KUpsample2D>(new KUpsample2D()) : null;
        RegisterComponents();
    }

    /// <inheritdoc/>
    protected override Tensor ForwardCore(Tensor hiddenStates, Stack<Tensor> resHiddenStates, Tensor? temb,
        BlockContext context, long[]? upsampleSize)
    {
        var emb = temb ?? throw new ArgumentException("KCrossAttnUpBlock2D: needs the time embedding (temb)");
        var h = new Chain(hiddenStates);
        h.Then(x => KBlockStates.JoinLast(x, resHiddenStates));
        for (int i = 0; i < resnets.Count; i++)
        {
            var (resnet, attention) = (resnets[i], attentions[i]);
            h.Then(x => resnet.Forward(x, emb));
            h.Then(x => attention.Forward(x, context.EncoderHiddenStates, emb, context.AttentionMask, context.EncoderAttentionMask));
        }
        if (upsamplers is not null)
            foreach (var upsampler in upsamplers)
                h.Then(upsampler.forward);
        return h.Value;
    }
}
