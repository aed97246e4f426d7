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

    public int? ResolutionIdx { get; }

    public UpDecoderBlock2D(int inChannels, int outChannels, int? resolutionIdx = null, double dropout = 0.0,
        int numLayers = 1, double resnetEps = 1e-6, string resnetTimeScaleShift = "default",
        string resnetActFn = "swish", int resnetGroups = 32, bool resnetPreNorm = true,
        double outputScaleFactor = 1.0, bool addUpsample = true, int? tembChannels = null)
        : base(nameof(UpDecoderBlock2D))
    {
        ResolutionIdx = resolutionIdx;
        resnets = new ModuleList<ResnetBlock2D>();
        for (int i = 0; i < numLayers; i++)
            resnets.Add(new ResnetBlock2D(i == 0 ? inChannels : outChannels, outChannels, tembChannels: tembChannels,
                eps: resnetEps, groups: resnetGroups, dropout: dropout, timeEmbeddingNorm: resnetTimeScaleShift,
                nonLinearity: resnetActFn, outputScaleFactor: outputScaleFactor, preNorm: resnetPreNorm));
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
        var input = hiddenStates;
        bool Owned(Tensor t) => consumeInput || !ReferenceEquals(t, input);
        foreach (var resnet in resnets)
        {
            var h = hiddenStates;
            bool owned = Owned(h);
            var next = ScopedCall.Run(() => resnet.Forward(h, temb, consumeInput: owned));
            if (owned && !ReferenceEquals(hiddenStates, next)) hiddenStates.Dispose();
            hiddenStates = next;
        }
        if (upsamplers is not null)
            foreach (var u in upsamplers)
            {
                var h = hiddenStates;
                bool owned = Owned(h);
                var next = ScopedCall.Run(() => u.Forward(h, consumeInput: owned));
                if (owned && !ReferenceEquals(hiddenStates, next)) hiddenStates.Dispose();
                hiddenStates = next;
            }
        return hiddenStates;
    }
}
