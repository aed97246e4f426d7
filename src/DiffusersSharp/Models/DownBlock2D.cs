using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>DownBlock2D</c> (models/unet_2d_blocks.py, v0.25.1): <c>num_layers</c> resnets, then an
/// optional stride-2 conv <see cref="Downsample2D"/> (<c>downsamplers.0.conv</c>).
/// </summary>
public sealed class DownBlock2D : nn.Module, IDownBlock2D
{
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly ModuleList<Downsample2D>? downsamplers;

    public DownBlock2D(int inChannels, int outChannels, int? tembChannels, double dropout = 0.0, int numLayers = 1,
        double resnetEps = 1e-6, string resnetTimeScaleShift = "default", string resnetActFn = "swish",
        int resnetGroups = 32, bool resnetPreNorm = true, double outputScaleFactor = 1.0, bool addDownsample = true,
        int downsamplePadding = 1)
        : base(nameof(DownBlock2D))
    {
        resnets = new ModuleList<ResnetBlock2D>();
        for (int i = 0; i < numLayers; i++)
            resnets.Add(new ResnetBlock2D(i == 0 ? inChannels : outChannels, outChannels, tembChannels: tembChannels,
                eps: resnetEps, groups: resnetGroups, dropout: dropout, timeEmbeddingNorm: resnetTimeScaleShift,
                nonLinearity: resnetActFn, outputScaleFactor: outputScaleFactor, preNorm: resnetPreNorm));
        if (addDownsample)
            downsamplers = new ModuleList<Downsample2D>(
                new Downsample2D(outChannels, useConv: true, outChannels: outChannels, padding: downsamplePadding, name: "op"));
        RegisterComponents();
    }

    public (Tensor HiddenStates, Tensor[] OutputStates) Forward(Tensor hiddenStates, Tensor? temb)
    {
        var output = new List<Tensor>(resnets.Count + 1);
        foreach (var resnet in resnets)
        {
            hiddenStates = resnet.Forward(hiddenStates, temb);
            output.Add(hiddenStates);
        }
        if (downsamplers is not null)
        {
            foreach (var d in downsamplers) hiddenStates = d.Forward(hiddenStates);
            output.Add(hiddenStates);
        }
        return (hiddenStates, output.ToArray());
    }
}
