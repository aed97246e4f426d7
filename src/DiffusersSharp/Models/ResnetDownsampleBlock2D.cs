using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>ResnetDownsampleBlock2D</c> (models/unet_2d_blocks.py, v0.25.1): <c>num_layers</c> resnets,
/// then a downsampling resnet (<c>down=True</c>, average pool) as <c>downsamplers.0</c>.
/// </summary>
public sealed class ResnetDownsampleBlock2D : UNetDownBlock
{
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly ModuleList<ResnetBlock2D>? downsamplers;

    /// <summary>
    /// Builds the block from diffusers' constructor arguments (same names and defaults, in .NET casing).
    /// </summary>
    public ResnetDownsampleBlock2D(int inChannels, int outChannels, int? tembChannels, double dropout = 0.0,
        int numLayers = 1, double resnetEps = 1e-6, string resnetTimeScaleShift = "default",
        string resnetActFn = "swish", int resnetGroups = 32, bool resnetPreNorm = true,
        double outputScaleFactor = 1.0, bool addDownsample = true, bool skipTimeAct = false)
        : base(nameof(ResnetDownsampleBlock2D))
    {
        var options = new ResnetOptions(tembChannels, resnetEps, resnetGroups, dropout, resnetTimeScaleShift, resnetActFn,
            outputScaleFactor, resnetPreNorm, skipTimeAct);
        resnets = options.DownPath(numLayers, inChannels, outChannels);
        if (addDownsample)
            downsamplers = new ModuleList<ResnetBlock2D>(options.Make(outChannels, outChannels, down: true));
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
                h.Then(x => downsampler.Forward(x, temb));
            outputStates.Add(h.Keep());
        }
        return h.Value;
    }
}
