using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// The contract of every UNet down block (diffusers' <c>get_down_block</c> types): hidden states and the time
/// embedding in, the block's output and the states it hands to the up path out (each resnet/attention output,
/// then the downsampled one), as diffusers' <c>(hidden_states, output_states)</c>. What only some blocks read comes
/// in the <see cref="BlockContext"/>. The caller owns what is returned; the block never disposes its input.
/// </summary>
public abstract class UNetDownBlock : nn.Module
{
    /// <summary>Registers the block under the module name <paramref name="name"/>.</summary>
    protected UNetDownBlock(string name) : base(name) { }

    /// <summary>diffusers' <c>has_cross_attention</c>: the block attends to the context's encoder hidden states.</summary>
    public virtual bool HasCrossAttention => false;

    /// <summary>
    /// Runs the block in its own dispose scope (the ownership rule): the caller owns the returned hidden states and
    /// output states; the input stays the caller's.
    /// </summary>
    public (Tensor HiddenStates, Tensor[] OutputStates) Forward(Tensor hiddenStates, Tensor? temb, BlockContext? context = null)
    {
        context ??= BlockContext.Empty;
        using var scope = torch.NewDisposeScope();
        var outputStates = new List<Tensor>();
        var h = ForwardCore(hiddenStates, temb, context, outputStates);
        // diffusers adds a T2I-Adapter residual after a block without cross-attention in place (`sample += r`),
        // so its last output state, the same tensor, carries it too; a cross-attention block adds it itself.
        if (context.AdditionalResidual is { } residual && !HasCrossAttention)
            h = h.add_(CheckedResidual(residual, h));
        scope.MoveToOuter(outputStates.Append(h));
        return (h, outputStates.ToArray());
    }

    /// <summary>
    /// A T2I-Adapter residual must have the shape of the state it is added to, or that shape with a batch of 1: diffusers
    /// adds it with torch's broadcasting, which fails in torch's words on another channel count and silently spreads a
    /// size-1 channel, height or width. A batch of 1 serves every sample, as torch broadcasts it: diffusers'
    /// StableDiffusionAdapterPipeline runs one control image for several prompts that way (without guidance).
    /// </summary>
    protected static Tensor CheckedResidual(Tensor residual, Tensor state)
    {
        long[] r = residual.shape, s = state.shape;
        bool fits = r.Length == s.Length && r.Length > 0 && (r[0] == s[0] || r[0] == 1) && r.AsSpan(1).SequenceEqual(s.AsSpan(1));
        if (!fits)
            throw new ArgumentException(
                $"UNet2DConditionModel: a down_intrablock_additional_residuals tensor has shape {Layers.Shape(residual)}, but the down block it goes into " +
                $"gives {Layers.Shape(state)} (T2I-Adapter residuals: one per down block, in order, of that block's output shape; a batch of 1 serves every sample)",
                "down_intrablock_additional_residuals");
        return residual;
    }

    /// <summary>diffusers' usual downsampler, <c>downsamplers.0</c>: a stride-2 3×3 conv (<c>downsamplers.0.conv</c>).</summary>
    protected static ModuleList<Downsample2D> ConvDownsampler(int channels, int padding) =>
        new(new Downsample2D(channels, useConv: true, outChannels: channels, padding: padding, name: "op"));

    /// <summary>The block's maths: returns the hidden states and adds each state for the up path to <paramref name="outputStates"/>.</summary>
    protected abstract Tensor ForwardCore(Tensor hiddenStates, Tensor? temb, BlockContext context, List<Tensor> outputStates);
}
