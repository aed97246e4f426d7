using DiffusersSharp.Runtime;
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
    /// diffusers' <c>s1, s2, b1, b2</c> attributes of the block, set by <see cref="UNet2DConditionModel.EnableFreeU"/> (null:
    /// FreeU off). The blocks that have FreeU in diffusers 0.25.1 (<see cref="UpBlock2D"/>, <see cref="CrossAttnUpBlock2D"/>)
    /// read it; the others hold it unread, as diffusers' blocks hold the attributes.
    /// </summary>
    public FreeUFactors? FreeU { get; set; }

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

    /// <summary>
    /// diffusers' <c>apply_freeu(self.resolution_idx, hidden_states, res_hidden_states, ...)</c>, run before each skip state
    /// is joined when <see cref="FreeU"/> is enabled: in stage 1 or 2 (<see cref="FreeUFactors.Stage"/>) the first half of
    /// <paramref name="h"/>'s channels is multiplied by the stage's <c>b</c> (a new tensor: the caller's input is not
    /// written, where diffusers writes it in place unobserved) and the skip state is returned through
    /// <see cref="TorchUtils.FourierFilter"/> with the stage's <c>s</c>; otherwise <paramref name="skip"/> itself.
    /// </summary>
    private protected Tensor ApplyFreeU(Chain h, Tensor skip)
    {
        if (FreeU is not { IsEnabled: true } factors || factors.Stage(ResolutionIdx) is not var (s, b)) return skip;
        h.Then(x => ScaleFirstHalf(x, b));
        return TorchUtils.FourierFilter(skip, threshold: 1, scale: s);
    }

    /// <summary><c>x[:, :C // 2] = x[:, :C // 2] * factor</c> on a copy of <paramref name="x"/> (its memory format kept).</summary>
    private static Tensor ScaleFirstHalf(Tensor x, double factor)
    {
        var scaled = x.clone();
        scaled[TensorIndex.Colon, TensorIndex.Slice(0, x.shape[1] / 2)].mul_(factor);
        return scaled;
    }

    /// <summary>The block's maths; <paramref name="resHiddenStates"/> pops the last skip state first.</summary>
    protected abstract Tensor ForwardCore(Tensor hiddenStates, Stack<Tensor> resHiddenStates, Tensor? temb,
        BlockContext context, long[]? upsampleSize);
}
