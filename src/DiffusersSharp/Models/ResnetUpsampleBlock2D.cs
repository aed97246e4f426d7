using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>ResnetUpsampleBlock2D</c> (models/unet_2d_blocks.py, v0.25.1): <c>num_layers</c> ×
/// (concatenate skip → resnet), then an upsampling resnet (<c>up=True</c>, nearest ×2) as <c>upsamplers.0</c>.
/// </summary>
public sealed class ResnetUpsampleBlock2D : UNetUpBlock
{
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly ModuleList<ResnetBlock2D>? upsamplers;

    /// <inheritdoc/>
    public override int NumResnets => resnets.Count;

    /// <summary>
    /// Builds the block from diffusers' constructor arguments (same names and defaults, in .NET casing).
    /// </summary>
    public ResnetUpsampleBlock2D(int inChannels, int prevOutputChannel, int outChannels, int? tembChannels,
        int? resolutionIdx = null, double dropout = 0.0, int numLayers = 1, double resnetEps = 1e-6,
        string resnetTimeScaleShift = "default", string resnetActFn = "swish", int resnetGroups = 32,
        bool resnetPreNorm = true, double outputScaleFactor = 1.0, bool addUpsample = true, bool skipTimeAct = false)
        : base(nameof(ResnetUpsampleBlock2D))
    {
        ResolutionIdx = resolutionIdx;
        var options = new ResnetOptions(tembChannels, resnetEps, resnetGroups, dropout, resnetTimeScaleShift, resnetActFn,
            outputScaleFactor, resnetPreNorm, skipTimeAct);
        resnets = options.UpPath(numLayers, inChannels, prevOutputChannel, outChannels);
        if (addUpsample)
            upsamplers = new ModuleList<ResnetBlock2D>(options.Make(outChannels, outChannels, up: true));
        RegisterComponents();
    }

    /// <inheritdoc/>
    protected override Tensor ForwardCore(Tensor hiddenStates, Stack<Tensor> resHiddenStates, Tensor? temb,
        BlockContext context, long[]? upsampleSize)
    {
        var h = new Chain(hiddenStates);
        foreach (var resnet in resnets)
        {
            h.Then(x => torch.cat([x, resHiddenStates.Pop()], dim: 1));
            h.Then(x => resnet.Forward(x, temb));
        }
        if (upsamplers is not null)
            foreach (var upsampler in upsamplers)
                h.Then(x => upsampler.Forward(x, temb));
        return h.Value;
    }
}
