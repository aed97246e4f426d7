using System.Globalization;
using System.Text;

namespace DiffusersSharp.Text;

/// <summary>
/// The text side of transformers' slow <c>CLIPTokenizer._tokenize</c> without ftfy (how the golden data and most
/// diffusers installs run it): the BERT <c>BasicTokenizer(strip_accents=False, do_split_on_punc=False)</c>
/// clean-up, then CLIP's pre-tokenisation pattern
/// <c>&lt;\|startoftext\|&gt;|&lt;\|endoftext\|&gt;|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+</c>.
/// Both work on Unicode code points (Python strings), not UTF-16 units, and on the character database of Python 3.11
/// (Unicode 14.0), under which the reference ran: characters assigned since are removed as unassigned. The pattern is compiled with the <c>regex</c>
/// module's IGNORECASE (simple case folding), which shows on lower-cased text in two places only: U+017F (ſ) matches
/// the <c>s</c> of the literals and contractions, and U+0345 (combining ypogegrammeni, which folds to the letter ι)
/// is in none of the three classes, so it matches nothing and is dropped.
/// </summary>
internal static class ClipPreTokenizer
{
    private static readonly string[] Literals = ["<|startoftext|>", "<|endoftext|>"];
    private static readonly string[] Contractions = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"];

    /// <summary>
    /// <c>" ".join(BasicTokenizer(strip_accents=False, do_split_on_punc=False).tokenize(text))</c>: control
    /// characters, NUL and U+FFFD removed, whitespace turned into spaces, spaces put around CJK ideographs,
    /// NFC, split on whitespace, each word lower-cased (Python's <c>str.lower</c>), joined with single spaces.
    /// </summary>
    public static string Clean(string text)
    {
        var sb = new StringBuilder(text.Length + 8);
        foreach (var r in text.EnumerateRunes())
        {
            int cp = r.Value;
            if (cp == 0 || cp == 0xFFFD || IsControl(r)) continue;
            if (IsBertWhitespace(r)) { sb.Append(' '); continue; }
            if (IsCjk(cp)) { sb.Append(' '); sb.Append(r.ToString()); sb.Append(' '); continue; }
            sb.Append(r.ToString());
        }
        string normalized = sb.ToString().Normalize(NormalizationForm.FormC);

        var words = new List<string>();
        var current = new StringBuilder();
        foreach (var r in normalized.EnumerateRunes())
        {
            if (IsPythonSpace(r))
            {
                if (current.Length > 0) { words.Add(current.ToString()); current.Clear(); }
            }
            else current.Append(r.ToString());
        }
        if (current.Length > 0) words.Add(current.ToString());
        return string.Join(" ", words.Select(PythonLower));
    }

    /// <summary><c>re.findall(pat, text)</c> with CLIP's pattern (ordered alternatives, tried at each position).</summary>
    public static List<string> Split(string text)
    {
        var runes = text.EnumerateRunes().ToArray();
        var result = new List<string>();
        int i = 0;
        while (i < runes.Length)
        {
            int len = MatchAt(runes, i);
            if (len == 0) { i++; continue; }
            var sb = new StringBuilder();
            for (int k = i; k < i + len; k++) sb.Append(runes[k].ToString());
            result.Add(sb.ToString());
            i += len;
        }
        return result;
    }

    /// <summary>Length in code points of the match at <paramref name="i"/>, 0 if none.</summary>
    private static int MatchAt(Rune[] s, int i)
    {
        foreach (var lit in Literals)
            if (StartsWithIgnoreCase(s, i, lit)) return lit.Length;
        foreach (var c in Contractions)
            if (StartsWithIgnoreCase(s, i, c)) return c.Length;
        if (IsLetter(s[i]))
        {
            int j = i + 1;
            while (j < s.Length && IsLetter(s[j])) j++;
            return j - i;
        }
        if (IsNumber(s[i])) return 1;
        if (IsOtherSymbol(s[i]))
        {
            int j = i + 1;
            while (j < s.Length && IsOtherSymbol(s[j])) j++;
            return j - i;
        }
        return 0;
    }

    /// <summary>
    /// <c>[^\s\p{L}\p{N}]</c> under IGNORECASE: the <c>regex</c> module leaves out of a negated class every character
    /// one of whose case variants is in it; of the characters neither space, letter nor number only U+0345 has a letter
    /// (ι) among its variants.
    /// </summary>
    private static bool IsOtherSymbol(Rune r) => !IsRegexSpace(r) && !IsLetter(r) && !IsNumber(r) && r.Value != 0x0345;

    private static bool StartsWithIgnoreCase(Rune[] s, int i, string ascii)
    {
        if (i + ascii.Length > s.Length) return false;
        for (int k = 0; k < ascii.Length; k++)
        {
            int c = s[i + k].Value;
            // IGNORECASE: simple case folding, under which U+017F (long s) is an 's' too.
            if (c != ascii[k] && Rune.ToLowerInvariant(s[i + k]).Value != ascii[k] && !(c == 0x017F && ascii[k] == 's')) return false;
        }
        return true;
    }

