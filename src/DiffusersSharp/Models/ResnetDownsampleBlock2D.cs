using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>ResnetDownsampleBlock2D</c> (models/unet_2d_blocks.py, v0.25.1): <c>num_layers</c> resnets,
/// then a downsampling resnet (<c>down=True</c>, average pool) as <c>downsamplers.0</c>.
/// </summary>
public sealed class ResnetDownsampleBlock2D : nn.Module, IDownBlock2D
{
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly ModuleList<ResnetBlock2D>? downsamplers;

    public ResnetDownsampleBlock2D(int inChannels, int outChannels, int? tembChannels, double dropout = 0.0,
        int numLayers = 1, double resnetEps = 1e-6, string resnetTimeScaleShift = "default",
        string resnetActFn = "swish", int resnetGroups = 32, bool resnetPreNorm = true,
        double outputScaleFactor = 1.0, bool addDownsample = true, bool skipTimeAct = false)
        : base(nameof(ResnetDownsampleBlock2D))
    {
        resnets = new ModuleList<ResnetBlock2D>();
        for (int i = 0; i < numLayers; i++)
            resnets.Add(new ResnetBlock2D(i == 0 ? inChannels : outChannels, outChannels, tembChannels: tembChannels,
                eps: resnetEps, groups: resnetGroups, dropout: dropout, timeEmbeddingNorm: resnetTimeScaleShift,
                nonLinearity: resnetActFn, outputScaleFactor: outputScaleFactor, preNorm: resnetPreNorm,
                skipTimeAct: skipTimeAct));
        if (addDownsample)
            downsamplers = new ModuleList<ResnetBlock2D>(new ResnetBlock2D(outChannels, outChannels,
                tembChannels: tembChannels, eps: resnetEps, groups: resnetGroups, dropout: dropout,
                timeEmbeddingNorm: resnetTimeScaleShift, nonLinearity: resnetActFn,
                outputScaleFactor: outputScaleFactor, preNorm: resnetPreNorm, skipTimeAct: skipTimeAct, down: true));
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
            foreach (var d in downsamplers) hiddenStates = d.Forward(hiddenStates, temb);
            output.Add(hiddenStates);
        }
        return (hiddenStates, output.ToArray());
    }
}
