using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>KDownBlock2D</c> (models/unet_2d_blocks.py, v0.25.1): <c>num_layers</c> ada_group resnets
/// (<see cref="ResnetBlockCondNorm2D"/>, GroupNorms of channels / 32 groups, shortcut without bias), each output a skip
/// state, then an optional <see cref="KDownsample2D"/> (whose output is not one).
/// </summary>
public sealed class KDownBlock2D : UNetDownBlock
{
    private readonly ModuleList<ResnetBlockCondNorm2D> resnets;
    private readonly ModuleList<KDownsample2D>? downsamplers;

    /// <summary>Builds the block from diffusers' constructor arguments (same names and defaults, in .NET casing).</summary>
    public KDownBlock2D(int inChannels, int outChannels, int tembChannels, double dropout = 0.0, int numLayers = 4,
        double resnetEps = 1e-5, string resnetActFn = "gelu", int resnetGroupSize = 32, bool addDownsample = false)
        : base(nameof(KDownBlock2D))
    {
        resnets = new ModuleList<ResnetBlockCondNorm2D>();
        for (int i = 0; i < numLayers; i++)
        {
            int inCh = i == 0 ? inChannels : outChannels;
            resnets.Add(new ResnetBlockCondNorm2D(inCh, outChannels, dropout, tembChannels, groups: inCh / resnetGroupSize,
                groupsOut: outChannels / resnetGroupSize, eps: resnetEps, nonLinearity: resnetActFn, convShortcutBias: false));
        }
        downsamplers = addDownsample ? new ModuleList<KDownsample2D>(new KDownsample2D()) : null;
        RegisterComponents();
    }

    /// <inheritdoc/>
    protected override Tensor ForwardCore(Tensor hiddenStates, Tensor? temb, BlockContext context, List<Tensor> outputStates)
    {
        var emb = temb ?? throw new ArgumentException("KDownBlock2D: needs the time embedding (temb)");
        var h = new Chain(hiddenStates);
        foreach (var resnet in resnets)
            outputStates.Add(h.Then(x => resnet.Forward(x, emb)).Keep());
        if (downsamplers is not null)
            foreach (var downsampler in downsamplers)
                h.Then(downsampler.forward);
        return h.Value;
    }
}
