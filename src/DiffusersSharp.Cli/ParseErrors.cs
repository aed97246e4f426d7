using System.CommandLine;
using System.CommandLine.Parsing;
using System.Text.RegularExpressions;

namespace DiffusersSharp.Cli;

/// <summary>
/// The command line's parse errors as one line naming the option, in words (<c>--steps: 'abc' is not an integer</c>)
/// instead of System.CommandLine's .NET type names, multi-line lists and appended help.
/// </summary>
internal static partial class ParseErrors
{
    /// <summary>The first error of <paramref name="result"/>, as the text after <c>error: </c>.</summary>
    public static string Describe(ParseResult result)
    {
        var e = result.Errors[0];
        string help = $"diffusers {CommandPath(result.CommandResult)}--help";
        if (e.SymbolResult is OptionResult { Option: var option })
        {
            var cannotParse = CannotParse().Match(e.Message);
            if (cannotParse.Success)
                return $"{option.Name}: '{cannotParse.Groups[1].Value}' is not {Expected(option.ValueType)} (see '{help}')";
            var notOneOf = NotOneOf().Match(e.Message);
            if (notOneOf.Success)
            {
                var allowed = Quoted().Matches(e.Message[notOneOf.Length..]).Select(m => m.Groups[1].Value);
                return $"{option.Name}: '{notOneOf.Groups[1].Value}' is not one of {string.Join(", ", allowed)}";
            }
            return $"{option.Name}: {OneLine(e.Message)} (see '{help}')";
        }
        return $"{OneLine(e.Message)} (see '{help}')";
    }

    /// <summary>The names of <paramref name="command"/> and its parents below the root, each followed by a space (<c>dataset cats </c>).</summary>
    private static string CommandPath(CommandResult command)
    {
        var names = new List<string>();
        for (SymbolResult? r = command; r is not null; r = r.Parent)
            if (r is CommandResult { Command: not RootCommand and { Name.Length: > 0 } c }) names.Add(c.Name);
        names.Reverse();
        return string.Concat(names.Select(n => n + " "));
    }

    /// <summary>What a value of <paramref name="type"/> is, in words.</summary>
    private static string Expected(Type type)
    {
        var t = Nullable.GetUnderlyingType(type) ?? type;
        return t == typeof(int) ? "an integer (up to 2147483647)"
            : t == typeof(long) ? "an integer"
            : t == typeof(double) || t == typeof(float) ? "a number"
            : t == typeof(bool) ? "true or false"
            : t.IsArray ? "a list of values"
            : "a valid value";
    }

    private static string OneLine(string s) => Whitespace().Replace(s, " ").Trim();

    [GeneratedRegex(@"^Cannot parse argument '(.*)' for option '.*' as expected type")]
    private static partial Regex CannotParse();

    [GeneratedRegex(@"^Argument '(.*)' not recognized\. Must be one of:")]
    private static partial Regex NotOneOf();

    [GeneratedRegex(@"'([^']*)'")]
    private static partial Regex Quoted();

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();
}