    private static bool IsLetter(Rune r) => Rune.GetUnicodeCategory(r) is UnicodeCategory.UppercaseLetter
        or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter or UnicodeCategory.ModifierLetter
        or UnicodeCategory.OtherLetter;

    private static bool IsNumber(Rune r) => Rune.GetUnicodeCategory(r) is UnicodeCategory.DecimalDigitNumber
        or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber;

    /// <summary><c>\s</c> of the <c>regex</c> module: the Unicode White_Space property.</summary>
    private static bool IsRegexSpace(Rune r)
    {
        int c = r.Value;
        return c is >= 0x09 and <= 0x0D or 0x20 or 0x85 or 0xA0 or 0x1680 or (>= 0x2000 and <= 0x200A)
            or 0x2028 or 0x2029 or 0x202F or 0x205F or 0x3000;
    }

    /// <summary>
    /// BERT's <c>_is_control</c>: categories C* except tab, newline and carriage return, with Python 3.11's character
    /// database: what Unicode 14.0 had not assigned is Cn (<see cref="Unicode14"/>), whatever .NET's newer tables say.
    /// </summary>
    private static bool IsControl(Rune r)
    {
        if (r.Value is '\t' or '\n' or '\r') return false;
        if (!Unicode14.IsAssigned(r.Value)) return true;
        return Rune.GetUnicodeCategory(r) is UnicodeCategory.Control or UnicodeCategory.Format
            or UnicodeCategory.Surrogate or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned;
    }

    /// <summary>BERT's <c>_is_whitespace</c>: space, tab, newline, carriage return, category Zs.</summary>
    private static bool IsBertWhitespace(Rune r) =>
        r.Value is ' ' or '\t' or '\n' or '\r' || Rune.GetUnicodeCategory(r) == UnicodeCategory.SpaceSeparator;

    /// <summary>Python's <c>str.isspace</c> (what <c>str.split()</c> splits on).</summary>
    private static bool IsPythonSpace(Rune r)
    {
        int c = r.Value;
        if (c is >= 0x09 and <= 0x0D or >= 0x1C and <= 0x20 or 0x85) return true;
        return Rune.GetUnicodeCategory(r) is UnicodeCategory.SpaceSeparator or UnicodeCategory.LineSeparator
            or UnicodeCategory.ParagraphSeparator;
    }

    /// <summary>BERT's <c>_is_chinese_char</c>: the CJK Unified Ideographs blocks.</summary>
    private static bool IsCjk(int cp) =>
        cp is >= 0x4E00 and <= 0x9FFF or >= 0x3400 and <= 0x4DBF or >= 0x20000 and <= 0x2A6DF
            or >= 0x2A700 and <= 0x2B73F or >= 0x2B740 and <= 0x2B81F or >= 0x2B820 and <= 0x2CEAF
            or >= 0xF900 and <= 0xFAFF or >= 0x2F800 and <= 0x2FA1F;

    /// <summary>
    /// Python's <c>str.lower</c>: the simple lower-case mapping, plus the two cases where Python differs from
    /// it: U+0130 (İ) becomes "i̇" (two code points), and Σ becomes final ς at the end of a word.
    /// </summary>
    internal static string PythonLower(string word)
    {
        var runes = word.EnumerateRunes().ToArray();
        var sb = new StringBuilder(word.Length);
        for (int i = 0; i < runes.Length; i++)
        {
            int c = runes[i].Value;
            if (c == 0x0130) sb.Append("i\u0307");
            else if (c == 0x03A3) sb.Append(IsFinalSigma(runes, i) ? 'ς' : 'σ');
            else sb.Append(Rune.ToLowerInvariant(runes[i]).ToString());
        }
        return sb.ToString();
    }

    // Final_Sigma: preceded by a cased letter (skipping case-ignorables), not followed by one.
    private static bool IsFinalSigma(Rune[] s, int i)
    {
        int j = i - 1;
        while (j >= 0 && IsCaseIgnorable(s[j])) j--;
        if (j < 0 || !IsCased(s[j])) return false;
        int k = i + 1;
        while (k < s.Length && IsCaseIgnorable(s[k])) k++;
        return k >= s.Length || !IsCased(s[k]);
    }

    private static bool IsCased(Rune r) => Rune.GetUnicodeCategory(r) is UnicodeCategory.UppercaseLetter
        or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter;

    private static bool IsCaseIgnorable(Rune r) =>
        r.Value is '\'' or '.' or ':' or '^' or '`' or 0xB7 or 0x2018 or 0x2019 or 0x2024 or 0x2027
        || Rune.GetUnicodeCategory(r) is UnicodeCategory.NonSpacingMark or UnicodeCategory.EnclosingMark
            or UnicodeCategory.Format or UnicodeCategory.ModifierLetter or UnicodeCategory.ModifierSymbol;
}
