using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>KUpBlock2D</c> (models/unet_2d_blocks.py, v0.25.1): the last of its skip states joined to the hidden
/// states (unless diffusers' <c>None</c>, <see cref="KBlockStates"/>), <c>num_layers - 1</c> ada_group resnets (from
/// 2 · out_channels; the last to in_channels), then an optional <see cref="KUpsample2D"/>.
/// </summary>
public sealed class KUpBlock2D : UNetUpBlock
{
    private readonly ModuleList<ResnetBlockCondNorm2D> resnets;
    private readonly ModuleList<KUpsample2D>? upsamplers;

    /// <inheritdoc/>
    public override int NumResnets => resnets.Count;

    /// <summary>Builds the block from diffusers' constructor arguments (same names and defaults, in .NET casing).</summary>
    public KUpBlock2D(int inChannels, int outChannels, int tembChannels, int? resolutionIdx, double dropout = 0.0,
        int numLayers = 5, double resnetEps = 1e-5, string resnetActFn = "gelu", int resnetGroupSize = 32, bool addUpsample = true)
        : base(nameof(KUpBlock2D))
    {
        ResolutionIdx = resolutionIdx;
        int kIn = 2 * outChannels, kOut = inChannels, layers = numLayers - 1;
        resnets = new ModuleList<ResnetBlockCondNorm2D>();
        for (int i = 0; i < layers; i++)
        {
            int inCh = i == 0 ? kIn : outChannels;
            resnets.Add(new ResnetBlockCondNorm2D(inCh, i == layers - 1 ? kOut : outChannels, dropout, tembChannels,
                groups: inCh / resnetGroupSize, groupsOut: outChannels / resnetGroupSize, eps: resnetEps,
                nonLinearity: resnetActFn, convShortcutBias: false));
        }
        upsamplers = addUpsample ? new ModuleList<KUpsample2D>(new KUpsample2D()) : null;
        RegisterComponents();
    }

    /// <inheritdoc/>
    protected override Tensor ForwardCore(Tensor hiddenStates, Stack<Tensor> resHiddenStates, Tensor? temb,
        BlockContext context, long[]? upsampleSize)
    {
        var emb = temb ?? throw new ArgumentException("KUpBlock2D: needs the time embedding (temb)");
        var h = new Chain(hiddenStates);
        h.Then(x => KBlockStates.JoinLast(x, resHiddenStates));
        foreach (var resnet in resnets)
            h.Then(x => resnet.Forward(x, emb));
        if (upsamplers is not null)
            foreach (var upsampler in upsamplers)
                h.Then(upsampler.forward);
        return h.Value;
    }
}
