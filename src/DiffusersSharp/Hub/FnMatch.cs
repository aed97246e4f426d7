using System.Collections.Concurrent;
using System.Text;
using System.Text.RegularExpressions;

namespace DiffusersSharp.Hub;

/// <summary>
/// Python's <c>fnmatch.fnmatch</c> on POSIX (case-sensitive; <c>*</c> also matches '/'), used for
/// allow/ignore patterns exactly as huggingface_hub's <c>filter_repo_objects</c> and diffusers use it.
/// </summary>
internal static class FnMatch
{
    private static readonly ConcurrentDictionary<string, Regex> Cache = new();

    public static bool IsMatch(string name, string pattern) =>
        Cache.GetOrAdd(pattern, p => new Regex(Translate(p), RegexOptions.Singleline | RegexOptions.CultureInvariant)).IsMatch(name);

    /// <summary><c>fnmatch.translate</c>: *, ?, [seq], [!seq]; everything else literal; anchored at both ends.</summary>
    public static string Translate(string pat)
    {
        var sb = new StringBuilder("^");
        int i = 0, n = pat.Length;
        while (i < n)
        {
            char c = pat[i++];
            if (c == '*') { sb.Append(".*"); while (i < n && pat[i] == '*') i++; }
            else if (c == '?') sb.Append('.');
            else if (c == '[')
            {
                int j = i;
                if (j < n && pat[j] == '!') j++;
                if (j < n && pat[j] == ']') j++;
                while (j < n && pat[j] != ']') j++;
                if (j >= n) { sb.Append("\\["); continue; }
                string stuff = pat[i..j].Replace("\\", "\\\\");
                i = j + 1;
                if (stuff.StartsWith('!')) stuff = "^" + stuff[1..];
                else if (stuff.StartsWith('^')) stuff = "\\" + stuff;
                sb.Append('[').Append(stuff.Replace("[", "\\[")).Append(']');
            }
            else sb.Append(Regex.Escape(c.ToString()));
        }
        return sb.Append("\\z").ToString();
    }

    /// <summary>A pattern that matches exactly <paramref name="name"/>.</summary>
    public static string Escape(string name) => name.Replace("[", "[[]").Replace("*", "[*]").Replace("?", "[?]");

    /// <summary><c>filter_repo_objects</c>: kept if it matches an allow pattern (when any) and no ignore pattern.</summary>
    public static IEnumerable<string> Filter(IEnumerable<string> items, IReadOnlyCollection<string>? allow, IReadOnlyCollection<string>? ignore)
    {
        foreach (var item in items)
        {
            if (allow is not null && !allow.Any(p => IsMatch(item, p))) continue;
            if (ignore is not null && ignore.Any(p => IsMatch(item, p))) continue;
            yield return item;
        }
    }
}
