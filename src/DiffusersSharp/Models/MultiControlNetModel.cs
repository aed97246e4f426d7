using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>MultiControlNetModel</c> (pipelines/controlnet/multicontrolnet.py, v0.25.1): several ControlNets, each
/// with its own control image and conditioning scale; their residuals are summed in net order (<c>down_0 + down_1 + …</c>).
/// Weight names: <c>nets.{k}.…</c>. Disposing it disposes the nets.
/// </summary>
public sealed class MultiControlNetModel : nn.Module
{
    private readonly ModuleList<ControlNetModel> nets = new();

    /// <summary>Wraps <paramref name="controlnets"/> (at least one); they must produce residuals of the same shapes (the same UNet).</summary>
    public MultiControlNetModel(IEnumerable<ControlNetModel> controlnets) : base(nameof(MultiControlNetModel))
    {
        ArgumentNullException.ThrowIfNull(controlnets);
        foreach (var net in controlnets) nets.Add(net ?? throw new ArgumentNullException(nameof(controlnets), "MultiControlNetModel: a ControlNet is null"));
        if (nets.Count == 0) throw new ArgumentException("MultiControlNetModel needs at least one ControlNet", nameof(controlnets));
        var first = nets[0].Config;
        for (int k = 1; k < nets.Count; k++)
        {
            var c = nets[k].Config;
            if (!c.BlockOutChannels.SequenceEqual(first.BlockOutChannels) || nets[k].NumDownResiduals != nets[0].NumDownResiduals)
                throw new ArgumentException(
                    $"MultiControlNetModel: ControlNet {k} gives {nets[k].NumDownResiduals} residuals of block_out_channels [{string.Join(", ", c.BlockOutChannels)}], " +
                    $"ControlNet 0 {nets[0].NumDownResiduals} of [{string.Join(", ", first.BlockOutChannels)}]; the nets of one pipeline must fit the same UNet");
        }
        RegisterComponents();
    }

    /// <summary>The ControlNets, in order.</summary>
    public IReadOnlyList<ControlNetModel> Nets => nets.ToList();

    /// <summary>
    /// Runs every net on its control image <paramref name="controlnetCond"/>[k] with its scale
    /// <paramref name="conditioningScale"/>[k] (the other arguments as <see cref="ControlNetModel.Forward"/>) and sums the
    /// residuals in net order. One image and one scale per net, or <see cref="ArgumentException"/>.
    /// </summary>
    public ControlNetOutput Forward(Tensor sample, UNetTimestep timestep, Tensor encoderHiddenStates,
        IReadOnlyList<Tensor> controlnetCond, IReadOnlyList<double> conditioningScale, Tensor? classLabels = null,
        Tensor? timestepCond = null, Tensor? attentionMask = null, AddedCondKwargs? addedCondKwargs = null,
        CrossAttentionOptions? crossAttentionKwargs = null, bool guessMode = false)
    {
        ArgumentNullException.ThrowIfNull(controlnetCond);
        ArgumentNullException.ThrowIfNull(conditioningScale);
        if (controlnetCond.Count != nets.Count)
            throw new ArgumentException($"MultiControlNetModel: {controlnetCond.Count} control images for {nets.Count} ControlNets; pass one per net");
        if (conditioningScale.Count != nets.Count)
            throw new ArgumentException($"MultiControlNetModel: {conditioningScale.Count} conditioning scales for {nets.Count} ControlNets; pass one per net");
        using var scope = torch.NewDisposeScope();
        List<Tensor>? down = null;
        Tensor? mid = null;
        for (int k = 0; k < nets.Count; k++)
        {
            var output = nets[k].Forward(sample, timestep, encoderHiddenStates, controlnetCond[k], conditioningScale[k],
                classLabels, timestepCond, attentionMask, addedCondKwargs, crossAttentionKwargs, guessMode);
            if (down is null)
            {
                down = output.DownBlockResSamples.ToList();
                mid = output.MidBlockResSample;
            }
            else
            {
                down = down.Zip(output.DownBlockResSamples, (prev, curr) => prev + curr).ToList();
                mid = mid! + output.MidBlockResSample;
            }
        }
        scope.MoveToOuter(down!.Append(mid!));
        return new ControlNetOutput(down!, mid!);
    }
}
