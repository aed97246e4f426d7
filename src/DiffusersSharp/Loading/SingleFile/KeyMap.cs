using DiffusersSharp.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Loading.SingleFile;

/// <summary>
/// The correspondence between one component's keys in an original single file (<c>model.diffusion_model.…</c>,
/// <c>first_stage_model.…</c>, <c>cond_stage_model.…</c>) and in its diffusers model, as data: a list of
/// <see cref="KeyRule"/>s, one per module, each a pair of prefixes plus the renames inside the module. A key maps by
/// the rule with the longest matching prefix (so <c>input_blocks.3.0.op.</c> wins over a shorter one), in either
/// direction. Tensors are converted both ways (<see cref="ToDiffusers"/>, <see cref="ToOriginal"/>), shapes too, for
/// checks that load nothing. Unknown keys are errors that name them.
/// </summary>
public sealed class KeyMap
{
    private readonly Dictionary<string, KeyRule> _byOriginal = new(StringComparer.Ordinal);
    private readonly Dictionary<string, KeyRule> _byDiffusers = new(StringComparer.Ordinal);

    /// <summary>
    /// A map for <paramref name="component"/> made of <paramref name="rules"/> (the longest matching original prefix
    /// wins).
    /// </summary>
    public KeyMap(string component, IEnumerable<KeyRule> rules)
    {
        Component = component;
        Rules = rules.ToList();
        foreach (var r in Rules)
        {
            if (!(r.Original.Length == 0 || r.Original.EndsWith('.')) || !(r.Diffusers.Length == 0 || r.Diffusers.EndsWith('.')))
                throw new ArgumentException($"{component}: rule prefixes must be empty or end with '.': '{r.Original}' → '{r.Diffusers}'");
            if (!_byOriginal.TryAdd(r.Original, r))
                throw new ArgumentException($"{component}: two rules for the original prefix '{r.Original}'");
            if (!_byDiffusers.TryAdd(r.Diffusers, r))
                throw new ArgumentException($"{component}: two rules for the diffusers prefix '{r.Diffusers}'");
        }
    }

    /// <summary>The diffusers component the keys belong to (<c>unet</c>, <c>vae</c>, <c>text_encoder</c>, …).</summary>
    public string Component { get; }

    /// <summary>The rules, in the order given.</summary>
    public IReadOnlyList<KeyRule> Rules { get; }

    /// <summary>True when a rule covers <paramref name="originalKey"/> (the key belongs to this component).</summary>
    public bool Covers(string originalKey) => Longest(_byOriginal, originalKey) is not null;

    /// <summary>The diffusers key(s) of an original key; null when no rule explains it.</summary>
    public KeyMapping? FromOriginal(string originalKey)
    {
        var rule = Longest(_byOriginal, originalKey);
        if (rule is null) return null;
        string tail = originalKey[rule.Original.Length..];
        foreach (var rn in rule.Renames)
        {
            if (!Matches(rn.Original, tail)) continue;
            string rest = rn.IsPrefix ? tail[rn.Original.Length..] : "";
            return new KeyMapping(originalKey, rn.Diffusers.Select(d => rule.Diffusers + d + rest).ToList(), rn.Change);
        }
        // A tail kept as it is must not collide with a renamed one (nin_shortcut → conv_shortcut: no second conv_shortcut).
        if (!rule.KeepOtherTails || rule.Renames.Any(rn => rn.Diffusers.Any(d => Matches(d, tail)))) return null;
        return new KeyMapping(originalKey, [rule.Diffusers + tail], TensorChange.None);
    }

    /// <summary>The mapping a diffusers key belongs to (for a split tensor, the one of all its parts); null when no rule explains it.</summary>
    public KeyMapping? FromDiffusers(string diffusersKey)
    {
        var rule = Longest(_byDiffusers, diffusersKey);
        if (rule is null) return null;
        string tail = diffusersKey[rule.Diffusers.Length..];
        foreach (var rn in rule.Renames)
        {
            var part = rn.Diffusers.FirstOrDefault(d => Matches(d, tail));
            if (part is null) continue;
            string rest = rn.IsPrefix ? tail[part.Length..] : "";
            return new KeyMapping(rule.Original + rn.Original + rest, rn.Diffusers.Select(d => rule.Diffusers + d + rest).ToList(), rn.Change);
        }
        if (!rule.KeepOtherTails || rule.Renames.Any(rn => Matches(rn.Original, tail))) return null;
        return new KeyMapping(rule.Original + tail, [diffusersKey], TensorChange.None);
    }

