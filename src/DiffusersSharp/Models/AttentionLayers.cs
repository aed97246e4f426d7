using TorchSharp.Modules;

namespace DiffusersSharp.Models;

/// <summary>The attention layers the UNet blocks put after their resnets, built the way diffusers' blocks build them.</summary>
internal static class AttentionLayers
{
    /// <summary>
    /// The spatial self-attention of AttnDownBlock2D / AttnUpBlock2D: GroupNorm, heads of <c>attention_head_dim</c>
    /// channels (<c>out_channels</c> when null), residual connection, upcast softmax.
    /// </summary>
    public static Attention SelfAttention(int channels, int? attentionHeadDim, double rescaleOutputFactor, double eps, int groups)
    {
        int headDim = attentionHeadDim ?? channels;
        return new Attention(channels, heads: channels / headDim, dimHead: headDim, rescaleOutputFactor: rescaleOutputFactor,
            eps: eps, normNumGroups: groups, residualConnection: true, bias: true, upcastSoftmax: true);
    }

    /// <summary>
    /// A <see cref="Transformer2DModel"/> of the cross-attention blocks: <paramref name="numAttentionHeads"/> heads of
    /// <c>channels / heads</c>, <paramref name="depth"/> transformer blocks.
    /// </summary>
    public static Transformer2DModel Transformer(int depth, int channels, int numAttentionHeads, int crossAttentionDim,
        int groups, bool useLinearProjection, bool onlyCrossAttention, bool upcastAttention, string attentionType) =>
        new(numAttentionHeads, channels / numAttentionHeads, inChannels: channels, numLayers: depth,
            crossAttentionDim: crossAttentionDim, normNumGroups: groups, useLinearProjection: useLinearProjection,
            onlyCrossAttention: onlyCrossAttention, upcastAttention: upcastAttention, attentionType: attentionType);

    /// <summary>
    /// diffusers' <c>transformer_layers_per_block</c> of one block: the depth of each of its <paramref name="numLayers"/>
    /// transformers (an int, or a one-element list, means the same depth for every layer).
    /// </summary>
    public static int[] Depths(int[]? perLayer, int numLayers, string block)
    {
        if (perLayer is null || perLayer.Length == 0) return Enumerable.Repeat(1, numLayers).ToArray();
        if (perLayer.Length == 1) return Enumerable.Repeat(perLayer[0], numLayers).ToArray();
        if (perLayer.Length < numLayers)
            throw new ArgumentException($"{block}: transformer_layers_per_block has {perLayer.Length} entries for {numLayers} layers");
        return perLayer;
    }
}
