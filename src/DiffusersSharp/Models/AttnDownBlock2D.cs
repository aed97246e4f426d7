using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>AttnDownBlock2D</c> (models/unet_2d_blocks.py, v0.25.1): <c>num_layers</c> × (resnet →
/// self-attention with GroupNorm and residual), then a downsampler: a stride-2 conv
/// (<c>downsample_type</c> "conv"), a downsampling resnet ("resnet"), or none (null).
/// </summary>
public sealed class AttnDownBlock2D : UNetDownBlock
{
    private readonly ModuleList<Attention> attentions;
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly ModuleList<nn.Module>? downsamplers;
    private readonly Func<Tensor, Tensor?, Tensor>? _downsample;

    /// <summary>
    /// diffusers' <c>downsample_type</c>: "conv" (a strided convolution), "resnet" (a downsampling resnet) or null
    /// (no downsampler).
    /// </summary>
    public string? DownsampleType { get; }

    /// <summary>
    /// Builds the block from diffusers' constructor arguments (same names and defaults, in .NET casing).
    /// </summary>
    public AttnDownBlock2D(int inChannels, int outChannels, int? tembChannels, double dropout = 0.0, int numLayers = 1,
        double resnetEps = 1e-6, string resnetTimeScaleShift = "default", string resnetActFn = "swish",
        int resnetGroups = 32, bool resnetPreNorm = true, int? attentionHeadDim = 1, double outputScaleFactor = 1.0,
        int downsamplePadding = 1, string? downsampleType = "conv")
        : base(nameof(AttnDownBlock2D))
    {
        DownsampleType = downsampleType;
        var options = new ResnetOptions(tembChannels, resnetEps, resnetGroups, dropout, resnetTimeScaleShift, resnetActFn,
            outputScaleFactor, resnetPreNorm);
        resnets = new ModuleList<ResnetBlock2D>();
        attentions = new ModuleList<Attention>();
        for (int i = 0; i < numLayers; i++)
        {
            resnets.Add(options.Down(i, inChannels, outChannels));
            attentions.Add(AttentionLayers.SelfAttention(outChannels, attentionHeadDim, outputScaleFactor, resnetEps, resnetGroups));
        }
        switch (downsampleType)
        {
            case "conv":
                var conv = new Downsample2D(outChannels, useConv: true, outChannels: outChannels, padding: downsamplePadding, name: "op");
                downsamplers = new ModuleList<nn.Module>(conv);
                _downsample = (x, _) => conv.Forward(x);
                break;
            case "resnet":
                var resnet = options.Make(outChannels, outChannels, down: true);
                downsamplers = new ModuleList<nn.Module>(resnet);
                _downsample = (x, temb) => resnet.Forward(x, temb);
                break;
            case null:
                break;
            default:
                throw new ArgumentException($"AttnDownBlock2D: unknown downsample_type '{downsampleType}' (expected conv or resnet)");
        }
        RegisterComponents();
    }

    /// <inheritdoc/>
    protected override Tensor ForwardCore(Tensor hiddenStates, Tensor? temb, BlockContext context, List<Tensor> outputStates)
    {
        var h = new Chain(hiddenStates);
        for (int i = 0; i < resnets.Count; i++)
        {
            h.Then(x => resnets[i].Forward(x, temb));
            h.Then(x => attentions[i].Forward(x));
            outputStates.Add(h.Keep());
        }
        if (_downsample is not null)
        {
            h.Then(x => _downsample(x, temb));
            outputStates.Add(h.Keep());
        }
        return h.Value;
    }
}
