namespace DiffusersSharp.Text;

public sealed partial class CLIPTokenizer
{
    /// <summary>
    /// transformers' <c>len(tokenizer)</c>: the vocabulary plus the added tokens that are not in it (the rows a text
    /// encoder's token embedding needs).
    /// </summary>
    public int Count => _encoder.Keys.Union(_addedEncoder.Keys).Count();

    /// <summary>transformers' <c>added_tokens_encoder</c>: every added token (special tokens included) → its id.</summary>
    public IReadOnlyDictionary<string, int> AddedTokensEncoder => _addedEncoder;

    /// <summary>Whether <paramref name="token"/> is in <c>get_vocab()</c> (the vocabulary or the added tokens).</summary>
    public bool ContainsToken(string token) => _encoder.ContainsKey(token) || _addedEncoder.ContainsKey(token);

    /// <summary>
    /// transformers' <c>add_tokens</c> (slow tokenizer, 4.36): each new, non-empty token becomes an added token (not
    /// special, no strip flags) with the next id after <see cref="Count"/>; from then on the text is split on it first, so
    /// it is always one token. Tokens already added, or empty, are skipped; a token already in the vocabulary keeps its
    /// id. Returns the number of new ids. Not thread-safe with other calls on this tokenizer.
    /// </summary>
    public int AddTokens(IEnumerable<string> tokens)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        int newIdx = Count, added = 0;
        foreach (var token in tokens)
        {
            ArgumentNullException.ThrowIfNull(token, nameof(tokens));
            if (token.Length == 0 || _addedEncoder.ContainsKey(token)) continue;
            int id = _encoder.TryGetValue(token, out int v) ? v : newIdx + added++;
            _addedDecoder[id] = new AddedTokenSpec(token, Special: false);
            _addedEncoder[token] = id;
            _legacyAdded.Add(token);
            _addedAtRunTime.Add(token);
            _trie.Add(token);
        }
        return added;
    }

    /// <inheritdoc cref="AddTokens(IEnumerable{string})"/>
    public int AddTokens(params string[] tokens) => AddTokens((IEnumerable<string>)tokens);
}
