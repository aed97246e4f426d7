using TorchSharp.Modules;

namespace DiffusersSharp.Models;

/// <summary>
/// The arguments every <see cref="ResnetBlock2D"/> of one block shares (diffusers passes the same ones to each), and
/// the two ways blocks stack them: a down path (the first resnet takes the block's input channels) and an up path
/// (each resnet also takes the skip state concatenated before it).
/// </summary>
internal sealed record ResnetOptions(int? TembChannels, double Eps, int Groups, double Dropout,
    string TimeScaleShift, string ActFn, double OutputScaleFactor, bool PreNorm = true, bool SkipTimeAct = false)
{
    public ResnetBlock2D Make(int inChannels, int outChannels, bool up = false, bool down = false) =>
        new(inChannels, outChannels, tembChannels: TembChannels, eps: Eps, groups: Groups, dropout: Dropout,
            timeEmbeddingNorm: TimeScaleShift, nonLinearity: ActFn, outputScaleFactor: OutputScaleFactor,
            preNorm: PreNorm, skipTimeAct: SkipTimeAct, up: up, down: down);

    /// <summary>Resnet <paramref name="i"/> of a down path: the first maps <paramref name="inChannels"/> to <paramref name="outChannels"/>.</summary>
    public ResnetBlock2D Down(int i, int inChannels, int outChannels) => Make(i == 0 ? inChannels : outChannels, outChannels);

    /// <summary>
    /// Resnet <paramref name="i"/> of <paramref name="numLayers"/> of an up block: it takes the hidden states
    /// (<paramref name="prevOutputChannel"/> channels for the first) concatenated with its skip state
    /// (<paramref name="inChannels"/> for the last).
    /// </summary>
    public ResnetBlock2D Up(int i, int numLayers, int inChannels, int prevOutputChannel, int outChannels)
    {
        int resSkipChannels = i == numLayers - 1 ? inChannels : outChannels;
        int resnetInChannels = i == 0 ? prevOutputChannel : outChannels;
        return Make(resnetInChannels + resSkipChannels, outChannels);
    }

    /// <summary>The <paramref name="numLayers"/> resnets of a down block without attention.</summary>
    public ModuleList<ResnetBlock2D> DownPath(int numLayers, int inChannels, int outChannels) =>
        new(Enumerable.Range(0, numLayers).Select(i => Down(i, inChannels, outChannels)).ToArray());

    /// <summary>The <paramref name="numLayers"/> resnets of an up block without attention.</summary>
    public ModuleList<ResnetBlock2D> UpPath(int numLayers, int inChannels, int prevOutputChannel, int outChannels) =>
        new(Enumerable.Range(0, numLayers).Select(i => Up(i, numLayers, inChannels, prevOutputChannel, outChannels)).ToArray());
}
