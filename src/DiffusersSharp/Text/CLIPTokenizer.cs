using System.Text;
using System.Text.Json;
using DiffusersSharp.Loading;

namespace DiffusersSharp.Text;

/// <summary>
/// transformers' slow <c>CLIPTokenizer</c> (4.36, without ftfy): added/special tokens split out first, the rest
/// cleaned (BERT basic clean-up, whitespace collapse, lower case), pre-tokenised with CLIP's pattern, mapped to
/// byte-level characters and BPE-merged with <c>&lt;/w&gt;</c> word ends. <see cref="Call(IReadOnlyList{string}, PaddingStrategy, int?, bool)"/> adds BOS/EOS,
/// truncates and pads to <c>model_max_length</c> (77) with the configured pad token (<c>&lt;|endoftext|&gt;</c>
/// for Stable Diffusion 1.x, <c>!</c> for 2.x). Loads <c>vocab.json</c>, <c>merges.txt</c>,
/// <c>tokenizer_config.json</c> and <c>special_tokens_map.json</c>. Thread-safe after construction, except that
/// <see cref="AddTokens(IEnumerable{string})"/> (textual inversion) must not run while another thread uses the tokenizer.
/// </summary>
public sealed partial class CLIPTokenizer
{
    private readonly Dictionary<string, int> _encoder;
    private readonly Dictionary<int, string> _decoder;
    private readonly ByteLevelBpe _bpe;
    private readonly Dictionary<string, int> _addedEncoder = new(StringComparer.Ordinal);
    private readonly Dictionary<int, AddedTokenSpec> _addedDecoder = new();
    private readonly AddedTokenTrie _trie = new();  // every added token's content (transformers' tokens_trie)
    private readonly List<string> _addedAtRunTime = [];
    private readonly HashSet<int> _specialIds = new();
    private readonly HashSet<string> _legacyAdded;

    private CLIPTokenizer(TokenizerFiles files)
    {
        Folder = files.Folder;
        _encoder = ReadVocab(files.VocabPath);
        _decoder = new Dictionary<int, string>(_encoder.Count);
        foreach (var (k, v) in _encoder) _decoder[v] = k;
        _bpe = new ByteLevelBpe(ByteLevelBpe.ReadMerges(files.MergesPath), ["<|startoftext|>", "<|endoftext|>"]);
        ModelMaxLength = files.ModelMaxLength;
        CleanUpTokenizationSpaces = files.CleanUpTokenizationSpaces;
        PaddingSide = files.PaddingSide;
        TruncationSide = files.TruncationSide;
        SplitSpecialTokens = files.SplitSpecialTokens;

        foreach (var (id, tok) in files.AddedTokensDecoder)
        {
            _addedDecoder[id] = tok;
            _addedEncoder[tok.Content] = id;
        }
        // PreTrainedTokenizer.__init__: every special token not yet added is added (its vocab id when it has one,
        // else a new id after the vocabulary).
        var specialsInOrder = TokenizerFiles.SpecialAttributes.Select(a => files.Specials.GetValueOrDefault(a))
            .Concat(files.AdditionalSpecialTokens).Where(t => t is not null).Select(t => t!).ToList();
        int newIdx = _encoder.Keys.Union(_addedEncoder.Keys).Count();
        int added = 0;
        foreach (var tok in specialsInOrder)
        {
            if (_addedEncoder.ContainsKey(tok.Content) || tok.Content.Length == 0) continue;
            int id = _encoder.TryGetValue(tok.Content, out int v) ? v : newIdx + added++;
            _addedDecoder[id] = tok;
            _addedEncoder[tok.Content] = id;
        }
        foreach (var tok in _addedEncoder.Keys) _trie.Add(tok);

        string? Content(string attr) => files.Specials.GetValueOrDefault(attr)?.Content;
        BosToken = Content("bos_token");
        EosToken = Content("eos_token");
        UnkToken = Content("unk_token");
        PadToken = Content("pad_token");
        AdditionalSpecialTokens = files.AdditionalSpecialTokens.Select(t => t.Content).ToArray();
        var allSpecial = files.AllSpecialContents();
        foreach (var s in allSpecial) _specialIds.Add(ConvertTokenToId(s));
        _legacyAdded = new HashSet<string>(_addedEncoder.Keys.Where(k => !allSpecial.Contains(k)), StringComparer.Ordinal);
        foreach (var t in AdditionalSpecialTokens)
            if (ConvertTokenToId(t) >= _encoder.Count) _legacyAdded.Add(t);
    }