    /// <summary>
    /// Converts the tensors of <paramref name="originalKeys"/> (read with <paramref name="load"/>) to diffusers keys.
    /// Keys diffusers does not use are skipped without being read. Unknown keys and two keys landing on one diffusers
    /// key are <see cref="WeightsException"/>s naming <paramref name="source"/> and the keys. The caller owns the result.
    /// </summary>
    public Dictionary<string, Tensor> ToDiffusers(IEnumerable<string> originalKeys, Func<string, Tensor> load, string source)
    {
        var mappings = MapAll(originalKeys, source);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var m in mappings)
            {
                using var t = load(m.Original);
                var parts = TensorChanges.Forward(m, t, source);
                for (int i = 0; i < parts.Length; i++) result[m.Diffusers[i]] = parts[i];
            }
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
        return result;
    }

    /// <summary>The diffusers keys and shapes the original tensors become (nothing loaded).</summary>
    public Dictionary<string, long[]> ShapesToDiffusers(IReadOnlyDictionary<string, long[]> original, string source)
    {
        var result = new Dictionary<string, long[]>(StringComparer.Ordinal);
        foreach (var m in MapAll(original.Keys, source))
        {
            var shapes = TensorChanges.ForwardShape(m, original[m.Original], source);
            for (int i = 0; i < shapes.Length; i++) result[m.Diffusers[i]] = shapes[i];
        }
        return result;
    }

    /// <summary>
    /// Converts a diffusers state dict to original keys (fused parts concatenated, linears back to 1×1 convolutions).
    /// Every diffusers key must be explained by a rule and every part of a fused tensor present. The caller owns the
    /// result (tensors may share memory with <paramref name="diffusers"/>).
    /// </summary>
    public Dictionary<string, Tensor> ToOriginal(IReadOnlyDictionary<string, Tensor> diffusers, string source)
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var m in MapAllReverse(diffusers.Keys, source))
            result[m.Original] = TensorChanges.Reverse(m, m.Diffusers.Select(k => diffusers[k]).ToList(), source);
        return result;
    }

    /// <summary>The original keys and shapes a diffusers state dict becomes (nothing loaded).</summary>
    public Dictionary<string, long[]> ShapesToOriginal(IReadOnlyDictionary<string, long[]> diffusers, string source)
    {
        var result = new Dictionary<string, long[]>(StringComparer.Ordinal);
        foreach (var m in MapAllReverse(diffusers.Keys, source))
            result[m.Original] = TensorChanges.ReverseShape(m, m.Diffusers.Select(k => diffusers[k]).ToList(), source);
        return result;
    }

    private List<KeyMapping> MapAll(IEnumerable<string> originalKeys, string source)
    {
        var mappings = new List<KeyMapping>();
        var unknown = new List<string>();
        var seen = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var key in originalKeys)
        {
            var m = FromOriginal(key);
            if (m is null) { unknown.Add(key); continue; }
            if (m.IsUnused) continue;
            foreach (var d in m.Diffusers)
                if (!seen.TryAdd(d, key))
                    throw new WeightsException($"{source}: '{seen[d]}' and '{key}' both map to the {Component} weight '{d}'")
                    { FilePath = source, Key = key };
            mappings.Add(m);
        }
        if (unknown.Count > 0)
            throw new WeightsException($"{source}: unknown {Component} key(s) for this architecture: {Summarize(unknown)}")
            { FilePath = source, Key = unknown[0] };
        return mappings;
    }

    private List<KeyMapping> MapAllReverse(IEnumerable<string> diffusersKeys, string source)
    {
        var keys = diffusersKeys.ToHashSet(StringComparer.Ordinal);
        var byOriginal = new Dictionary<string, KeyMapping>(StringComparer.Ordinal);
        var unknown = new List<string>();
        foreach (var key in keys.OrderBy(k => k, StringComparer.Ordinal))
        {
            var m = FromDiffusers(key);
            if (m is null) { unknown.Add(key); continue; }
            byOriginal.TryAdd(m.Original, m);
        }
        if (unknown.Count > 0)
            throw new WeightsException($"{source}: {Component} weight(s) with no key in the original layout: {Summarize(unknown)}")
            { FilePath = source, Key = unknown[0] };
        foreach (var m in byOriginal.Values)
        {
            var missing = m.Diffusers.Where(d => !keys.Contains(d)).ToList();
            if (missing.Count > 0)
                throw new WeightsException($"{source}: '{m.Original}' is made of {string.Join(", ", m.Diffusers)}, but {string.Join(", ", missing)} is missing")
                { FilePath = source, Key = missing[0] };
        }
        return byOriginal.Values.ToList();
    }

    private static bool Matches(string pattern, string tail) =>
        pattern.EndsWith('.') ? tail.StartsWith(pattern, StringComparison.Ordinal) : tail == pattern;

    private static KeyRule? Longest(Dictionary<string, KeyRule> rules, string key)
    {
        for (int end = key.LastIndexOf('.'); end >= 0; end = end == 0 ? -1 : key.LastIndexOf('.', end - 1))
            if (rules.TryGetValue(key[..(end + 1)], out var r)) return r;
        return rules.GetValueOrDefault("");
    }

    /// <summary>"a, b, c" or the first eight and a count.</summary>
    public static string Summarize(IReadOnlyCollection<string> keys) =>
        keys.Count <= 8 ? string.Join(", ", keys) : string.Join(", ", keys.Take(8)) + $", … ({keys.Count} in all)";
}

