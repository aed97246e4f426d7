using System.Text;
using System.Text.Json;

namespace DiffusersSharp.Loading;

/// <summary>
/// Text read from a file, made fit for a one-line error message: control characters escaped (a tensor name
/// holding <c>\n</c> or an ANSI escape is shown as <c>\n</c>, <c>\u001b</c>), long values cut, JSON in one line.
/// </summary>
public static class Printable
{
    /// <summary><paramref name="s"/> with control characters escaped, cut to <paramref name="maxLength"/> characters (then "…").</summary>
    public static string Text(string? s, int maxLength = 160)
    {
        if (s is null) return "null";
        var sb = new StringBuilder(Math.Min(s.Length, maxLength) + 8);
        foreach (char c in s)
        {
            if (sb.Length >= maxLength) { sb.Append('…'); break; }
            switch (c)
            {
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (char.IsControl(c) || c is '\u2028' or '\u2029' or '\u200e' or '\u200f' or '\u202e')
                        sb.Append($"\\u{(int)c:x4}");
                    else sb.Append(c);
                    break;
            }
        }
        return sb.ToString();
    }

    /// <summary>
    /// A JSON value as written in the file, on one line (line breaks and the indentation after them become one space),
    /// cut to <paramref name="maxLength"/> characters.
    /// </summary>
    public static string Json(JsonElement value, int maxLength = 80)
    {
        string raw = value.GetRawText();
        var sb = new StringBuilder(Math.Min(raw.Length, maxLength + 8));
        for (int i = 0; i < raw.Length && sb.Length <= maxLength; i++)
        {
            if (raw[i] is '\n' or '\r')
            {
                while (sb.Length > 0 && sb[^1] is ' ' or '\t') sb.Length--;
                while (i + 1 < raw.Length && char.IsWhiteSpace(raw[i + 1])) i++;
                if (sb.Length > 0 && sb[^1] is not ('[' or '{')) sb.Append(' ');
                continue;
            }
            sb.Append(raw[i]);
        }
        return Text(sb.ToString().TrimEnd(), maxLength);
    }
}
