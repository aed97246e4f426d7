namespace DiffusersSharp.Text;

/// <summary>
/// transformers' <c>Trie</c> (tokenization_utils.py, 4.36): cuts the added tokens out of a text in one pass, on
/// code points (Python string characters). It is greedy and matches the longest token among the partial matches
/// that started at or before the first one to complete, and it keeps transformers' quirk: when an earlier partial match
/// fails on the character at which a later token completes, its look-ahead goes on from the character after that one,
/// so a cut may span a character that the token does not have (tokens <c>"&lt;wow!&gt;"</c> and <c>"!"</c> cut
/// <c>"&lt;wow!!&gt;"</c> as one piece that is not an added token). Not thread-safe while <see cref="Add"/> runs.
/// </summary>
internal sealed class AddedTokenTrie
{
    private sealed class Node
    {
        public readonly Dictionary<int, Node> Next = new();
        public bool End;
    }

    private readonly Node _root = new();

    /// <summary>Adds a token (idempotent; the empty string is ignored).</summary>
    public void Add(string word)
    {
        if (word.Length == 0) return;
        var node = _root;
        var (cps, _) = CodePoints(word);
        foreach (int c in cps)
        {
            if (!node.Next.TryGetValue(c, out var child)) node.Next[c] = child = new Node();
            node = child;
        }
        node.End = true;
    }

    /// <summary><c>Trie.split</c>: the text cut before and after every token found; no empty pieces.</summary>
    public List<string> Split(string text)
    {
        var (cps, at) = CodePoints(text);
        int n = cps.Length;
        var states = new List<(int Start, Node Ptr)>();   // partial matches, by start (Python's OrderedDict)
        var offsets = new List<int> { 0 };
        int skip = 0;
        var toRemove = new HashSet<int>();
        for (int current = 0; current < n; current++)
        {
            if (skip != 0 && current < skip) continue;
            int ch = cps[current];
            toRemove.Clear();
            bool reset = false;
            for (int si = 0; si < states.Count; si++)
            {
                var (start, ptr) = states[si];
                if (ptr.End)
                {
                    // A token ended just before `current`: look ahead from this and every earlier partial match
                    // for the longest token (an earlier one was already advanced past `current`, or failed on it).
                    int end = current;
                    foreach (var (lookStart, lookPtr0) in states)
                    {
                        var lookPtr = lookPtr0;
                        int lookahead;
                        if (lookStart > start) break;
                        if (lookStart < start) { lookahead = current + 1; end = current + 1; }
                        else { lookahead = current; end = current; }
                        int next = lookahead < n ? cps[lookahead] : -1;
                        if (lookPtr.End) { start = lookStart; end = lookahead; skip = lookahead; }
                        while (next >= 0 && lookPtr.Next.TryGetValue(next, out var child))
                        {
                            lookPtr = child;
                            lookahead++;
                            if (lookPtr.End) { start = lookStart; end = lookahead; skip = lookahead; }
                            if (lookahead == n) break;
                            next = cps[lookahead];
                        }
                    }
                    offsets.Add(start);
                    offsets.Add(end);
                    reset = true;
                    break;
                }
                if (ptr.Next.TryGetValue(ch, out var advanced)) states[si] = (start, advanced);
                else toRemove.Add(start);
            }
            if (reset) states.Clear();
            else if (toRemove.Count > 0) states.RemoveAll(s => toRemove.Contains(s.Start));
            if (current >= skip && _root.Next.TryGetValue(ch, out var first)) states.Add((current, first));
        }
        foreach (var (start, ptr) in states)
        {
            if (!ptr.End) continue;
            offsets.Add(start);
            offsets.Add(n);
            break;
        }

        // cut_text: offsets that go backwards or repeat are skipped.
        offsets.Add(n);
        var pieces = new List<string>();
        int from = 0;
        foreach (int to in offsets)
        {
            if (from >= to) continue;
            pieces.Add(text[at[from]..at[to]]);
            from = to;
        }
        return pieces;
    }

    /// <summary>
    /// The code points of a string (a lone surrogate counts as one, as in a Python string) and the UTF-16 offset of
    /// each, with the string's length appended.
    /// </summary>
    private static (int[] CodePoints, int[] Utf16At) CodePoints(string s)
    {
        var cps = new List<int>(s.Length);
        var at = new List<int>(s.Length + 1);
        for (int i = 0; i < s.Length; i++)
        {
            at.Add(i);
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                cps.Add(char.ConvertToUtf32(s[i], s[i + 1]));
                i++;
            }
            else cps.Add(s[i]);
        }
        at.Add(s.Length);
        return (cps.ToArray(), at.ToArray());
    }
}
