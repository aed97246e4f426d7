using TorchSharp;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>get_down_block</c> / <c>get_up_block</c> (models/unet_2d_blocks.py, v0.25.1) for the block
/// types without cross-attention. A "UNetRes" prefix is dropped, as in diffusers. An unknown type is an
/// <see cref="ArgumentException"/> naming it (callers turn it into a <see cref="ConfigException"/>).
/// </summary>
public static class UNet2DBlocks
{
    public static readonly IReadOnlyList<string> DownBlockTypes = ["DownBlock2D", "AttnDownBlock2D", "ResnetDownsampleBlock2D"];
    public static readonly IReadOnlyList<string> UpBlockTypes = ["UpBlock2D", "AttnUpBlock2D", "ResnetUpsampleBlock2D"];

    private static string Strip(string t) => t.StartsWith("UNetRes", StringComparison.Ordinal) ? t[7..] : t;

    public static bool IsKnownDownBlock(string type) => DownBlockTypes.Contains(Strip(type));
    public static bool IsKnownUpBlock(string type) => UpBlockTypes.Contains(Strip(type));

    public static torch.nn.Module GetDownBlock(string downBlockType, int numLayers, int inChannels, int outChannels,
        int? tembChannels, bool addDownsample, double resnetEps, string resnetActFn, int? resnetGroups = null,
        int? downsamplePadding = null, string resnetTimeScaleShift = "default", bool resnetSkipTimeAct = false,
        double resnetOutScaleFactor = 1.0, int? attentionHeadDim = null, string? downsampleType = null,
        double dropout = 0.0)
    {
        int groups = resnetGroups ?? 32;
        return Strip(downBlockType) switch
        {
            "DownBlock2D" => new DownBlock2D(inChannels, outChannels, tembChannels, dropout, numLayers, resnetEps,
                resnetTimeScaleShift, resnetActFn, groups, addDownsample: addDownsample,
                downsamplePadding: downsamplePadding ?? 1),
            "ResnetDownsampleBlock2D" => new ResnetDownsampleBlock2D(inChannels, outChannels, tembChannels, dropout,
                numLayers, resnetEps, resnetTimeScaleShift, resnetActFn, groups, addDownsample: addDownsample,
                skipTimeAct: resnetSkipTimeAct, outputScaleFactor: resnetOutScaleFactor),
            "AttnDownBlock2D" => new AttnDownBlock2D(inChannels, outChannels, tembChannels, dropout, numLayers, resnetEps,
                resnetTimeScaleShift, resnetActFn, groups, attentionHeadDim: attentionHeadDim,
                downsamplePadding: downsamplePadding ?? 1,
                downsampleType: addDownsample ? downsampleType ?? "conv" : null),
            _ => throw new ArgumentException($"{downBlockType} does not exist."),
        };
    }

    public static torch.nn.Module GetUpBlock(string upBlockType, int numLayers, int inChannels, int outChannels,
        int prevOutputChannel, int? tembChannels, bool addUpsample, double resnetEps, string resnetActFn,
        int? resolutionIdx = null, int? resnetGroups = null, string resnetTimeScaleShift = "default",
        bool resnetSkipTimeAct = false, double resnetOutScaleFactor = 1.0, int? attentionHeadDim = null,
        string? upsampleType = null, double dropout = 0.0)
    {
        int groups = resnetGroups ?? 32;
        return Strip(upBlockType) switch
        {
            "UpBlock2D" => new UpBlock2D(inChannels, prevOutputChannel, outChannels, tembChannels, resolutionIdx, dropout,
                numLayers, resnetEps, resnetTimeScaleShift, resnetActFn, groups, addUpsample: addUpsample),
            "ResnetUpsampleBlock2D" => new ResnetUpsampleBlock2D(inChannels, prevOutputChannel, outChannels, tembChannels,
                resolutionIdx, dropout, numLayers, resnetEps, resnetTimeScaleShift, resnetActFn, groups,
                addUpsample: addUpsample, skipTimeAct: resnetSkipTimeAct, outputScaleFactor: resnetOutScaleFactor),
            "AttnUpBlock2D" => new AttnUpBlock2D(inChannels, prevOutputChannel, outChannels, tembChannels, resolutionIdx,
                dropout, numLayers, resnetEps, resnetTimeScaleShift, resnetActFn, groups,
                attentionHeadDim: attentionHeadDim, upsampleType: addUpsample ? upsampleType ?? "conv" : null),
            _ => throw new ArgumentException($"{upBlockType} does not exist."),
        };
    }
}
