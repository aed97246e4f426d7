using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>DownEncoderBlock2D</c> (models/unet_2d_blocks.py, v0.25.1): <c>num_layers</c> resnets without a
/// time embedding, then an optional stride-2 conv <see cref="Downsample2D"/> (<c>downsamplers.0.conv</c>; with
/// padding 0, as the VAE encoder uses, the input is padded by one on the right and bottom first).
/// </summary>
public sealed class DownEncoderBlock2D : nn.Module
{
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly ModuleList<Downsample2D>? downsamplers;

    /// <summary>
    /// Builds the block from diffusers' constructor arguments (same names and defaults, in .NET casing).
    /// </summary>
    public DownEncoderBlock2D(int inChannels, int outChannels, double dropout = 0.0, int numLayers = 1,
        double resnetEps = 1e-6, string resnetTimeScaleShift = "default", string resnetActFn = "swish",
        int resnetGroups = 32, bool resnetPreNorm = true, double outputScaleFactor = 1.0, bool addDownsample = true,
        int downsamplePadding = 1)
        : base(nameof(DownEncoderBlock2D))
    {
        resnets = new ResnetOptions(null, resnetEps, resnetGroups, dropout, resnetTimeScaleShift, resnetActFn,
            outputScaleFactor, resnetPreNorm).DownPath(numLayers, inChannels, outChannels);
        if (addDownsample)
            downsamplers = new ModuleList<Downsample2D>(
                new Downsample2D(outChannels, useConv: true, outChannels: outChannels, padding: downsamplePadding, name: "op"));
        RegisterComponents();
    }

    /// <summary>The resnets then the downsampler, without time embedding; the caller owns the result.</summary>
    public Tensor Forward(Tensor hiddenStates)
    {
        var h = new Chain(hiddenStates);
        foreach (var resnet in resnets)
            h.Then(x => resnet.Forward(x, null));
        if (downsamplers is not null)
            foreach (var downsampler in downsamplers)
                h.Then(downsampler.Forward);
        return h.Value;
    }
}
