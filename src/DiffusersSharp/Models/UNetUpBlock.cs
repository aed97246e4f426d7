using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// The contract of every UNet up block (diffusers' <c>get_up_block</c> types): hidden states, the block's
/// <see cref="NumResnets"/> skip states (consumed last first, as diffusers pops them) and the time embedding in,
/// hidden states out, optionally upsampled to <c>upsampleSize</c>; what only some blocks read comes in the
/// <see cref="BlockContext"/>. The caller owns what is returned and still owns (and disposes) the skip states; the
/// block never disposes its inputs.
/// </summary>
public abstract class UNetUpBlock : nn.Module
{
    /// <summary>Registers the block under the module name <paramref name="name"/>.</summary>
    protected UNetUpBlock(string name) : base(name) { }

    /// <summary>diffusers' <c>has_cross_attention</c>: the block attends to the context's encoder hidden states.</summary>
    public virtual bool HasCrossAttention => false;

    /// <summary>How many skip states the block consumes (diffusers' <c>len(upsample_block.resnets)</c>).</summary>
    public abstract int NumResnets { get; }

    /// <summary>diffusers' <c>resolution_idx</c> (the block's index in the up path; FreeU reads it).</summary>
    public int? ResolutionIdx { get; protected init; }

    /// <summary>
    /// Runs the block in its own dispose scope on <paramref name="resHiddenStates"/> (exactly <see cref="NumResnets"/>
    /// skip states, the last one first): the caller owns the result and still owns (and disposes) the skip states.
    /// </summary>
    public Tensor Forward(Tensor hiddenStates, IReadOnlyList<Tensor> resHiddenStates, Tensor? temb,
        BlockContext? context = null, long[]? upsampleSize = null)
    {
        if (resHiddenStates.Count != NumResnets)
            throw new ArgumentException($"{GetName()}: expects {NumResnets} skip states, got {resHiddenStates.Count}");
        using var scope = torch.NewDisposeScope();
        var skips = new Stack<Tensor>(resHiddenStates);
        return scope.MoveToOuter(ForwardCore(hiddenStates, skips, temb, context ?? BlockContext.Empty, upsampleSize));
    }

    /// <summary>diffusers' usual upsampler, <c>upsamplers.0</c>: nearest ×2 (or to the given size), then a 3×3 conv.</summary>
    protected static ModuleList<Upsample2D> ConvUpsampler(int channels) =>
        new(new Upsample2D(channels, useConv: true, outChannels: channels));

    /// <summary>The block's maths; <paramref name="resHiddenStates"/> pops the last skip state first.</summary>
    protected abstract Tensor ForwardCore(Tensor hiddenStates, Stack<Tensor> resHiddenStates, Tensor? temb,
        BlockContext context, long[]? upsampleSize);
}
