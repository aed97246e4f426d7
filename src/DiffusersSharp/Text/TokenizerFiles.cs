using System.Text.Json;
using DiffusersSharp.Loading;

namespace DiffusersSharp.Text;

/// <summary>An added token of a slow transformers tokenizer (<c>AddedToken</c>): content, id and flags.</summary>
internal sealed record AddedTokenSpec(string Content, bool LStrip = false, bool RStrip = false, bool Special = true, bool SingleWord = false);

/// <summary>
/// The settings of a transformers tokenizer folder, resolved as transformers 4.36's
/// <c>PreTrainedTokenizerBase.from_pretrained</c> does: <c>tokenizer_config.json</c> gives the init arguments;
/// when it has no <c>added_tokens_decoder</c> (files written before 4.34, e.g. Stable Diffusion 2's), the
/// entries of <c>special_tokens_map.json</c> override it and a legacy <c>added_tokens.json</c> is read.
/// </summary>
internal sealed class TokenizerFiles
{
    public required string Folder { get; init; }
    public required string VocabPath { get; init; }
    public required string MergesPath { get; init; }
    /// <summary>Special token attributes (bos_token, eos_token, unk_token, pad_token, …): null = unset.</summary>
    public Dictionary<string, AddedTokenSpec?> Specials { get; } = new(StringComparer.Ordinal);
    public List<AddedTokenSpec> AdditionalSpecialTokens { get; } = [];
    /// <summary>Saved added tokens by id (<c>added_tokens_decoder</c> or <c>added_tokens.json</c>).</summary>
    public SortedDictionary<int, AddedTokenSpec> AddedTokensDecoder { get; } = new();
    public int ModelMaxLength { get; set; } = int.MaxValue;
    public bool CleanUpTokenizationSpaces { get; set; } = true;
    /// <summary><c>padding_side</c>: "right" (the default) or "left".</summary>
    public string PaddingSide { get; set; } = "right";
    /// <summary><c>truncation_side</c>: "right" (the default) or "left".</summary>
    public string TruncationSide { get; set; } = "right";
    /// <summary><c>split_special_tokens</c>: added tokens are not cut out of the text but tokenized as text.</summary>
    public bool SplitSpecialTokens { get; set; }

    public static readonly string[] SpecialAttributes =
        ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"];

    public static TokenizerFiles Read(string folder)
    {
        string vocab = Path.Combine(folder, "vocab.json");
        string merges = Path.Combine(folder, "merges.txt");
        foreach (var f in new[] { vocab, merges })
            if (!File.Exists(f))
                throw new ConfigException($"CLIP tokenizer folder {folder} has no {Path.GetFileName(f)}") { FilePath = f };

        var files = new TokenizerFiles { Folder = folder, VocabPath = vocab, MergesPath = merges };
        // CLIPTokenizer.__init__ defaults.
        files.Specials["unk_token"] = new AddedTokenSpec("<|endoftext|>");
        files.Specials["bos_token"] = new AddedTokenSpec("<|startoftext|>");
        files.Specials["eos_token"] = new AddedTokenSpec("<|endoftext|>");
        files.Specials["pad_token"] = new AddedTokenSpec("<|endoftext|>");

        string configPath = Path.Combine(folder, "tokenizer_config.json");
        JsonElement? config = null;
        if (File.Exists(configPath))
        {
            using var doc = ConfigJson.ReadObject(configPath);
            config = doc.RootElement.Clone();
        }
        bool modern = config is { } c0 && c0.TryGetProperty("added_tokens_decoder", out _);
        if (config is { } c)
        {
            files.ApplySpecials(c, configPath);
            // PreTrainedTokenizerBase: model_max_length, else the old max_len; null is no limit.
            if (c.TryGetProperty("model_max_length", out var mml))
            {
                if (mml.ValueKind != JsonValueKind.Null) files.ModelMaxLength = ModelMaxLengthOf(mml, configPath, "model_max_length");
            }
            else if (c.TryGetProperty("max_len", out var maxLen) && maxLen.ValueKind != JsonValueKind.Null)
                files.ModelMaxLength = ModelMaxLengthOf(maxLen, configPath, "max_len");
            files.PaddingSide = SideOf(c, "padding_side", configPath);
            files.TruncationSide = SideOf(c, "truncation_side", configPath);
            if (c.TryGetProperty("split_special_tokens", out var sst) && sst.ValueKind != JsonValueKind.Null)
                files.SplitSpecialTokens = sst.ValueKind is JsonValueKind.True or JsonValueKind.False
                    ? sst.GetBoolean()
                    : throw new ConfigException($"{configPath}: split_special_tokens must be true or false, got {Printable.Json(sst)}")
                    { FilePath = configPath, Key = "split_special_tokens" };
            if (c.TryGetProperty("clean_up_tokenization_spaces", out var cu) && cu.ValueKind is JsonValueKind.True or JsonValueKind.False)
                files.CleanUpTokenizationSpaces = cu.GetBoolean();
            if (modern)
            {
                if (c.GetProperty("added_tokens_decoder").ValueKind != JsonValueKind.Object)
                    throw new ConfigException($"{configPath}: added_tokens_decoder must be an object of id → token, not {ConfigJson.Describe(c.GetProperty("added_tokens_decoder"))}")
                    { FilePath = configPath, Key = "added_tokens_decoder" };
                foreach (var p in c.GetProperty("added_tokens_decoder").EnumerateObject())
                {
                    if (!int.TryParse(p.Name, out int id))
                        throw new ConfigException($"{configPath}: added_tokens_decoder key '{p.Name}' is not an integer id")
                        { FilePath = configPath, Key = "added_tokens_decoder." + p.Name };
                    files.AddedTokensDecoder[id] = ParseToken(p.Value, configPath, "added_tokens_decoder." + p.Name, special: false)
                        ?? throw new ConfigException($"{configPath}: added_tokens_decoder.{p.Name} is null") { FilePath = configPath };
                }
            }
        }
        if (!modern)
        {
            string mapPath = Path.Combine(folder, "special_tokens_map.json");
            if (File.Exists(mapPath))
            {
                using var doc = ConfigJson.ReadObject(mapPath);
                files.ApplySpecials(doc.RootElement, mapPath);
            }
            string addedPath = Path.Combine(folder, "added_tokens.json");
            if (File.Exists(addedPath))
            {
                using var doc = ConfigJson.ReadObject(addedPath);
                var specials = files.AllSpecialContents();
                foreach (var p in doc.RootElement.EnumerateObject())
                {
                    if (p.Value.ValueKind != JsonValueKind.Number)
                        throw new ConfigException($"{addedPath}: the id of '{p.Name}' is not a number") { FilePath = addedPath, Key = p.Name };
                    files.AddedTokensDecoder[p.Value.GetInt32()] = new AddedTokenSpec(p.Name, Special: specials.Contains(p.Name));
                }
            }
        }
        return files;
    }

