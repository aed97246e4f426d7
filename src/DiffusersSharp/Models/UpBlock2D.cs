using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>UpBlock2D</c> (models/unet_2d_blocks.py, v0.25.1): <c>num_layers</c> × (concatenate the
/// next skip state on channels → resnet), then an optional nearest ×2 + conv <see cref="Upsample2D"/>
/// (<c>upsamplers.0.conv</c>). FreeU: <see cref="UNetUpBlock.FreeU"/> before each skip state is joined.
/// </summary>
public sealed class UpBlock2D : UNetUpBlock
{
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly ModuleList<Upsample2D>? upsamplers;

    /// <inheritdoc/>
    public override int NumResnets => resnets.Count;

    /// <summary>
    /// Builds the block from diffusers' constructor arguments (same names and defaults, in .NET casing).
    /// </summary>
    public UpBlock2D(int inChannels, int prevOutputChannel, int outChannels, int? tembChannels, int? resolutionIdx = null,
        double dropout = 0.0, int numLayers = 1, double resnetEps = 1e-6, string resnetTimeScaleShift = "default",
        string resnetActFn = "swish", int resnetGroups = 32, bool resnetPreNorm = true, double outputScaleFactor = 1.0,
        bool addUpsample = true)
        : base(nameof(UpBlock2D))
    {
        ResolutionIdx = resolutionIdx;
        resnets = new ResnetOptions(tembChannels, resnetEps, resnetGroups, dropout, resnetTimeScaleShift, resnetActFn,
            outputScaleFactor, resnetPreNorm).UpPath(numLayers, inChannels, prevOutputChannel, outChannels);
        upsamplers = addUpsample ? ConvUpsampler(outChannels) : null;
        RegisterComponents();
    }

    /// <inheritdoc/>
    protected override Tensor ForwardCore(Tensor hiddenStates, Stack<Tensor> resHiddenStates, Tensor? temb,
        BlockContext context, long[]? upsampleSize)
    {
        var h = new Chain(hiddenStates);
        foreach (var resnet in resnets)
        {
            var skip = ApplyFreeU(h, resHiddenStates.Pop());
            h.Then(x => torch.cat([x, skip], dim: 1));
            h.Then(x => resnet.Forward(x, temb));
        }
        if (upsamplers is not null)
            foreach (var upsampler in upsamplers)
                h.Then(x => upsampler.Forward(x, upsampleSize));
        return h.Value;
    }
}
