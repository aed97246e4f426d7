using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>DownBlock2D</c> (models/unet_2d_blocks.py, v0.25.1): <c>num_layers</c> resnets, then an
/// optional stride-2 conv <see cref="Downsample2D"/> (<c>downsamplers.0.conv</c>).
/// </summary>
public sealed class DownBlock2D : UNetDownBlock
{
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly ModuleList<Downsample2D>? downsamplers;

    /// <summary>
    /// Builds the block from diffusers' constructor arguments (same names and defaults, in .NET casing).
    /// </summary>
    public DownBlock2D(int inChannels, int outChannels, int? tembChannels, double dropout = 0.0, int numLayers = 1,
        double resnetEps = 1e-6, string resnetTimeScaleShift = "default", string resnetActFn = "swish",
        int resnetGroups = 32, bool resnetPreNorm = true, double outputScaleFactor = 1.0, bool addDownsample = true,
        int downsamplePadding = 1)
        : base(nameof(DownBlock2D))
    {
        resnets = new ResnetOptions(tembChannels, resnetEps, resnetGroups, dropout, resnetTimeScaleShift, resnetActFn,
            outputScaleFactor, resnetPreNorm).DownPath(numLayers, inChannels, outChannels);
        downsamplers = addDownsample ? ConvDownsampler(outChannels, downsamplePadding) : null;
        RegisterComponents();
    }

    /// <inheritdoc/>
    protected override Tensor ForwardCore(Tensor hiddenStates, Tensor? temb, BlockContext context, List<Tensor> outputStates)
    {
        var h = new Chain(hiddenStates);
        foreach (var resnet in resnets)
            outputStates.Add(h.Then(x => resnet.Forward(x, temb)).Keep());
        if (downsamplers is not null)
        {
            foreach (var downsampler in downsamplers)
                h.Then(downsampler.Forward);
            outputStates.Add(h.Keep());
        }
        return h.Value;
    }
}
