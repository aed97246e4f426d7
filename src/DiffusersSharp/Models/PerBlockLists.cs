using System.Text.Json;

namespace DiffusersSharp.Models;

/// <summary>
/// The config keys that take one value for every down block or a list of one entry per down block
/// (<c>attention_head_dim</c>, <c>transformer_layers_per_block</c>, …). diffusers 0.25.1 broadcasts only a bare value
/// (<c>isinstance(x, int)</c>); a list of another length than <c>down_block_types</c> is its "Must provide the same number"
/// error, except <c>transformer_layers_per_block</c>, which it indexes without a check: an IndexError when shorter, read
/// by the same indexes when longer (<see cref="PerBlockDepths"/>). The records
/// read a bare value and a one-entry list alike, as a one-element array (the record's "every block"), so a one-entry
/// list in the file is refused when the file is read (<see cref="CheckJsonForm"/>), and lists of other lengths by the
/// config validations.
/// </summary>
internal static class PerBlockLists
{
    /// <summary>
    /// Refuses a list of one entry under any of <paramref name="keys"/> in the JSON object <paramref name="root"/> when the
    /// config has <paramref name="downBlocks"/> ≠ 1 down blocks, naming the key, the list and the number of down blocks.
    /// </summary>
    public static void CheckJsonForm(JsonElement root, string source, int? downBlocks, IEnumerable<string> keys)
    {
        if (downBlocks is not int n || n == 1 || root.ValueKind != JsonValueKind.Object) return;
        foreach (var key in keys)
        {
            if (!root.TryGetProperty(key, out var value) || value.ValueKind != JsonValueKind.Array || value.GetArrayLength() != 1)
                continue;
            var only = value[0];
            string bare = only.ValueKind == JsonValueKind.Array ? "" : $" ({Compact(only)}, not {Compact(value)})";
            ConfigRanges.Fail(source, key,
                $"Must provide the same number of `{key}` as `down_block_types`. `{key}`: {Compact(value)}, a list of 1 entry. " +
                $"`down_block_types`: {n} blocks. A list needs an entry per down block; only a bare value{bare} is for every block.");
        }
    }

    /// <summary>A JSON value on one line, list items separated by ", " (<c>[[1, 2], 3]</c>).</summary>
    private static string Compact(JsonElement e) => e.ValueKind == JsonValueKind.Array
        ? "[" + string.Join(", ", e.EnumerateArray().Select(Compact)) + "]"
        : e.GetRawText();
}
