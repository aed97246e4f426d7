namespace DiffusersSharp.Loading.Lora;

/// <summary>Which tensor of a module's LoRA a key holds.</summary>
internal enum LoraKeyPart { Down, Up, Alpha }

/// <summary>A parsed LoRA key: its component, module name, part, and (for a down key) the key of its up matrix.</summary>
internal readonly record struct LoraKey(string Component, string Module, LoraKeyPart Part, string PartnerKey);

/// <summary>
/// Keys of diffusers' LoRA files (<c>unet.…lora.down.weight</c>, <c>text_encoder.…lora_linear_layer.up.weight</c>, the older
/// attention-processor names <c>attn1.processor.to_q_lora.down.weight</c> / <c>self_attn.to_q_lora.down.weight</c>, keys
/// without a component prefix = UNet, as 0.25.1's <c>load_attn_procs</c>) and of PEFT files (<c>lora_A</c> = down,
/// <c>lora_B</c> = up). Module names come out as dotted paths of our models.
/// </summary>
internal static class DiffusersLoraNames
{
    private static readonly (string Down, string Up)[] Suffixes =
    [
        (".lora.down.weight", ".lora.up.weight"),
        (".lora_linear_layer.down.weight", ".lora_linear_layer.up.weight"),
        (".lora_A.weight", ".lora_B.weight"),
        (".lora_A.default.weight", ".lora_B.default.weight"),
        (".down.weight", ".up.weight"), // legacy processor names: to_q_lora.down.weight
    ];

    private static readonly (string Legacy, string Unet, string Text)[] ProcessorNames =
    [
        ("to_q_lora", "to_q", "q_proj"), ("to_k_lora", "to_k", "k_proj"), ("to_v_lora", "to_v", "v_proj"), ("to_out_lora", "to_out.0", "out_proj"),
    ];

    /// <summary>Parses one key; null when it is no LoRA key.</summary>
    public static LoraKey? ParseKey(string key)
    {
        var (component, rest) = SplitComponent(key);
        string prefix = key[..^rest.Length];
        if (rest.EndsWith(".alpha", StringComparison.Ordinal))
            return new LoraKey(component, Normalise(StripLoraSuffix(rest[..^".alpha".Length]), component), LoraKeyPart.Alpha, "");
        foreach (var (down, up) in Suffixes)
        {
            if (rest.EndsWith(down, StringComparison.Ordinal))
            {
                string module = rest[..^down.Length];
                if (down == ".down.weight" && !module.EndsWith("_lora", StringComparison.Ordinal)) return null;
                return new LoraKey(component, Normalise(module, component), LoraKeyPart.Down, prefix + module + up);
            }
            if (rest.EndsWith(up, StringComparison.Ordinal))
                return new LoraKey(component, Normalise(rest[..^up.Length], component), LoraKeyPart.Up, "");
        }
        return null;
    }

    private static (string Component, string Remainder) SplitComponent(string key)
    {
        foreach (var c in new[] { "text_encoder_2", "text_encoder", "unet" })
            if (key.StartsWith(c + ".", StringComparison.Ordinal)) return (c, key[(c.Length + 1)..]);
        return ("unet", key);
    }

    private static string StripLoraSuffix(string module)
    {
        foreach (var s in new[] { ".lora_linear_layer.down.weight", ".lora.down.weight", ".down.weight", ".lora_linear_layer", ".lora" })
            if (module.EndsWith(s, StringComparison.Ordinal)) return module[..^s.Length];
        return module;
    }

    /// <summary>The older processor names → module paths (<c>attn1.processor.to_q_lora</c> → <c>attn1.to_q</c>, <c>self_attn.to_q_lora</c> → <c>self_attn.q_proj</c>).</summary>
    private static string Normalise(string module, string component)
    {
        foreach (var (legacy, unet, text) in ProcessorNames)
        {
            if (!module.EndsWith(legacy, StringComparison.Ordinal)) continue;
            string head = module[..^legacy.Length];
            if (component == "unet")
                return (head.EndsWith("processor.", StringComparison.Ordinal) ? head[..^"processor.".Length] : head) + unet;
            return head + text;
        }
        return module;
    }
}
