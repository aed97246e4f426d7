using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>Helpers shared by the UNet blocks.</summary>
internal static class Blocks
{
    /// <summary>
    /// Returns <paramref name="next"/> after freeing <paramref name="previous"/>, unless previous is the
    /// block's own input (owned by the caller) or the same tensor. Keeps a block's peak memory near what
    /// PyTorch's refcounting gives.
    /// </summary>
    public static Tensor Replace(Tensor previous, Tensor next, Tensor blockInput)
    {
        if (!ReferenceEquals(previous, blockInput) && !ReferenceEquals(previous, next) && previous.Handle != next.Handle)
            previous.Dispose();
        return next;
    }
}
