using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>AttnUpBlock2D</c> (models/unet_2d_blocks.py, v0.25.1): <c>num_layers</c> × (concatenate
/// skip → resnet → self-attention), then an upsampler: nearest ×2 + conv (<c>upsample_type</c> "conv"),
/// an upsampling resnet ("resnet"), or none (null).
/// </summary>
public sealed class AttnUpBlock2D : UNetUpBlock
{
    private readonly ModuleList<Attention> attentions;
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly ModuleList<nn.Module>? upsamplers;
    private readonly Func<Tensor, Tensor?, Tensor>? _upsample;

    /// <inheritdoc/>
    public override int NumResnets => resnets.Count;
    /// <summary>
    /// diffusers' <c>upsample_type</c>: "conv" (nearest ×2 + convolution), "resnet" (an upsampling resnet) or null
    /// (no upsampler).
    /// </summary>
    public string? UpsampleType { get; }

    /// <summary>
    /// Builds the block from diffusers' constructor arguments (same names and defaults, in .NET casing).
    /// </summary>
    public AttnUpBlock2D(int inChannels, int prevOutputChannel, int outChannels, int? tembChannels,
        int? resolutionIdx = null, double dropout = 0.0, int numLayers = 1, double resnetEps = 1e-6,
        string resnetTimeScaleShift = "default", string resnetActFn = "swish", int resnetGroups = 32,
        bool resnetPreNorm = true, int? attentionHeadDim = 1, double outputScaleFactor = 1.0,
        string? upsampleType = "conv")
        : base(nameof(AttnUpBlock2D))
    {
        ResolutionIdx = resolutionIdx;
        UpsampleType = upsampleType;
        var options = new ResnetOptions(tembChannels, resnetEps, resnetGroups, dropout, resnetTimeScaleShift, resnetActFn,
            outputScaleFactor, resnetPreNorm);
        resnets = new ModuleList<ResnetBlock2D>();
        attentions = new ModuleList<Attention>();
        for (int i = 0; i < numLayers; i++)
        {
            resnets.Add(options.Up(i, numLayers, inChannels, prevOutputChannel, outChannels));
            attentions.Add(AttentionLayers.SelfAttention(outChannels, attentionHeadDim, outputScaleFactor, resnetEps, resnetGroups));
        }
        switch (upsampleType)
        {
            case "conv":
                var conv = new Upsample2D(outChannels, useConv: true, outChannels: outChannels);
                upsamplers = new ModuleList<nn.Module>(conv);
                _upsample = (x, _) => conv.Forward(x); // diffusers passes no output size here: it always doubles
                break;
            case "resnet":
                var resnet = options.Make(outChannels, outChannels, up: true);
                upsamplers = new ModuleList<nn.Module>(resnet);
                _upsample = (x, temb) => resnet.Forward(x, temb);
                break;
            case null:
                break;
            default:
                throw new ArgumentException($"AttnUpBlock2D: unknown upsample_type '{upsampleType}' (expected conv or resnet)");
        }
        RegisterComponents();
    }

    /// <inheritdoc/>
    protected override Tensor ForwardCore(Tensor hiddenStates, Stack<Tensor> resHiddenStates, Tensor? temb,
        BlockContext context, long[]? upsampleSize)
    {
        var h = new Chain(hiddenStates);
        for (int i = 0; i < resnets.Count; i++)
        {
            h.Then(x => torch.cat([x, resHiddenStates.Pop()], dim: 1));
            h.Then(x => resnets[i].Forward(x, temb));
            h.Then(x => attentions[i].Forward(x));
        }
        if (_upsample is not null)
            h.Then(x => _upsample(x, temb));
        return h.Value;
    }
}
