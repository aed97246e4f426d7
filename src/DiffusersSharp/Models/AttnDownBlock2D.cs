using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>AttnDownBlock2D</c> (models/unet_2d_blocks.py, v0.25.1): <c>num_layers</c> × (resnet →
/// self-attention with GroupNorm and residual), then a downsampler: a stride-2 conv
/// (<c>downsample_type</c> "conv"), a downsampling resnet ("resnet"), or none (null).
/// </summary>
public sealed class AttnDownBlock2D : nn.Module, IDownBlock2D
{
    private readonly ModuleList<Attention> attentions;
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly ModuleList<nn.Module>? downsamplers;

    public string? DownsampleType { get; }

    public AttnDownBlock2D(int inChannels, int outChannels, int? tembChannels, double dropout = 0.0, int numLayers = 1,
        double resnetEps = 1e-6, string resnetTimeScaleShift = "default", string resnetActFn = "swish",
        int resnetGroups = 32, bool resnetPreNorm = true, int? attentionHeadDim = 1, double outputScaleFactor = 1.0,
        int downsamplePadding = 1, string? downsampleType = "conv")
        : base(nameof(AttnDownBlock2D))
    {
        DownsampleType = downsampleType;
        int headDim = attentionHeadDim ?? outChannels;
        resnets = new ModuleList<ResnetBlock2D>();
        attentions = new ModuleList<Attention>();
        for (int i = 0; i < numLayers; i++)
        {
            resnets.Add(new ResnetBlock2D(i == 0 ? inChannels : outChannels, outChannels, tembChannels: tembChannels,
                eps: resnetEps, groups: resnetGroups, dropout: dropout, timeEmbeddingNorm: resnetTimeScaleShift,
                nonLinearity: resnetActFn, outputScaleFactor: outputScaleFactor, preNorm: resnetPreNorm));
            attentions.Add(new Attention(outChannels, heads: outChannels / headDim, dimHead: headDim,
                rescaleOutputFactor: outputScaleFactor, eps: resnetEps, normNumGroups: resnetGroups,
                residualConnection: true, bias: true, upcastSoftmax: true));
        }
        downsamplers = downsampleType switch
        {
            "conv" => new ModuleList<nn.Module>(new Downsample2D(outChannels, useConv: true, outChannels: outChannels,
                padding: downsamplePadding, name: "op")),
            "resnet" => new ModuleList<nn.Module>(new ResnetBlock2D(outChannels, outChannels, tembChannels: tembChannels,
                eps: resnetEps, groups: resnetGroups, dropout: dropout, timeEmbeddingNorm: resnetTimeScaleShift,
                nonLinearity: resnetActFn, outputScaleFactor: outputScaleFactor, preNorm: resnetPreNorm, down: true)),
            null => null,
            _ => throw new ArgumentException($"AttnDownBlock2D: unknown downsample_type '{downsampleType}' (expected conv or resnet)"),
        };
        RegisterComponents();
    }

    public (Tensor HiddenStates, Tensor[] OutputStates) Forward(Tensor hiddenStates, Tensor? temb)
    {
        var output = new List<Tensor>(resnets.Count + 1);
        for (int i = 0; i < resnets.Count; i++)
        {
            var r = resnets[i].Forward(hiddenStates, temb);
            hiddenStates = attentions[i].Forward(r);
            r.Dispose(); // only the attention output is handed on
            output.Add(hiddenStates);
        }
        if (downsamplers is not null)
        {
            foreach (var d in downsamplers)
                hiddenStates = d is ResnetBlock2D r ? r.Forward(hiddenStates, temb) : ((Downsample2D)d).Forward(hiddenStates);
            output.Add(hiddenStates);
        }
        return (hiddenStates, output.ToArray());
    }
}
