namespace DiffusersSharp.Models;

public sealed partial class UNet2DConditionModel
{
    /// <summary>
    /// diffusers' <c>enable_freeu(s1, s2, b1, b2)</c>: sets the FreeU factors (https://arxiv.org/abs/2309.11497) on every
    /// up block (<see cref="UNetUpBlock.FreeU"/>); <see cref="UpBlock2D"/> and <see cref="CrossAttnUpBlock2D"/> of
    /// <c>resolution_idx</c> 0 and 1 read them, as in diffusers 0.25.1. Values diffusers' documentation gives (from the
    /// FreeU repository): SD 1.5 (0.9, 0.2, 1.2, 1.4), SD 2.1 (0.9, 0.2, 1.1, 1.2), SDXL (0.6, 0.4, 1.1, 1.2). Any finite
    /// numbers are taken, as diffusers takes them (a 0 leaves FreeU off: <see cref="FreeUFactors.IsEnabled"/>); NaN or
    /// ±Inf, which would make every output NaN, are refused naming the factor.
    /// </summary>
    /// <exception cref="ArgumentException">A factor is NaN or infinite.</exception>
    public void EnableFreeU(double s1, double s2, double b1, double b2)
    {
        var factors = new FreeUFactors(s1, s2, b1, b2);
        foreach (var (name, value) in factors.Named) ModelInputs.Finite(value, nameof(UNet2DConditionModel), name);
        foreach (var block in up_blocks) block.FreeU = factors;
    }

    /// <summary>diffusers' <c>disable_freeu()</c>: clears the FreeU factors of every up block.</summary>
    public void DisableFreeU()
    {
        foreach (var block in up_blocks) block.FreeU = null;
    }

    /// <summary>
    /// The FreeU factors of every up block, in order (null where off): what <see cref="RestoreFreeU"/> puts back. The
    /// generation service saves them before a request's FreeU and restores them after its run.
    /// </summary>
    internal FreeUFactors?[] SaveFreeU() => up_blocks.Select(b => b.FreeU).ToArray();

    /// <summary>Puts back the up blocks' FreeU factors <see cref="SaveFreeU"/> returned.</summary>
    internal void RestoreFreeU(FreeUFactors?[] saved)
    {
        for (int i = 0; i < up_blocks.Count; i++) up_blocks[i].FreeU = saved[i];
    }
}