/// <summary>The tensor side of <see cref="TensorChange"/>, forward (original → diffusers) and back, for tensors and shapes.</summary>
internal static class TensorChanges
{
    public static Tensor[] Forward(KeyMapping m, Tensor t, string source)
    {
        var shapes = ForwardShape(m, t.shape, source);
        return m.Change switch
        {
            TensorChange.None => [t.alias()],
            TensorChange.Conv1x1ToLinear => [t.reshape(shapes[0])],
            TensorChange.Transpose => [TorchUtils.Scoped(() => t.t().contiguous())],
            TensorChange.Split => t.chunk(m.Diffusers.Count, 0).Select(c => c.contiguous()).ToArray(),
            _ => throw new ArgumentOutOfRangeException(nameof(m)),
        };
    }

    public static long[][] ForwardShape(KeyMapping m, long[] shape, string source)
    {
        WeightsException Bad(string what) =>
            new($"{source}: '{m.Original}' has shape [{string.Join(", ", shape)}], {what}") { FilePath = source, Key = m.Original };
        switch (m.Change)
        {
            case TensorChange.None:
                return [shape];
            case TensorChange.Conv1x1ToLinear:
                if (shape.Length < 2 || shape.Skip(2).Any(d => d != 1)) throw Bad("expected a linear or a 1×1 convolution weight");
                return [shape[..2]];
            case TensorChange.Transpose:
                if (shape.Length != 2) throw Bad("expected a matrix");
                return [[shape[1], shape[0]]];
            case TensorChange.Split:
                int n = m.Diffusers.Count;
                if (shape.Length == 0 || shape[0] % n != 0) throw Bad($"expected {n} fused parts along the first dimension");
                return Enumerable.Range(0, n).Select(_ => (long[])[shape[0] / n, .. shape[1..]]).ToArray();
            default:
                throw new ArgumentOutOfRangeException(nameof(m));
        }
    }

    public static Tensor Reverse(KeyMapping m, IReadOnlyList<Tensor> parts, string source)
    {
        var shape = ReverseShape(m, parts.Select(p => p.shape).ToList(), source);
        return m.Change switch
        {
            TensorChange.None => parts[0].alias(),
            TensorChange.Conv1x1ToLinear => parts[0].reshape(shape),
            TensorChange.Transpose => TorchUtils.Scoped(() => parts[0].t().contiguous()),
            TensorChange.Split => torch.cat(parts.ToArray(), 0),
            _ => throw new ArgumentOutOfRangeException(nameof(m)),
        };
    }

    public static long[] ReverseShape(KeyMapping m, IReadOnlyList<long[]> parts, string source)
    {
        WeightsException Bad(string what) =>
            new($"{source}: '{m.Diffusers[0]}' has shape [{string.Join(", ", parts[0])}], {what}") { FilePath = source, Key = m.Diffusers[0] };
        switch (m.Change)
        {
            case TensorChange.None:
                return parts[0];
            case TensorChange.Conv1x1ToLinear:
                if (parts[0].Length != 2) throw Bad("expected a linear weight");
                return [.. parts[0], 1, 1];
            case TensorChange.Transpose:
                if (parts[0].Length != 2) throw Bad("expected a matrix");
                return [parts[0][1], parts[0][0]];
            case TensorChange.Split:
                if (parts.Any(p => !p.AsSpan(1).SequenceEqual(parts[0].AsSpan(1)) || p.Length != parts[0].Length))
                    throw Bad($"its parts {string.Join(", ", m.Diffusers)} do not share a shape past the first dimension");
                return [parts.Sum(p => p[0]), .. parts[0][1..]];
            default:
                throw new ArgumentOutOfRangeException(nameof(m));
        }
    }
}
