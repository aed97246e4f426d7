using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>UpBlock2D</c> (models/unet_2d_blocks.py, v0.25.1): <c>num_layers</c> × (concatenate the
/// next skip state on channels → resnet), then an optional nearest ×2 + conv <see cref="Upsample2D"/>
/// (<c>upsamplers.0.conv</c>). FreeU is not ported.
/// </summary>
public sealed class UpBlock2D : nn.Module, IUpBlock2D
{
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly ModuleList<Upsample2D>? upsamplers;

    public int NumResnets => resnets.Count;
    public int? ResolutionIdx { get; }

    public UpBlock2D(int inChannels, int prevOutputChannel, int outChannels, int? tembChannels, int? resolutionIdx = null,
        double dropout = 0.0, int numLayers = 1, double resnetEps = 1e-6, string resnetTimeScaleShift = "default",
        string resnetActFn = "swish", int resnetGroups = 32, bool resnetPreNorm = true, double outputScaleFactor = 1.0,
        bool addUpsample = true)
        : base(nameof(UpBlock2D))
    {
        ResolutionIdx = resolutionIdx;
        resnets = new ModuleList<ResnetBlock2D>();
        for (int i = 0; i < numLayers; i++)
        {
            int resSkipChannels = i == numLayers - 1 ? inChannels : outChannels;
            int resnetInChannels = i == 0 ? prevOutputChannel : outChannels;
            resnets.Add(new ResnetBlock2D(resnetInChannels + resSkipChannels, outChannels, tembChannels: tembChannels,
                eps: resnetEps, groups: resnetGroups, dropout: dropout, timeEmbeddingNorm: resnetTimeScaleShift,
                nonLinearity: resnetActFn, outputScaleFactor: outputScaleFactor, preNorm: resnetPreNorm));
        }
        if (addUpsample)
            upsamplers = new ModuleList<Upsample2D>(new Upsample2D(outChannels, useConv: true, outChannels: outChannels));
        RegisterComponents();
    }

    public Tensor Forward(Tensor hiddenStates, IReadOnlyList<Tensor> resHiddenStates, Tensor? temb, long[]? upsampleSize = null)
    {
        int next = resHiddenStates.Count - 1;
        var input = hiddenStates;
        foreach (var resnet in resnets)
        {
            using var cat = torch.cat(new[] { hiddenStates, resHiddenStates[next--] }, dim: 1);
            hiddenStates = Blocks.Replace(hiddenStates, resnet.Forward(cat, temb), input);
        }
        if (upsamplers is not null)
            foreach (var u in upsamplers) hiddenStates = Blocks.Replace(hiddenStates, u.Forward(hiddenStates, upsampleSize), input);
        return hiddenStates;
    }
}
