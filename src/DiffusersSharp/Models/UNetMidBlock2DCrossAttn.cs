using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>UNetMidBlock2DCrossAttn</c> (models/unet_2d_blocks.py, v0.25.1): resnet, then
/// <c>num_layers</c> × (<see cref="Transformer2DModel"/> → resnet). Dual cross-attention is not ported.
/// </summary>
public sealed class UNetMidBlock2DCrossAttn : UNetMidBlock
{
    private readonly ModuleList<Transformer2DModel> attentions;
    private readonly ModuleList<ResnetBlock2D> resnets;

    /// <summary>diffusers' <c>num_attention_heads</c>: heads of each Transformer2DModel.</summary>
    public int NumAttentionHeads { get; }

    /// <inheritdoc/>
    public override bool HasCrossAttention => true;

    /// <summary>
    /// Builds the block from diffusers' constructor arguments (same names and defaults, in .NET casing).
    /// </summary>
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
        var options = new ResnetOptions(tembChannels, resnetEps, groups, dropout, resnetTimeScaleShift, resnetActFn,
            outputScaleFactor, resnetPreNorm);
        var depths = AttentionLayers.Depths(transformerLayersPerBlock, numLayers, nameof(UNetMidBlock2DCrossAttn));
        resnets = new ModuleList<ResnetBlock2D>(options.Make(inChannels, inChannels));
        attentions = new ModuleList<Transformer2DModel>();
        for (int i = 0; i < numLayers; i++)
        {
            attentions.Add(AttentionLayers.Transformer(depths[i], inChannels, numAttentionHeads, crossAttentionDim, groups,
                useLinearProjection, onlyCrossAttention: false, upcastAttention, attentionType));
            resnets.Add(options.Make(inChannels, inChannels));
        }
        RegisterComponents();
    }

    /// <inheritdoc/>
    protected override Tensor ForwardCore(Tensor hiddenStates, Tensor? temb, BlockContext context)
    {
        var h = new Chain(hiddenStates);
        h.Then(x => resnets[0].Forward(x, temb));
        for (int i = 0; i < attentions.Count; i++)
        {
            h.Then(x => attentions[i].Forward(x, context).Sample);
            h.Then(x => resnets[i + 1].Forward(x, temb));
        }
        return h.Value;
    }
}
