using static DiffusersSharp.Models.ConfigRanges;

namespace DiffusersSharp.Models;

/// <summary>
/// Which entry of <c>transformer_layers_per_block</c> each block takes, as diffusers 0.25.1's UNet2DConditionModel and
/// ControlNetModel index it: a bare value (a one-element array here) is for every block; in a list, down block i takes
/// entry [i], the mid block entry [-1] and up block i entry <c>reversed(list)[i]</c> (or
/// <c>reverse_transformer_layers_per_block[i]</c> when given). diffusers checks no length: a list shorter than
/// <c>down_block_types</c> is an IndexError there (refused by <see cref="CheckLength"/>), a longer one is read by the
/// same indexes, so its extra entries reach the mid block and the up blocks.
/// </summary>
internal static class PerBlockDepths
{
    /// <summary>The entry of down block <paramref name="i"/>: <c>transformer_layers_per_block[i]</c>.</summary>
    public static TransformerDepth Down(TransformerDepth[] list, int i) => list.Length == 1 ? list[0] : list[i];

    /// <summary>The mid block's entry: <c>transformer_layers_per_block[-1]</c>.</summary>
    public static TransformerDepth Mid(TransformerDepth[] list) => list[^1];

    /// <summary>
    /// The entry of up block <paramref name="i"/>: <c>reverse_transformer_layers_per_block[i]</c> when given, else
    /// <c>list(reversed(transformer_layers_per_block))[i]</c>.
    /// </summary>
    public static TransformerDepth Up(TransformerDepth[] list, TransformerDepth[]? reverse, int i) =>
        reverse?[i] ?? (list.Length == 1 ? list[0] : list[^(i + 1)]);

    /// <summary>
    /// Refuses a <c>transformer_layers_per_block</c> list with fewer entries than the <paramref name="downBlocks"/> down
    /// blocks (diffusers' <c>transformer_layers_per_block[i]</c> fails there), naming the key, the list and the number of
    /// down blocks; a bare value (one element) is for every block.
    /// </summary>
    public static void CheckLength(string source, TransformerDepth[] list, int downBlocks)
    {
        if (list.Length != 1 && list.Length < downBlocks)
            Fail(source, "transformer_layers_per_block",
                $"needs an entry per down block ({downBlocks}), got {list.Length}: [{string.Join(", ", list)}]");
    }
}
