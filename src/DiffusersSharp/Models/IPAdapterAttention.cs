using DiffusersSharp.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// What diffusers' <c>IPAdapterAttnProcessor2_0</c> adds to a cross-attention: <c>to_k_ip</c> and <c>to_v_ip</c> (no bias)
/// over the last <see cref="NumTokens"/> encoder states (the projected image), attended by the same queries, the result
/// added times <see cref="Scale"/>.
/// </summary>
internal sealed class IPAdapterAttention : nn.Module
{
    private readonly Linear to_k_ip;
    private readonly Linear to_v_ip;

    public IPAdapterAttention(int hiddenSize, int crossAttentionDim, int numTokens) : base(nameof(IPAdapterAttention))
    {
        to_k_ip = Layers.Linear(crossAttentionDim, hiddenSize, hasBias: false);
        to_v_ip = Layers.Linear(crossAttentionDim, hiddenSize, hasBias: false);
        NumTokens = numTokens;
        RegisterComponents();
    }

    /// <summary>diffusers' <c>num_tokens</c>: how many of the last encoder states are the image's.</summary>
    public int NumTokens { get; }

    /// <summary>diffusers' <c>scale</c> (<c>set_ip_adapter_scale</c>): the weight of the image attention.</summary>
    public double Scale { get; set; } = 1.0;

    /// <summary>The text states and the image states (the last <see cref="NumTokens"/>) of the encoder states.</summary>
    public (Tensor Text, Tensor Image) Split(Tensor encoderHiddenStates)
    {
        long end = encoderHiddenStates.shape[1] - NumTokens;
        return (encoderHiddenStates.narrow(1, 0, end), encoderHiddenStates.narrow(1, end, NumTokens));
    }

    /// <summary>scale · attention of <paramref name="query"/> (B, heads, L, d) over the image states, as (B, L, heads · d).</summary>
    public Tensor Attend(Tensor query, Tensor imageStates, int heads, long headDim)
    {
        long b = query.shape[0];
        var k = to_k_ip.forward(imageStates).view(b, -1, heads, headDim).transpose(1, 2);
        var v = to_v_ip.forward(imageStates).view(b, -1, heads, headDim).transpose(1, 2);
        var o = FusedAttention.ScaledDotProductAttention(query, k, v, null);
        return o.transpose(1, 2).reshape(b, -1, heads * headDim) * Scale;
    }
}
