using System.Collections.Concurrent;
using System.Text;

namespace DiffusersSharp.Text;

/// <summary>
/// CLIP's byte-level BPE (transformers' <c>CLIPTokenizer.bpe</c>): every UTF-8 byte of a pre-token is mapped to
/// a printable character (<see cref="ByteToUnicode"/>, GPT-2's <c>bytes_to_unicode</c>), the last symbol gets
/// the <c>&lt;/w&gt;</c> end-of-word suffix, and the lowest-ranked adjacent pair of <c>merges.txt</c> is merged
/// (all its occurrences, left to right) until no ranked pair is left. Results are cached per pre-token.
/// </summary>
internal sealed class ByteLevelBpe
{
    public const string EndOfWord = "</w>";

    /// <summary>byte → character, as GPT-2's <c>bytes_to_unicode()</c>.</summary>
    public static readonly char[] ByteToUnicode = BuildByteToUnicode();

    /// <summary>character → byte (the inverse map); -1 for characters outside it.</summary>
    public static readonly int[] UnicodeToByte = BuildUnicodeToByte();

    private readonly Dictionary<(string, string), int> _ranks;
    private readonly ConcurrentDictionary<string, string[]> _cache = new(StringComparer.Ordinal);

    public ByteLevelBpe(Dictionary<(string, string), int> ranks, IEnumerable<string> passThrough)
    {
        _ranks = ranks;
        // transformers seeds the cache with the two special tokens, which therefore get no "</w>".
        foreach (var t in passThrough) _cache[t] = [t];
    }

    public int MergeCount => _ranks.Count;

    private static char[] BuildByteToUnicode()
    {
        var map = new char[256];
        var printable = new bool[256];
        for (int b = '!'; b <= '~'; b++) printable[b] = true;
        for (int b = 0xA1; b <= 0xAC; b++) printable[b] = true;
        for (int b = 0xAE; b <= 0xFF; b++) printable[b] = true;
        int n = 0;
        for (int b = 0; b < 256; b++)
            map[b] = printable[b] ? (char)b : (char)(256 + n++);
        return map;
    }

    private static int[] BuildUnicodeToByte()
    {
        var inv = new int[512];
        Array.Fill(inv, -1);
        for (int b = 0; b < 256; b++) inv[ByteToUnicode[b]] = b;
        return inv;
    }

    /// <summary>The byte-level form of a string: one mapped character per UTF-8 byte.</summary>
    public static string EncodeBytes(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var chars = new char[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) chars[i] = ByteToUnicode[bytes[i]];
        return new string(chars);
    }

    /// <summary>Splits one byte-level pre-token into BPE symbols.</summary>
    public string[] Apply(string token)
    {
        if (_cache.TryGetValue(token, out var cached)) return cached;
        var result = Merge(token);
        _cache.TryAdd(token, result);
        return result;
    }

    private string[] Merge(string token)
    {
        if (token.Length == 0) return [];
        var word = new List<string>(token.Length);
        for (int i = 0; i < token.Length - 1; i++) word.Add(token[i].ToString());
        word.Add(token[^1] + EndOfWord);
        if (word.Count == 1) return [word[0]];

        while (true)
        {
            // The adjacent pair with the lowest merge rank.
            int bestRank = int.MaxValue;
            string? first = null, second = null;
            for (int i = 0; i < word.Count - 1; i++)
            {
                if (_ranks.TryGetValue((word[i], word[i + 1]), out int r) && r < bestRank)
                {
                    bestRank = r;
                    first = word[i];
                    second = word[i + 1];
                }
            }
            if (first is null) break;

            var merged = new List<string>(word.Count);
            int j = 0;
            while (j < word.Count)
            {
                if (j < word.Count - 1 && word[j] == first && word[j + 1] == second)
                {
                    merged.Add(first + second);
                    j += 2;
                }
                else
                {
                    merged.Add(word[j]);
                    j++;
                }
            }
            word = merged;
            if (word.Count == 1) break;
        }
        return word.ToArray();
    }

    /// <summary>
    /// Reads <c>merges.txt</c> as transformers does: the text is stripped, split on '\n', the first line (the
    /// <c>#version</c> header) dropped and at most 49152 - 256 - 2 merges kept; each line is split on
    /// whitespace into a pair.
    /// </summary>
    public static Dictionary<(string, string), int> ReadMerges(string path)
    {
        string text = File.ReadAllText(path, Encoding.UTF8).Trim();
        var lines = text.Split('\n');
        const int maxMerges = 49152 - 256 - 2;
        var ranks = new Dictionary<(string, string), int>();
        int count = Math.Min(lines.Length - 1, maxMerges);
        for (int i = 0; i < count; i++)
        {
            string line = lines[i + 1];
            var parts = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            // A line that is not two symbols can never match a pair (transformers keeps it as a useless
            // tuple); a repeated pair takes its last rank (a Python dict built from the list).
            if (parts.Length == 2) ranks[(parts[0], parts[1])] = i;
        }
        return ranks;
    }
}
