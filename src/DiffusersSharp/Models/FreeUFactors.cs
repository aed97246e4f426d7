using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' FreeU factors (<c>enable_freeu(s1, s2, b1, b2)</c>, https://arxiv.org/abs/2309.11497), as
/// <see cref="UNet2DConditionModel.EnableFreeU"/> sets them on every up block (<see cref="UNetUpBlock.FreeU"/>).
/// Stage 1 is the up block of <c>resolution_idx</c> 0, stage 2 the one of index 1; the other up blocks are left alone.
/// At each skip state a stage joins, the first half of the backbone's channels is multiplied by <c>b</c> and the skip
/// state's lowest frequencies (the centre 2×2 of its shifted spectrum) by <c>s</c>
/// (<see cref="Runtime.TorchUtils.FourierFilter"/>).
/// </summary>
/// <param name="S1">Stage 1's skip factor (attenuates the skip features' low frequencies).</param>
/// <param name="S2">Stage 2's skip factor.</param>
/// <param name="B1">Stage 1's backbone factor (amplifies the first half of the backbone's channels).</param>
/// <param name="B2">Stage 2's backbone factor.</param>
public sealed record FreeUFactors(double S1, double S2, double B1, double B2)
{
    /// <summary>
    /// diffusers' <c>is_freeu_enabled</c>, <c>s1 and s2 and b1 and b2</c>: a factor of 0 leaves FreeU off in every
    /// block, as Python reads 0.0 as false.
    /// </summary>
    public bool IsEnabled => S1 != 0 && S2 != 0 && B1 != 0 && B2 != 0;

    /// <summary>
    /// The (skip, backbone) factors of the up block of <paramref name="resolutionIdx"/> (diffusers' <c>apply_freeu</c>):
    /// stage 1 at 0, stage 2 at 1, null for every other block (and a block without an index).
    /// </summary>
    public (double S, double B)? Stage(int? resolutionIdx) => resolutionIdx switch
    {
        0 => (S1, B1),
        1 => (S2, B2),
        _ => null,
    };

    /// <summary>The four factors under diffusers' argument names, in <c>enable_freeu</c>'s order (s1, s2, b1, b2).</summary>
    public IEnumerable<(string Name, double Value)> Named => [("s1", S1), ("s2", S2), ("b1", B1), ("b2", B2)];

    /// <summary>
    /// The factors written as <c>s1,s2,b1,b2</c> (commas, invariant culture, spaces around a number allowed), as the
    /// server's form field and <c>IImageGenerator</c>'s string take them: false unless the text holds exactly four numbers.
    /// NaN and ±Infinity read as such; <see cref="UNet2DConditionModel.EnableFreeU"/> and the generation service refuse
    /// them, naming the factor.
    /// </summary>
    public static bool TryParse(string text, [NotNullWhen(true)] out FreeUFactors? factors)
    {
        factors = null;
        var parts = text.Split(',');
        if (parts.Length != 4) return false;
        var f = new double[4];
        for (int i = 0; i < 4; i++)
            if (!double.TryParse(parts[i].Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out f[i])) return false;
        factors = new FreeUFactors(f[0], f[1], f[2], f[3]);
        return true;
    }
}
