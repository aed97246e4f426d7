using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>UNetMidBlock2D</c> (models/unet_2d_blocks.py, v0.25.1): resnet, then <c>num_layers</c> ×
/// (self-attention → resnet); without <c>add_attention</c> only the resnets. The attention's GroupNorm has
/// <c>attn_groups</c> groups (default: <c>resnet_groups</c> when <c>resnet_time_scale_shift</c> is "default",
/// else no norm). Also the mid block of the VAE's encoder and decoder (no time embedding).
/// </summary>
public sealed class UNetMidBlock2D : UNetMidBlock
{
    private readonly ModuleList<Attention>? attentions;
    private readonly ModuleList<ResnetBlock2D> resnets;

    /// <summary>diffusers' <c>add_attention</c>: an attention layer between the resnets.</summary>
    public bool AddAttention { get; }

    /// <summary>
    /// Builds the block from diffusers' constructor arguments (same names and defaults, in .NET casing).
    /// </summary>
    public UNetMidBlock2D(int inChannels, int? tembChannels, double dropout = 0.0, int numLayers = 1,
        double resnetEps = 1e-6, string resnetTimeScaleShift = "default", string resnetActFn = "swish",
        int? resnetGroups = 32, int? attnGroups = null, bool resnetPreNorm = true, bool addAttention = true,
        int? attentionHeadDim = 1, double outputScaleFactor = 1.0)
        : base(nameof(UNetMidBlock2D))
    {
        int groups = resnetGroups ?? Math.Min(inChannels / 4, 32);
        AddAttention = addAttention;
        if (attnGroups is null && resnetTimeScaleShift == "default") attnGroups = groups;
        int headDim = attentionHeadDim ?? inChannels;

        var options = new ResnetOptions(tembChannels, resnetEps, groups, dropout, resnetTimeScaleShift, resnetActFn,
            outputScaleFactor, resnetPreNorm);
        resnets = new ModuleList<ResnetBlock2D>(options.Make(inChannels, inChannels));
        if (addAttention) attentions = new ModuleList<Attention>();
        for (int i = 0; i < numLayers; i++)
        {
            attentions?.Add(new Attention(inChannels, heads: inChannels / headDim, dimHead: headDim,
                rescaleOutputFactor: outputScaleFactor, eps: resnetEps, normNumGroups: attnGroups,
                spatialNormDim: resnetTimeScaleShift == "spatial" ? tembChannels : null,
                residualConnection: true, bias: true, upcastSoftmax: true));
            resnets.Add(options.Make(inChannels, inChannels));
        }
        RegisterComponents();
    }

    /// <inheritdoc/>
    protected override Tensor ForwardCore(Tensor hiddenStates, Tensor? temb, BlockContext context)
    {
        var h = new Chain(hiddenStates);
        h.Then(x => resnets[0].Forward(x, temb));
        for (int i = 1; i < resnets.Count; i++)
        {
            if (attentions is not null)
                h.Then(x => attentions[i - 1].Forward(x, temb: temb));
            h.Then(x => resnets[i].Forward(x, temb));
        }
        return h.Value;
    }
}
