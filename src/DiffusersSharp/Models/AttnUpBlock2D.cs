using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>AttnUpBlock2D</c> (models/unet_2d_blocks.py, v0.25.1): <c>num_layers</c> × (concatenate
/// skip → resnet → self-attention), then an upsampler: nearest ×2 + conv (<c>upsample_type</c> "conv"),
/// an upsampling resnet ("resnet"), or none (null).
/// </summary>
public sealed class AttnUpBlock2D : nn.Module, IUpBlock2D
{
    private readonly ModuleList<Attention> attentions;
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly ModuleList<nn.Module>? upsamplers;

    public int NumResnets => resnets.Count;
    public int? ResolutionIdx { get; }
    public string? UpsampleType { get; }

    public AttnUpBlock2D(int inChannels, int prevOutputChannel, int outChannels, int? tembChannels,
        int? resolutionIdx = null, double dropout = 0.0, int numLayers = 1, double resnetEps = 1e-6,
        string resnetTimeScaleShift = "default", string resnetActFn = "swish", int resnetGroups = 32,
        bool resnetPreNorm = true, int? attentionHeadDim = 1, double outputScaleFactor = 1.0,
        string? upsampleType = "conv")
        : base(nameof(AttnUpBlock2D))
    {
        ResolutionIdx = resolutionIdx;
        UpsampleType = upsampleType;
        int headDim = attentionHeadDim ?? outChannels;
        resnets = new ModuleList<ResnetBlock2D>();
        attentions = new ModuleList<Attention>();
        for (int i = 0; i < numLayers; i++)
        {
            int resSkipChannels = i == numLayers - 1 ? inChannels : outChannels;
            int resnetInChannels = i == 0 ? prevOutputChannel : outChannels;
            resnets.Add(new ResnetBlock2D(resnetInChannels + resSkipChannels, outChannels, tembChannels: tembChannels,
                eps: resnetEps, groups: resnetGroups, dropout: dropout, timeEmbeddingNorm: resnetTimeScaleShift,
                nonLinearity: resnetActFn, outputScaleFactor: outputScaleFactor, preNorm: resnetPreNorm));
            attentions.Add(new Attention(outChannels, heads: outChannels / headDim, dimHead: headDim,
                rescaleOutputFactor: outputScaleFactor, eps: resnetEps, normNumGroups: resnetGroups,
                residualConnection: true, bias: true, upcastSoftmax: true));
        }
        upsamplers = upsampleType switch
        {
            "conv" => new ModuleList<nn.Module>(new Upsample2D(outChannels, useConv: true, outChannels: outChannels)),
            "resnet" => new ModuleList<nn.Module>(new ResnetBlock2D(outChannels, outChannels, tembChannels: tembChannels,
                eps: resnetEps, groups: resnetGroups, dropout: dropout, timeEmbeddingNorm: resnetTimeScaleShift,
                nonLinearity: resnetActFn, outputScaleFactor: outputScaleFactor, preNorm: resnetPreNorm, up: true)),
            null => null,
            _ => throw new ArgumentException($"AttnUpBlock2D: unknown upsample_type '{upsampleType}' (expected conv or resnet)"),
        };
        RegisterComponents();
    }

    public Tensor Forward(Tensor hiddenStates, IReadOnlyList<Tensor> resHiddenStates, Tensor? temb, long[]? upsampleSize = null)
    {
        int next = resHiddenStates.Count - 1;
        var input = hiddenStates;
        for (int i = 0; i < resnets.Count; i++)
        {
            using var cat = torch.cat(new[] { hiddenStates, resHiddenStates[next--] }, dim: 1);
            hiddenStates = Blocks.Replace(hiddenStates, resnets[i].Forward(cat, temb), input);
            hiddenStates = Blocks.Replace(hiddenStates, attentions[i].Forward(hiddenStates), input);
        }
        if (upsamplers is not null)
        {
            // diffusers passes no output size here: the conv upsampler always doubles.
            foreach (var u in upsamplers)
                hiddenStates = Blocks.Replace(hiddenStates,
                    u is ResnetBlock2D r ? r.Forward(hiddenStates, temb) : ((Upsample2D)u).Forward(hiddenStates), input);
        }
        return hiddenStates;
    }
}
