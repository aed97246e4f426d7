using DiffusersSharp.Models.Lora;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>Transformer2DModel</c> (models/transformer_2d.py, v0.25.1) for continuous input (the
/// variant inside Stable Diffusion UNets): GroupNorm (eps 1e-6) → <c>proj_in</c> (1×1 conv, or a linear over
/// channels with <c>use_linear_projection</c>) → <c>num_layers</c> <see cref="BasicTransformerBlock"/>s over
/// the H·W tokens → <c>proj_out</c> → + input. Weight names: <c>norm</c>, <c>proj_in</c>,
/// <c>transformer_blocks.N.*</c>, <c>proj_out</c>. The discrete (vector-embedding) and patch inputs are not
/// ported.
/// </summary>
public sealed class Transformer2DModel : nn.Module
{
    private readonly GroupNorm norm;
    private readonly nn.Module<Tensor, Tensor> proj_in;
    private readonly ModuleList<BasicTransformerBlock> transformer_blocks;
    private readonly nn.Module<Tensor, Tensor> proj_out;

    /// <summary>diffusers' <c>num_attention_heads</c>.</summary>
    public int NumAttentionHeads { get; }
    /// <summary>diffusers' <c>attention_head_dim</c>: channels per head.</summary>
    public int AttentionHeadDim { get; }
    /// <summary>diffusers' <c>in_channels</c>: channels of the feature map.</summary>
    public int InChannels { get; }
    /// <summary>heads × head dim: the width of the token states inside the transformer.</summary>
    public int InnerDim { get; }
    /// <summary>diffusers' <c>use_linear_projection</c>: linear proj_in/proj_out (false: 1×1 convolutions).</summary>
    public bool UseLinearProjection { get; }

    /// <summary>
    /// Test hook: (sub-path, output) for <c>proj_in</c>, each <c>transformer_blocks.N</c>, and ("", the output sample)
    /// after the residual add.
    /// </summary>
    internal Action<string, Tensor>? DebugHook { get; set; }

    /// <summary>
    /// Builds the block from diffusers' constructor arguments (same names and defaults, in .NET casing).
    /// </summary>
    public Transformer2DModel(int numAttentionHeads = 16, int attentionHeadDim = 88, int? inChannels = null,
        int? outChannels = null, int numLayers = 1, double dropout = 0.0, int normNumGroups = 32,
        int? crossAttentionDim = null, bool attentionBias = false, int? sampleSize = null, int? numVectorEmbeds = null,
        int? patchSize = null, string activationFn = "geglu", int? numEmbedsAdaNorm = null,
        bool useLinearProjection = false, bool onlyCrossAttention = false, bool doubleSelfAttention = false,
        bool upcastAttention = false, string normType = "layer_norm", bool normElementwiseAffine = true,
        double normEps = 1e-5, string attentionType = "default")
        : base(nameof(Transformer2DModel))
    {
        _ = sampleSize;
        _ = outChannels; // diffusers' continuous path projects back to in_channels
        if (inChannels is not int ic || numVectorEmbeds is not null || patchSize is not null)
            throw new ArgumentException("Transformer2DModel: only continuous input (in_channels set, no num_vector_embeds, no patch_size) is supported by DiffusersSharp");
        NumAttentionHeads = numAttentionHeads;
        AttentionHeadDim = attentionHeadDim;
        InChannels = ic;
        InnerDim = numAttentionHeads * attentionHeadDim;
        UseLinearProjection = useLinearProjection;

        norm = Layers.GroupNorm(normNumGroups, ic, 1e-6);
        proj_in = useLinearProjection
            ? new LoRACompatibleLinear(ic, InnerDim)
            : new LoRACompatibleConv(ic, InnerDim, kernelSize: 1);
        transformer_blocks = new ModuleList<BasicTransformerBlock>();
        for (int i = 0; i < numLayers; i++)
            transformer_blocks.Add(new BasicTransformerBlock(InnerDim, numAttentionHeads, attentionHeadDim, dropout: dropout,
                crossAttentionDim: crossAttentionDim, activationFn: activationFn, numEmbedsAdaNorm: numEmbedsAdaNorm,
                attentionBias: attentionBias, onlyCrossAttention: onlyCrossAttention,
                doubleSelfAttention: doubleSelfAttention, upcastAttention: upcastAttention, normType: normType,
                normElementwiseAffine: normElementwiseAffine, normEps: normEps, attentionType: attentionType));
        proj_out = useLinearProjection
            ? new LoRACompatibleLinear(InnerDim, ic)
            : new LoRACompatibleConv(InnerDim, ic, kernelSize: 1);
        RegisterComponents();
    }

    internal IEnumerable<BasicTransformerBlock> Blocks => transformer_blocks;

    /// <summary>The forward pass inside a UNet block: cross-attention context and masks from <paramref name="context"/>.</summary>
    public Transformer2DModelOutput Forward(Tensor hiddenStates, BlockContext context) =>
        Forward(hiddenStates, context.EncoderHiddenStates, context.AttentionMask, context.EncoderAttentionMask);

    /// <summary>
    /// <paramref name="hiddenStates"/> (B, C, H, W) → (B, C, H, W). Masks with 2 dimensions (B, L) of 1 = keep /
    /// 0 = discard are turned into additive biases as diffusers does.
    /// </summary>
    public Transformer2DModelOutput Forward(Tensor hiddenStates, Tensor? encoderHiddenStates = null,
        Tensor? attentionMask = null, Tensor? encoderAttentionMask = null)
    {
        if (hiddenStates.dim() != 4 || hiddenStates.shape[1] != InChannels)
            throw new ArgumentException($"Transformer2DModel expects (batch, {InChannels}, height, width), got {Layers.Shape(hiddenStates)}");
        if (attentionMask is not null && attentionMask.dim() == 2)
            attentionMask = ((1 - attentionMask.to_type(hiddenStates.dtype)) * -10000.0).unsqueeze(1);
        if (encoderAttentionMask is not null && encoderAttentionMask.dim() == 2)
            encoderAttentionMask = ((1 - encoderAttentionMask.to_type(hiddenStates.dtype)) * -10000.0).unsqueeze(1);

        long batch = hiddenStates.shape[0], height = hiddenStates.shape[2], width = hiddenStates.shape[3];
        var residual = hiddenStates;
        var hook = DebugHook;
        var h = new Chain(hiddenStates);
        h.Then(norm.forward);
        long innerDim = InnerDim;
        if (!UseLinearProjection)
        {
            h.Then(x => Layers.Pointwise(proj_in, x));
            hook?.Invoke("proj_in", h.Value);
            h.Then(x => x.permute(0, 2, 3, 1).reshape(batch, height * width, innerDim));
        }
        else
        {
            h.Then(x => x.permute(0, 2, 3, 1).reshape(batch, height * width, InChannels));
            h.Then(proj_in.forward);
            hook?.Invoke("proj_in", h.Value);
        }

        for (int i = 0; i < transformer_blocks.Count; i++)
        {
            var block = transformer_blocks[i];
            h.Then(x => block.Forward(x, attentionMask, encoderHiddenStates, encoderAttentionMask));
            hook?.Invoke($"transformer_blocks.{i}", h.Value);
        }

        // a channels-last input stays channels-last (the permuted view has NHWC strides); NCHW stays NCHW
        if (!UseLinearProjection)
        {
            h.Then(x => KeepLayout(x.reshape(batch, height, width, innerDim).permute(0, 3, 1, 2), residual));
            h.Then(x => Layers.Pointwise(proj_out, x));
        }
        else
        {
            h.Then(proj_out.forward);
            h.Then(x => KeepLayout(x.reshape(batch, height, width, InChannels).permute(0, 3, 1, 2), residual));
        }
        h.Then(x => Activations.InPlaceOk ? x.add_(residual) : x + residual);
        hook?.Invoke("", h.Value);
        return new Transformer2DModelOutput(h.Value);
    }

    private static Tensor KeepLayout(Tensor nhwcView, Tensor like) =>
        Layers.IsChannelsLast(like) ? nhwcView : nhwcView.contiguous();
}