    /// <summary>The most tokens a tokenizer may be asked to pad or truncate to (CLIP uses 77).</summary>
    public const int MaxModelMaxLength = 1_000_000;

    /// <summary>
    /// <c>model_max_length</c>: an integer in [2, <see cref="MaxModelMaxLength"/>] (BOS and EOS need two), or transformers'
    /// "no limit" value <c>int(1e30)</c> (and anything as large), read as no limit.
    /// </summary>
    private static int ModelMaxLengthOf(JsonElement v, string path, string key)
    {
        if (v.ValueKind == JsonValueKind.Number && v.GetDouble() is var d)
        {
            if (d >= 1e29) return int.MaxValue;
            if (d >= 2 && d <= MaxModelMaxLength && d == Math.Floor(d)) return (int)d;
        }
        throw new ConfigException(
            $"{path}: {key} must be an integer between 2 and {MaxModelMaxLength} (or 1e30, transformers' 'no limit'), got {Printable.Json(v)}")
        { FilePath = path, Key = key };
    }

    /// <summary><c>padding_side</c> / <c>truncation_side</c>: absent is "right"; anything but "right" or "left" is an error (as in transformers).</summary>
    private static string SideOf(JsonElement config, string key, string path)
    {
        if (!config.TryGetProperty(key, out var v)) return "right";
        if (v.ValueKind == JsonValueKind.String && v.GetString() is "right" or "left") return v.GetString()!;
        throw new ConfigException($"{path}: {key} must be \"right\" or \"left\", got {Printable.Json(v)}") { FilePath = path, Key = key };
    }

    public HashSet<string> AllSpecialContents()
    {
        var set = new HashSet<string>(StringComparer.Ordinal);
        foreach (var v in Specials.Values) if (v is not null) set.Add(v.Content);
        foreach (var v in AdditionalSpecialTokens) set.Add(v.Content);
        return set;
    }

    private void ApplySpecials(JsonElement obj, string path)
    {
        foreach (var key in SpecialAttributes)
            if (obj.TryGetProperty(key, out var v))
                Specials[key] = ParseToken(v, path, key, special: true);
        if (obj.TryGetProperty("additional_special_tokens", out var extra) && extra.ValueKind == JsonValueKind.Array)
        {
            AdditionalSpecialTokens.Clear();
            int i = 0;
            foreach (var t in extra.EnumerateArray())
            {
                var spec = ParseToken(t, path, $"additional_special_tokens[{i++}]", special: true);
                if (spec is not null && !AdditionalSpecialTokens.Any(a => a.Content == spec.Content)) AdditionalSpecialTokens.Add(spec);
            }
        }
    }

    /// <summary>A token given as a string or as an AddedToken object (<c>{"content": …, "lstrip": …}</c>).</summary>
    private static AddedTokenSpec? ParseToken(JsonElement v, string path, string key, bool special)
    {
        switch (v.ValueKind)
        {
            case JsonValueKind.Null:
                return null;
            case JsonValueKind.String:
                return new AddedTokenSpec(v.GetString()!, Special: special);
            case JsonValueKind.Object when v.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String:
                bool Flag(string name, bool dflt) =>
                    v.TryGetProperty(name, out var f) && f.ValueKind is JsonValueKind.True or JsonValueKind.False ? f.GetBoolean() : dflt;
                return new AddedTokenSpec(content.GetString()!, Flag("lstrip", false), Flag("rstrip", false), Flag("special", special),
                    Flag("single_word", false));
            default:
                throw new ConfigException($"{path}: '{key}' must be a string, an AddedToken object with \"content\", or null; got {Printable.Json(v)}")
                { FilePath = path, Key = key };
        }
    }
}
