namespace DiffusersSharp.Loading.Lora;

/// <summary>
/// kohya-ss / A1111 LoRA names (diffusers' <c>lora_conversion_utils.py</c>, v0.25.1): <c>lora_unet_&lt;module with _&gt;</c>,
/// <c>lora_te_</c> / <c>lora_te1_</c> (text_encoder), <c>lora_te2_</c> (text_encoder_2), each with <c>.lora_down.weight</c>,
/// <c>.lora_up.weight</c> and an optional <c>.alpha</c>. UNet names in the original SGM layout (<c>input_blocks</c>,
/// <c>middle_block</c>, <c>output_blocks</c>, <c>in_layers_2</c>, <c>emb_layers_1</c>, <c>skip_connection</c>, <c>op</c>)
/// are mapped with the UNet's layers_per_block as <c>_maybe_map_sgm_blocks_to_diffusers</c> does. The result is the
/// diffusers module path with <c>_</c> for <c>.</c>, which the loader matches against the model's layers.
/// </summary>
public static class KohyaLoraNames
{
    /// <summary>The key prefixes of a kohya file.</summary>
    public static readonly IReadOnlyList<string> Prefixes = ["lora_unet_", "lora_te_", "lora_te1_", "lora_te2_"];

    private static readonly string[] InnerBlocks = ["resnets", "attentions", "upsamplers"];

    internal static LoraKey? ParseKey(string key)
    {
        string? prefix = Prefixes.OrderByDescending(p => p.Length).FirstOrDefault(p => key.StartsWith(p, StringComparison.Ordinal));
        if (prefix is null) return null;
        int dot = key.IndexOf('.');
        if (dot < 0) return null;
        string name = key[..dot], suffix = key[dot..];
        string component = prefix switch { "lora_unet_" => "unet", "lora_te2_" => "text_encoder_2", _ => "text_encoder" };
        string module = name[prefix.Length..];
        return suffix switch
        {
            ".lora_down.weight" => new LoraKey(component, module, LoraKeyPart.Down, name + ".lora_up.weight"),
            ".lora_up.weight" => new LoraKey(component, module, LoraKeyPart.Up, ""),
            ".alpha" => new LoraKey(component, module, LoraKeyPart.Alpha, ""),
            _ => null,
        };
    }

    /// <summary>
    /// The diffusers name (with <c>_</c> for <c>.</c>) of a kohya UNet module name (after <c>lora_unet_</c>), for a UNet
    /// with <paramref name="layersPerBlock"/> resnets per down block. Throws for an SGM name diffusers cannot map.
    /// </summary>
    public static string UnetName(string kohyaName, int layersPerBlock)
    {
        var parts = kohyaName.Split('_').ToList();
        int lpb1 = layersPerBlock + 1;
        string Join(IEnumerable<string> p) => string.Join("_", p);
        if (kohyaName.StartsWith("input_blocks_", StringComparison.Ordinal) && parts.Count > 3 && int.TryParse(parts[2], out int i)
            && int.TryParse(parts[3], out int inner))
        {
            bool op = kohyaName.Contains("op", StringComparison.Ordinal);
            string innerKey = op ? "downsamplers" : Inner(inner, kohyaName);
            string layer = op ? "0" : ((i - 1) % lpb1).ToString();
            kohyaName = Join(new[] { "down_blocks", ((i - 1) / lpb1).ToString(), innerKey, layer }.Concat(parts.Skip(4)));
        }
        else if (kohyaName.StartsWith("middle_block_", StringComparison.Ordinal) && parts.Count > 2 && int.TryParse(parts[2], out int m))
        {
            string[] part = m switch
            {
                0 => ["resnets", "0"],
                1 => ["attentions", "0"],
                2 => ["resnets", "1"],
                _ => throw new WeightsException($"LoRA: invalid middle block id {m} in '{kohyaName}'"),
            };
            kohyaName = Join(new[] { "mid_block" }.Concat(part).Concat(parts.Skip(3)));
        }
        else if (kohyaName.StartsWith("output_blocks_", StringComparison.Ordinal) && parts.Count > 3 && int.TryParse(parts[2], out int o)
            && int.TryParse(parts[3], out int innerUp))
        {
            string innerKey = Inner(innerUp, kohyaName);
            string layer = innerUp < 2 ? (o % lpb1).ToString() : "0";
            kohyaName = Join(new[] { "up_blocks", (o / lpb1).ToString(), innerKey, layer }.Concat(parts.Skip(4)));
        }

        // the renames of _convert_kohya_lora_to_diffusers, on the underscore form
        kohyaName = ReplaceSegment(kohyaName, "in_layers_2", "conv1");
        kohyaName = ReplaceSegment(kohyaName, "out_layers_3", "conv2");
        kohyaName = ReplaceSegment(kohyaName, "emb_layers_1", "time_emb_proj");
        kohyaName = ReplaceSegment(kohyaName, "skip_connection", "conv_shortcut");
        if ((kohyaName.Contains("downsamplers") || kohyaName.Contains("upsamplers")) && kohyaName.EndsWith("_op", StringComparison.Ordinal))
            kohyaName = kohyaName[..^2] + "conv";
        return kohyaName;
    }

    private static string Inner(int id, string name) => id >= 0 && id < InnerBlocks.Length
        ? InnerBlocks[id]
        : throw new WeightsException($"LoRA: '{name}' names inner block {id}, which has no diffusers counterpart");

    private static string ReplaceSegment(string name, string from, string to)
    {
        if (name.EndsWith("_" + from, StringComparison.Ordinal)) return name[..^from.Length] + to;
        return name.Replace("_" + from + "_", "_" + to + "_");
    }
}