    /// <summary>
    /// Loads a tokenizer folder (<c>vocab.json</c>, <c>merges.txt</c>, <c>tokenizer_config.json</c>,
    /// <c>special_tokens_map.json</c>, <c>added_tokens.json</c>), or its <paramref name="subfolder"/> (<c>"tokenizer"</c>
    /// of a pipeline), from a local path or a Hub id (the Hugging Face cache, downloading when allowed:
    /// <see cref="PretrainedLocator"/>). Of <paramref name="options"/> only where the files come from matters.
    /// </summary>
    public static CLIPTokenizer FromPretrained(string idOrPath, string? subfolder = null, LoadOptions? options = null) =>
        new(TokenizerFiles.Read(PretrainedLocator.Resolve(idOrPath, subfolder, options)));

    /// <summary>The files a tokenizer folder may hold, as <see cref="SavePretrained"/> copies them.</summary>
    private static readonly string[] TokenizerFileNames =
        ["vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"];

    /// <summary>
    /// Writes the tokenizer into <paramref name="folder"/> (created if needed) by copying the files it was loaded
    /// from, so that it loads back identically here and in transformers.
    /// </summary>
    public void SavePretrained(string folder)
    {
        if (_addedAtRunTime.Count > 0)
            throw new DiffusersException(
                $"CLIPTokenizer.SavePretrained: the tokens added at run time ({string.Join(", ", _addedAtRunTime)}) would not be saved; " +
                $"save the tokenizer before adding them, or load the embeddings again after loading the saved copy")
            { FilePath = folder };
        Directory.CreateDirectory(folder);
        if (Path.GetFullPath(folder) == Path.GetFullPath(Folder)) return;
        foreach (var name in TokenizerFileNames)
        {
            string src = Path.Combine(Folder, name);
            if (File.Exists(src)) File.Copy(src, Path.Combine(folder, name), overwrite: true);
        }
    }

    /// <summary>The folder the tokenizer files were read from.</summary>
    public string Folder { get; }
    /// <summary><c>model_max_length</c> of tokenizer_config.json: the padded and truncated length (77).</summary>
    public int ModelMaxLength { get; }
    /// <summary><c>clean_up_tokenization_spaces</c>: Decode removes spaces before punctuation.</summary>
    public bool CleanUpTokenizationSpaces { get; }
    /// <summary><c>padding_side</c> of tokenizer_config.json: "right" (the default: pad after EOS) or "left".</summary>
    public string PaddingSide { get; }
    /// <summary><c>truncation_side</c> of tokenizer_config.json: "right" (the default: drop the last tokens) or "left".</summary>
    public string TruncationSide { get; }
    /// <summary>
    /// <c>split_special_tokens</c> of tokenizer_config.json (default false): when true, added and special tokens typed in
    /// the text are not cut out but tokenized as text.
    /// </summary>
    public bool SplitSpecialTokens { get; }
    /// <summary>The start-of-text token (<c>&lt;|startoftext|&gt;</c>).</summary>
    public string? BosToken { get; }
    /// <summary>The end-of-text token (<c>&lt;|endoftext|&gt;</c>).</summary>
    public string? EosToken { get; }
    /// <summary>The token that replaces what the vocabulary lacks.</summary>
    public string? UnkToken { get; }
    /// <summary>The padding token (<c>&lt;|endoftext|&gt;</c> for SD 1.x, <c>!</c> for SD 2.x).</summary>
    public string? PadToken { get; }
    /// <summary><c>additional_special_tokens</c>: tokens never split by the BPE.</summary>
    public IReadOnlyList<string> AdditionalSpecialTokens { get; }
    /// <summary>The id of <see cref="BosToken"/>, or null without one.</summary>
    public int? BosTokenId => BosToken is null ? null : ConvertTokenToId(BosToken);
    /// <summary>The id of <see cref="EosToken"/>, or null without one.</summary>
    public int? EosTokenId => EosToken is null ? null : ConvertTokenToId(EosToken);
    /// <summary>The id of <see cref="PadToken"/>, or null without one.</summary>
    public int? PadTokenId => PadToken is null ? null : ConvertTokenToId(PadToken);
    /// <summary>The id of <see cref="UnkToken"/>, or null without one.</summary>
    public int? UnkTokenId => UnkToken is null ? null : ConvertTokenToId(UnkToken);

    /// <summary>Size of <c>vocab.json</c> (transformers' <c>vocab_size</c>, added tokens not counted).</summary>
    public int VocabSize => _encoder.Count;

