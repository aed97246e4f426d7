using System.IO.Compression;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace DiffusersSharp.Text;

/// <summary>
/// The OpenAI CLIP BPE vocabulary, shipped inside the library so that single-file checkpoints load offline: every
/// Stable Diffusion 1.x, 2.x and SDXL text encoder uses it (49,408 tokens). Only its 48,894 merges are embedded
/// (208 KB gzip); <c>vocab.json</c> is derived from them as CLIP builds it (the 256 byte symbols, the same with
/// <c>&lt;/w&gt;</c>, one token per merge, then <c>&lt;|startoftext|&gt;</c> and <c>&lt;|endoftext|&gt;</c>), which gives
/// exactly the ids of <c>openai/clip-vit-large-patch14</c>'s <c>vocab.json</c>. The tokenizers differ only in the pad
/// token: <c>&lt;|endoftext|&gt;</c> (SD 1.x, SDXL's first) or <c>!</c> (SD 2.x, SDXL's second).
/// </summary>
public static class ClipVocabulary
{
    /// <summary>CLIP's end-of-text token (also SD 1.x's padding token).</summary>
    public const string EndOfText = "<|endoftext|>";
    /// <summary>CLIP's start-of-text token.</summary>
    public const string StartOfText = "<|startoftext|>";
    private const string Resource = "DiffusersSharp.Text.clip-merges.txt.gz";
    private static readonly Lazy<string> Merges = new(ReadMerges);
    private static readonly object Gate = new();

    /// <summary>Where <see cref="Tokenizer"/> writes its folders: a folder per pad token under the system temp folder.</summary>
    public static string CacheFolder => Path.Combine(Path.GetTempPath(), "diffusers-sharp", "clip-tokenizer");

    /// <summary>
    /// A CLIP tokenizer of the shipped vocabulary with <paramref name="padToken"/> (model_max_length 77). Its files are
    /// written once into <see cref="CacheFolder"/> (the tokenizer reads a folder, and saves by copying it).
    /// </summary>
    public static CLIPTokenizer Tokenizer(string padToken = EndOfText)
    {
        string folder = Path.Combine(CacheFolder, padToken == EndOfText ? "pad-endoftext" : "pad-" + Convert.ToHexString(Encoding.UTF8.GetBytes(padToken)).ToLowerInvariant());
        lock (Gate)
        {
            if (!File.Exists(Path.Combine(folder, "tokenizer_config.json")))
            {
                string tmp = $"{folder}.{Guid.NewGuid():N}.tmp";
                WriteTokenizer(tmp, padToken);
                try { Directory.Move(tmp, folder); }
                catch (IOException) when (File.Exists(Path.Combine(folder, "tokenizer_config.json"))) { Directory.Delete(tmp, true); } // another process won
            }
        }
        return CLIPTokenizer.FromPretrained(folder, subfolder: null);
    }

    /// <summary>
    /// Writes a transformers CLIPTokenizer folder (<c>vocab.json</c>, <c>merges.txt</c>, <c>tokenizer_config.json</c>,
    /// <c>special_tokens_map.json</c>) with the shipped vocabulary and <paramref name="padToken"/>, as transformers 4.36's
    /// <c>save_pretrained</c> writes the Stable Diffusion tokenizers.
    /// </summary>
    public static void WriteTokenizer(string folder, string padToken = EndOfText)
    {
        var vocab = Vocabulary();
        if (!vocab.TryGetValue(padToken, out int padId))
            throw new ArgumentException($"the pad token '{padToken}' is not in the CLIP vocabulary", nameof(padToken));
        Directory.CreateDirectory(folder);
        var options = new JsonSerializerOptions { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        File.WriteAllText(Path.Combine(folder, "vocab.json"), JsonSerializer.Serialize(vocab, options), new UTF8Encoding(false));
        File.WriteAllText(Path.Combine(folder, "merges.txt"), Merges.Value, new UTF8Encoding(false));

        JsonObject Token(string content, bool normalized) => new()
        {
            ["content"] = content, ["lstrip"] = false, ["normalized"] = normalized, ["rstrip"] = false, ["single_word"] = false,
        };
        var added = new JsonObject();
        if (padToken != EndOfText) added[padId.ToString()] = WithSpecial(Token(padToken, normalized: false));
        added[vocab[StartOfText].ToString()] = WithSpecial(Token(StartOfText, normalized: true));
        added[vocab[EndOfText].ToString()] = WithSpecial(Token(EndOfText, normalized: true));
        var config = new JsonObject
        {
            ["added_tokens_decoder"] = added,
            ["bos_token"] = StartOfText,
            ["clean_up_tokenization_spaces"] = true,
            ["eos_token"] = EndOfText,
            ["errors"] = "replace",
            ["model_max_length"] = 77,
            ["pad_token"] = padToken,
            ["tokenizer_class"] = "CLIPTokenizer",
            ["unk_token"] = EndOfText,
        };
        var map = new JsonObject
        {
            ["bos_token"] = Token(StartOfText, true),
            ["eos_token"] = Token(EndOfText, true),
            ["pad_token"] = padToken,
            ["unk_token"] = Token(EndOfText, true),
        };
        File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), config.ToJsonString(options) + "\n");
        File.WriteAllText(Path.Combine(folder, "special_tokens_map.json"), map.ToJsonString(options) + "\n");

        static JsonObject WithSpecial(JsonObject o) { o["special"] = true; return o; }
    }

    /// <summary>token → id of the shipped vocabulary (CLIP's construction from the merges).</summary>
    public static Dictionary<string, int> Vocabulary()
    {
        var tokens = new List<string>(49408);
        var printableFirst = Enumerable.Range(0, 256).Select(b => ByteLevelBpe.ByteToUnicode[b])
            .OrderBy(c => c >= 256 ? 1 : 0).ThenBy(c => c).Select(c => c.ToString()).ToList();
        tokens.AddRange(printableFirst);
        tokens.AddRange(printableFirst.Select(s => s + ByteLevelBpe.EndOfWord));
        foreach (var line in Merges.Value.Trim().Split('\n').Skip(1))
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 2) tokens.Add(parts[0] + parts[1]);
        }
        tokens.Add(StartOfText);
        tokens.Add(EndOfText);
        var vocab = new Dictionary<string, int>(tokens.Count, StringComparer.Ordinal);
        for (int i = 0; i < tokens.Count; i++) vocab[tokens[i]] = i;
        return vocab;
    }

    private static string ReadMerges()
    {
        using var stream = typeof(ClipVocabulary).Assembly.GetManifestResourceStream(Resource)
            ?? throw new DiffusersException($"the library was built without its CLIP vocabulary resource '{Resource}'");
        using var gz = new GZipStream(stream, CompressionMode.Decompress);
        using var reader = new StreamReader(gz, Encoding.UTF8);
        return reader.ReadToEnd();
    }
}
