using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>UpDecoderBlock2D</c> (models/unet_2d_blocks.py, v0.25.1): <c>num_layers</c> resnets (no skip
/// connections; a time embedding only with <c>temb_channels</c>), then an optional nearest ×2 + conv
/// <see cref="Upsample2D"/> (<c>upsamplers.0.conv</c>).
/// </summary>
public sealed class UpDecoderBlock2D : nn.Module
{
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly ModuleList<Upsample2D>? upsamplers;

    /// <summary>diffusers' <c>resolution_idx</c>: the block's index in the decoder's up path.</summary>
    public int? ResolutionIdx { get; }

    /// <summary>
    /// Builds the block from diffusers' constructor arguments (same names and defaults, in .NET casing).
    /// </summary>
    public UpDecoderBlock2D(int inChannels, int outChannels, int? resolutionIdx = null, double dropout = 0.0,
        int numLayers = 1, double resnetEps = 1e-6, string resnetTimeScaleShift = "default",
        string resnetActFn = "swish", int resnetGroups = 32, bool resnetPreNorm = true,
        double outputScaleFactor = 1.0, bool addUpsample = true, int? tembChannels = null)
        : base(nameof(UpDecoderBlock2D))
    {
        ResolutionIdx = resolutionIdx;
        resnets = new ResnetOptions(tembChannels, resnetEps, resnetGroups, dropout, resnetTimeScaleShift, resnetActFn,
            outputScaleFactor, resnetPreNorm).DownPath(numLayers, inChannels, outChannels);
        if (addUpsample)
            upsamplers = new ModuleList<Upsample2D>(new Upsample2D(outChannels, useConv: true, outChannels: outChannels));
        RegisterComponents();
    }

    /// <param name="consumeInput">
    /// The caller hands <paramref name="hiddenStates"/> over: it is disposed as soon as the first resnet no longer
    /// needs it, instead of living until the block returns (at 512² in the SD VAE that input is 134-268 MB).
    /// </param>
    public Tensor Forward(Tensor hiddenStates, Tensor? temb = null, bool consumeInput = false)
    {
        var h = new Chain(hiddenStates, handedOver: consumeInput);
        foreach (var resnet in resnets)
            h.ThenHandingOver((x, owned) => resnet.Forward(x, temb, consumeInput: owned));
        if (upsamplers is not null)
            foreach (var upsampler in upsamplers)
                h.ThenHandingOver((x, owned) => upsampler.Forward(x, consumeInput: owned));
        return h.Value;
    }
}
