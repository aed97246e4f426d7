using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// The contract of every UNet mid block (diffusers' <c>mid_block_type</c>, and the VAE's mid block): hidden states
/// and the time embedding (null in the VAE) in, hidden states out; what only some blocks read comes in the
/// <see cref="BlockContext"/>. The caller owns what is returned; the block never disposes its input.
/// </summary>
public abstract class UNetMidBlock : nn.Module
{
    /// <summary>Registers the block under the module name <paramref name="name"/>.</summary>
    protected UNetMidBlock(string name) : base(name) { }

    /// <summary>diffusers' <c>has_cross_attention</c>: the block attends to the context's encoder hidden states.</summary>
    public virtual bool HasCrossAttention => false;

    /// <summary>
    /// Runs the block in its own dispose scope (the ownership rule): the caller owns the result; the input stays the
    /// caller's.
    /// </summary>
    public Tensor Forward(Tensor hiddenStates, Tensor? temb, BlockContext? context = null)
    {
        using var scope = torch.NewDisposeScope();
        return scope.MoveToOuter(ForwardCore(hiddenStates, temb, context ?? BlockContext.Empty));
    }

    /// <summary>The block's maths.</summary>
    protected abstract Tensor ForwardCore(Tensor hiddenStates, Tensor? temb, BlockContext context);
}
