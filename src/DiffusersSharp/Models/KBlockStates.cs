using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>None</c> output state: a <see cref="KCrossAttnDownBlock2D"/> without a downsampler hands the up path
/// <c>None</c> for each layer, and the K up blocks join their last skip state only when it is not <c>None</c>. Here that
/// state is an empty one-dimensional tensor (the down-block contract hands out tensors).
/// </summary>
internal static class KBlockStates
{
    /// <summary>A new "None" state (the caller's, as every output state).</summary>
    public static Tensor None() => torch.empty(0);

    /// <summary>True for a state made by <see cref="None"/>.</summary>
    public static bool IsNone(Tensor state) => state.dim() == 1 && state.shape[0] == 0;

    /// <summary>
    /// diffusers' <c>torch.cat([hidden_states, res_hidden_states_tuple[-1]], dim=1)</c> when that last state is not None.
    /// </summary>
    public static Tensor JoinLast(Tensor hiddenStates, Stack<Tensor> resHiddenStates)
    {
        var last = resHiddenStates.Peek();   // the tuple's last state is the stack's top
        return IsNone(last) ? hiddenStates : torch.cat([hiddenStates, last], dim: 1);
    }
}
