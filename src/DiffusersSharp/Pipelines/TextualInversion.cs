using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// diffusers' <c>TextualInversionLoaderMixin</c> (loaders/textual_inversion.py, v0.25.1) for any (tokenizer, text
/// encoder) pair, so that a pipeline with two text encoders (SDXL) loads each its own embedding: the tokens are added
/// to the tokenizer (a multi-vector embedding of n vectors adds <c>T</c>, <c>T_1</c>, …, <c>T_(n-1)</c>), the text
/// encoder's token embedding grows (<c>resize_token_embeddings</c>) and the new rows are the file's vectors.
/// <see cref="MaybeConvertPrompt(string, CLIPTokenizer)"/> rewrites prompts so that <c>T</c> stands for all its vectors.
/// </summary>
public static class TextualInversion
{
    /// <summary>
    /// Reads the files as diffusers' <c>load_textual_inversion(paths, token=tokens, weight_name=…)</c> takes them: one token
    /// per path (null: the file's own), or none at all; each path a file, a folder or a Hub id
    /// (<see cref="TextualInversionEmbedding.Locate"/> with <paramref name="weightName"/>, <paramref name="subfolder"/>
    /// and <paramref name="options"/>).
    /// </summary>
    public static IReadOnlyList<TextualInversionEmbedding> Read(IReadOnlyList<string> paths, IReadOnlyList<string?>? tokens = null,
        string? weightName = null, string? subfolder = null, LoadOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(paths);
        if (paths.Count == 0) throw new DiffusersException("load_textual_inversion: no embedding files given");
        // diffusers repeats a list whose first token is None; here only "no token" is spread over the paths, so that a
        // list may name tokens for some files and leave the others to the file (null)
        var toks = tokens is null || tokens.Count == 0 || (tokens.Count == 1 && tokens[0] is null)
            ? Enumerable.Repeat<string?>(null, paths.Count).ToList()
            : tokens.ToList();
        if (toks.Count != paths.Count)
            throw new DiffusersException(
                $"You have passed a list of models of length {paths.Count}, and list of tokens of length {toks.Count} Make sure both lists have the same length.");
        var read = new List<TextualInversionEmbedding>();
        try
        {
            for (int i = 0; i < paths.Count; i++)
                read.Add(TextualInversionEmbedding.Read(TextualInversionEmbedding.Locate(paths[i], weightName, subfolder, options), toks[i]));
            return read;
        }
        catch
        {
            foreach (var e in read) e.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Loads <paramref name="embeddings"/> into one tokenizer / text encoder pair (everything is checked before anything
    /// changes). Returns the tokens added, in id order. Errors name the embedding's file and key.
    /// </summary>
    public static IReadOnlyList<string> Load(CLIPTokenizer tokenizer, ICLIPTextEncoder textEncoder,
        IReadOnlyList<TextualInversionEmbedding> embeddings) =>
        Load([(tokenizer, textEncoder, embeddings)])[0];

    /// <summary>
    /// Loads embeddings into several tokenizer / text encoder pairs at once (SDXL: its <c>clip_l</c> vectors into the
    /// first pair, its <c>clip_g</c> vectors into the second). Every pair is checked before any is changed. Returns the
    /// tokens added to each pair.
    /// </summary>
    public static IReadOnlyList<IReadOnlyList<string>> Load(
        IReadOnlyList<(CLIPTokenizer Tokenizer, ICLIPTextEncoder TextEncoder, IReadOnlyList<TextualInversionEmbedding> Embeddings)> pairs)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        using var scope = torch.NewDisposeScope();
        var plans = new List<(CLIPTokenizer Tokenizer, ICLIPTextEncoder TextEncoder, List<(string Token, Tensor Row)> Rows)>();
        try
        {
            foreach (var (tokenizer, encoder, embeddings) in pairs)
            {
                ArgumentNullException.ThrowIfNull(tokenizer);
                ArgumentNullException.ThrowIfNull(encoder);
                ArgumentNullException.ThrowIfNull(embeddings);
                if (plans.Any(p => ReferenceEquals(p.Tokenizer, tokenizer)))
                    throw new DiffusersException("load_textual_inversion: the same tokenizer is given for two text encoders; each pair needs its own");
                plans.Add((tokenizer, encoder, Plan(tokenizer, encoder, embeddings)));
            }
            var added = new List<IReadOnlyList<string>>();
            foreach (var (tokenizer, encoder, rows) in plans)
            {
                Apply(tokenizer, encoder, rows);
                added.Add(rows.Select(r => r.Token).ToList());
            }
            return added;
        }
        finally
        {
            foreach (var plan in plans) foreach (var (_, row) in plan.Rows) row.Dispose();
        }
    }

    // diffusers' _check_text_inv_inputs, _retrieve_tokens_and_embeddings, _extend_tokens_and_embeddings and the size check
    private static List<(string Token, Tensor Row)> Plan(CLIPTokenizer tokenizer, ICLIPTextEncoder encoder,
        IReadOnlyList<TextualInversionEmbedding> embeddings)
    {
        var tokens = embeddings.Select(e => e.Token).ToList();
        if (tokens.Distinct(StringComparer.Ordinal).Count() < tokens.Count)
            throw new DiffusersException($"You have passed a list of tokens that contains duplicates: {PyList(tokens)}");
        int width = encoder.Config.HiddenSize;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var e in embeddings)
        {
            string t = e.Token;
            if (tokenizer.ContainsToken(t))
                throw Error(e, $"Token {t} already in tokenizer vocabulary. Please choose a different token name or remove {t} and embedding from the tokenizer and text encoder.");
            if (tokenizer.ContainsToken($"{t}_1"))
            {
                var multi = new List<string> { t };
                for (int i = 1; tokenizer.AddedTokensEncoder.ContainsKey($"{t}_{i}"); i++) multi.Add($"{t}_{i}");
                throw Error(e, $"Multi-vector Token {PyList(multi)} already in tokenizer vocabulary. Please choose a different token name or remove the {PyList(multi)} and embedding from the tokenizer and text encoder.");
            }
            if (e.Width != width)
                throw Error(e, $"Loaded embeddings are of incorrect shape. Expected each textual inversion embedding to be of shape {width}, " +
                    $"but are {e.Width}: the text encoder's hidden_size is {width}, so this embedding was trained for another text encoder");
            for (int i = 0; i < e.VectorCount; i++)
            {
                string token = i == 0 ? t : $"{t}_{i}";
                if (!seen.Add(token) || (i > 0 && tokenizer.ContainsToken(token)))
                    throw Error(e, $"the multi-vector token {token} is already taken (by another embedding or the tokenizer); choose another token name");
            }
        }
        var rows = new List<(string, Tensor)>();
        foreach (var e in embeddings)
            for (int i = 0; i < e.VectorCount; i++)
                rows.Add((i == 0 ? e.Token : $"{e.Token}_{i}", e.Vectors[i]));
        return rows;
    }

    private static void Apply(CLIPTokenizer tokenizer, ICLIPTextEncoder encoder, List<(string Token, Tensor Row)> rows)
    {
        if (rows.Count == 0) return;
        using var noGrad = torch.no_grad();
        encoder.ResizeTokenEmbeddings(tokenizer.Count + rows.Count);
        using var weight = encoder.GetInputEmbeddings();
        foreach (var (token, row) in rows)
        {
            tokenizer.AddTokens(token);
            int id = tokenizer.ConvertTokenToId(token);
            using var dst = weight[id];
            dst.copy_(row);
        }
    }

    /// <summary>
    /// diffusers' <c>maybe_convert_prompt</c>: every added token <c>T</c> of the prompt that has <c>T_1</c>, <c>T_2</c>, …
    /// is replaced by <c>T T_1 T_2 …</c>, so that a multi-vector embedding contributes all its vectors.
    /// </summary>
    public static string MaybeConvertPrompt(string prompt, CLIPTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(tokenizer);
        var added = tokenizer.AddedTokensEncoder;
        foreach (var token in tokenizer.Tokenize(prompt).Distinct(StringComparer.Ordinal))
        {
            if (!added.ContainsKey(token)) continue;
            var replacement = new System.Text.StringBuilder(token);
            for (int i = 1; added.ContainsKey($"{token}_{i}"); i++) replacement.Append(' ').Append(token).Append('_').Append(i);
            if (replacement.Length != token.Length) prompt = prompt.Replace(token, replacement.ToString(), StringComparison.Ordinal);
        }
        return prompt;
    }

    /// <summary><see cref="MaybeConvertPrompt(string, CLIPTokenizer)"/> for each prompt.</summary>
    public static IReadOnlyList<string> MaybeConvertPrompt(IReadOnlyList<string> prompts, CLIPTokenizer tokenizer) =>
        prompts.Select(p => MaybeConvertPrompt(p, tokenizer)).ToList();

    private static DiffusersException Error(TextualInversionEmbedding e, string message) =>
        new($"{e.Source}, key '{e.Key}': {message}") { FilePath = e.Source, Key = e.Key };

    private static string PyList(IEnumerable<string> items) => "[" + string.Join(", ", items.Select(i => $"'{i}'")) + "]";
}