    /// <summary>The largest id the tokenizer can produce (vocabulary and added tokens).</summary>
    public int MaxTokenId => Math.Max(_encoder.Count == 0 ? -1 : _encoder.Values.Max(), _addedEncoder.Count == 0 ? -1 : _addedEncoder.Values.Max());

    /// <summary>Ids of every special token (bos, eos, unk, pad, additional).</summary>
    public IReadOnlyCollection<int> AllSpecialIds => _specialIds;

    /// <summary>
    /// The token strings of <paramref name="text"/>, without BOS/EOS (transformers' <c>tokenize</c>): the added tokens
    /// are cut out of the raw text first (<see cref="AddedTokenTrie"/>), each eating the spaces beside it as its
    /// <c>lstrip</c> / <c>rstrip</c> say and, when <c>single_word</c>, glued back to a neighbour that is not separated
    /// by a space; every piece that is not an added token is cleaned, pre-tokenised and BPE-merged.
    /// </summary>
    public List<string> Tokenize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var pieces = SplitSpecialTokens ? [text] : _trie.Split(text);
        for (int i = 0; i < pieces.Count; i++)
        {
            string piece = pieces[i];
            if (SplitSpecialTokens || !_addedEncoder.TryGetValue(piece, out int id)) continue;
            var spec = _addedDecoder[id];
            string? left = i > 0 ? pieces[i - 1] : null;
            string? right = i < pieces.Count - 1 ? pieces[i + 1] : null;
            if (spec.RStrip && !string.IsNullOrEmpty(right)) pieces[i + 1] = PyLStrip(right);
            if (spec.LStrip && !string.IsNullOrEmpty(left)) pieces[i - 1] = PyRStrip(left);
            // single_word: the neighbours as they were before the stripping decide, the stripped ones are glued to.
            if (spec.SingleWord && !string.IsNullOrEmpty(left) && left[^1] != ' ')
            {
                pieces[i - 1] += piece;
                pieces[i] = "";
            }
            else if (spec.SingleWord && !string.IsNullOrEmpty(right) && right[0] != ' ')
            {
                pieces[i + 1] = piece + pieces[i + 1];
                pieces[i] = "";
            }
        }
        var tokens = new List<string>();
        foreach (var piece in pieces)
        {
            if (piece.Length == 0) continue;
            if (!SplitSpecialTokens && _addedEncoder.ContainsKey(piece)) { tokens.Add(piece); continue; }
            string cleaned = ClipPreTokenizer.Clean(piece);
            foreach (var pre in ClipPreTokenizer.Split(cleaned))
                tokens.AddRange(_bpe.Apply(ByteLevelBpe.EncodeBytes(pre)));
        }
        return tokens;
    }

    /// <summary>The ids of <paramref name="text"/>, with BOS … EOS unless told otherwise; no truncation or padding.</summary>
    public int[] Encode(string text, bool addSpecialTokens = true)
    {
        var ids = Tokenize(text).Select(ConvertTokenToId);
        if (!addSpecialTokens) return ids.ToArray();
        return [RequireId(BosToken, "bos_token"), .. ids, RequireId(EosToken, "eos_token")];
    }

    /// <summary>
    /// <c>tokenizer(prompts, padding=…, max_length=…, truncation=…)</c>: BOS + tokens + EOS per prompt, cut to
    /// <paramref name="maxLength"/> (default <see cref="ModelMaxLength"/>) keeping BOS and EOS (the last tokens
    /// dropped, or the first ones with <see cref="TruncationSide"/> "left"), then padded with the pad token after EOS
    /// (before BOS with <see cref="PaddingSide"/> "left"). Truncated prompts are listed in
    /// <see cref="CLIPTokenizerOutput.Warnings"/>; so is a prompt that cannot be cut because a max_length of 2 leaves no
    /// room for any token: transformers then logs an error and leaves it whole, and so does this.
    /// </summary>
    public CLIPTokenizerOutput Call(IReadOnlyList<string> prompts, PaddingStrategy padding = PaddingStrategy.MaxLength,
        int? maxLength = null, bool truncation = true)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        int max = maxLength ?? ModelMaxLength;
        if (maxLength is null && ModelMaxLength == int.MaxValue)
        {
            // No model_max_length in tokenizer_config.json: transformers neither truncates nor pads to a length.
            truncation = false;
            if (padding == PaddingStrategy.MaxLength) padding = PaddingStrategy.DoNotPad;
        }
        if ((truncation || padding == PaddingStrategy.MaxLength) && max < 2)
            throw new ArgumentOutOfRangeException(nameof(maxLength), max, "max_length must leave room for BOS and EOS (at least 2)");
        int bos = RequireId(BosToken, "bos_token"), eos = RequireId(EosToken, "eos_token");

        var rows = new List<long>[prompts.Count];
        var removed = new int[prompts.Count][];
        var warnings = new List<string>();
        for (int i = 0; i < prompts.Count; i++)
        {
            var ids = Encode(prompts[i], addSpecialTokens: false);
            removed[i] = [];
            if (truncation && ids.Length + 2 > max)
            {
                int toRemove = ids.Length + 2 - max;
                if (ids.Length > toRemove)
                {
                    bool left = TruncationSide == "left";
                    removed[i] = left ? ids[..toRemove] : ids[^toRemove..];
                    ids = left ? ids[toRemove..] : ids[..^toRemove];
                    warnings.Add("The following part of your input was truncated because CLIP can only handle sequences up to " +
                                 $"{max} tokens: {Decode(removed[i])}");
                }
                else
                {
                    warnings.Add($"We need to remove {toRemove} to truncate the input but the first sequence has a length {ids.Length}.");
                }
            }
            rows[i] = [bos, .. ids.Select(x => (long)x), eos];
        }

        int target = padding switch
        {
            PaddingStrategy.MaxLength => max,
            PaddingStrategy.Longest => rows.Length == 0 ? 0 : rows.Max(r => r.Count),
            _ => 0,
        };
        long pad = 0;
        if (padding != PaddingStrategy.DoNotPad && rows.Any(r => r.Count < target))
            pad = PadToken is null
                ? throw new DiffusersException($"{Folder}: asked to pad but the tokenizer has no pad_token")
                : ConvertTokenToId(PadToken);
        var inputIds = new long[rows.Length][];
        var mask = new long[rows.Length][];
        for (int i = 0; i < rows.Length; i++)
        {
            int n = rows[i].Count, len = Math.Max(n, target);
            int first = PaddingSide == "left" ? len - n : 0;   // where the tokens start
            inputIds[i] = new long[len];
            mask[i] = new long[len];
            for (int j = 0; j < len; j++)
            {
                bool token = j >= first && j < first + n;
                inputIds[i][j] = token ? rows[i][j - first] : pad;
                mask[i][j] = token ? 1 : 0;
            }
        }
        return new CLIPTokenizerOutput(inputIds, mask, removed, warnings);
    }

    /// <summary>One prompt: <see cref="Call(IReadOnlyList{string}, PaddingStrategy, int?, bool)"/> with a batch of one.</summary>
    public CLIPTokenizerOutput Call(string prompt, PaddingStrategy padding = PaddingStrategy.MaxLength, int? maxLength = null, bool truncation = true) =>
        Call([prompt], padding, maxLength, truncation);

    /// <summary>The id of a token string (added tokens first, then the vocabulary, else the unk token's id).</summary>
    public int ConvertTokenToId(string token)
    {
        if (_addedEncoder.TryGetValue(token, out int id)) return id;
        if (_encoder.TryGetValue(token, out id)) return id;
        if (UnkToken is not null && _encoder.TryGetValue(UnkToken, out id)) return id;
        throw new DiffusersException($"{Folder}: token '{token}' is not in the vocabulary and there is no unk_token in it");
    }

    /// <summary>Token strings of ids (transformers' <c>convert_ids_to_tokens</c>).</summary>
    public List<string> ConvertIdsToTokens(IEnumerable<int> ids, bool skipSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var tokens = new List<string>();
        foreach (int id in ids)
        {
            if (skipSpecialTokens && _specialIds.Contains(id)) continue;
            if (_addedDecoder.TryGetValue(id, out var added)) tokens.Add(added.Content);
            else if (_decoder.TryGetValue(id, out var t)) tokens.Add(t);
            else throw new ArgumentOutOfRangeException(nameof(ids), id, $"token id {id} is not in the vocabulary of {Folder} ({_encoder.Count} tokens)");
        }
        return tokens;
    }

    /// <summary>
    /// transformers' slow <c>decode</c>: tokens joined, byte-level characters turned back into UTF-8 (invalid
    /// sequences become U+FFFD), <c>&lt;/w&gt;</c> read as a space, stripped, and (by default, from
    /// <c>clean_up_tokenization_spaces</c>) the spaces before punctuation and contractions removed.
    /// </summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false, bool? cleanUpTokenizationSpaces = null)
    {
        var tokens = ConvertIdsToTokens(ids, skipSpecialTokens);
        var subTexts = new List<string>();
        var current = new List<string>();
        foreach (var token in tokens)
        {
            if (_legacyAdded.Contains(token))
            {
                if (current.Count > 0)
                {
                    string s = ConvertTokensToString(current);
                    if (s.Length > 0) subTexts.Add(s);
                    current.Clear();
                }
                subTexts.Add(token);
            }
            else current.Add(token);
        }
        if (current.Count > 0) subTexts.Add(ConvertTokensToString(current));
        string text = string.Join(" ", subTexts);
        return cleanUpTokenizationSpaces ?? CleanUpTokenizationSpaces ? CleanUpTokenization(text) : text;
    }

    /// <inheritdoc cref="Decode(IEnumerable{int}, bool, bool?)"/>
    public string Decode(IEnumerable<long> ids, bool skipSpecialTokens = false, bool? cleanUpTokenizationSpaces = null)
    {
        ArgumentNullException.ThrowIfNull(ids);
        return Decode(ids.Select(id => id is >= int.MinValue and <= int.MaxValue ? (int)id
                : throw new ArgumentOutOfRangeException(nameof(ids), id, $"token id {id} is not in the vocabulary of {Folder} ({_encoder.Count} tokens)")),
            skipSpecialTokens, cleanUpTokenizationSpaces);
    }

    /// <summary>CLIP's <c>convert_tokens_to_string</c>.</summary>
    public string ConvertTokensToString(IEnumerable<string> tokens)
    {
        string joined = string.Concat(tokens);
        var bytes = new byte[joined.Length];
        for (int i = 0; i < joined.Length; i++)
        {
            char c = joined[i];
            int b = c < ByteLevelBpe.UnicodeToByte.Length ? ByteLevelBpe.UnicodeToByte[c] : -1;
            if (b < 0)
                throw new DiffusersException($"{Folder}: cannot decode character U+{(int)c:X4} of '{joined}': it is not a byte-level symbol");
            bytes[i] = (byte)b;
        }
        string text = Encoding.UTF8.GetString(bytes).Replace(ByteLevelBpe.EndOfWord, " ", StringComparison.Ordinal);
        return PyStrip(text);
    }

    /// <summary>transformers' <c>clean_up_tokenization</c>.</summary>
    public static string CleanUpTokenization(string s) => s
        .Replace(" .", ".", StringComparison.Ordinal).Replace(" ?", "?", StringComparison.Ordinal)
        .Replace(" !", "!", StringComparison.Ordinal).Replace(" ,", ",", StringComparison.Ordinal)
        .Replace(" ' ", "'", StringComparison.Ordinal).Replace(" n't", "n't", StringComparison.Ordinal)
        .Replace(" 'm", "'m", StringComparison.Ordinal).Replace(" 's", "'s", StringComparison.Ordinal)
        .Replace(" 've", "'ve", StringComparison.Ordinal).Replace(" 're", "'re", StringComparison.Ordinal);

    private int RequireId(string? token, string attr) =>
        token is null ? throw new DiffusersException($"{Folder}: the tokenizer has no {attr}") : ConvertTokenToId(token);

    private static Dictionary<string, int> ReadVocab(string path)
    {
        try
        {
            var vocab = JsonSerializer.Deserialize<Dictionary<string, int>>(ConfigJson.ReadText(path))
                   ?? throw new ConfigException($"{path}: the vocabulary is JSON null") { FilePath = path };
            foreach (var (token, id) in vocab)
                if (id < 0)
                    throw new ConfigException($"{path}: token '{Printable.Text(token, 40)}' has the negative id {id}") { FilePath = path, Key = token };
            return vocab;
        }
        catch (JsonException e)
        {
            throw new ConfigException($"{path}: not a JSON object of token → id: {e.Message}", e) { FilePath = path };
        }
    }

    private static bool IsPySpace(char c) => char.IsWhiteSpace(c) || c is >= '\x1c' and <= '\x1f';
    private static string PyStrip(string s) => PyRStrip(PyLStrip(s));
    private static string PyLStrip(string s) { int i = 0; while (i < s.Length && IsPySpace(s[i])) i++; return s[i..]; }
    private static string PyRStrip(string s) { int j = s.Length; while (j > 0 && IsPySpace(s[j - 1])) j--; return s[..j]; }
}
