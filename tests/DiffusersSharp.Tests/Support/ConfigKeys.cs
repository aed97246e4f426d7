using System.Text.RegularExpressions;
using DiffusersSharp.Schedulers;

namespace DiffusersSharp.Tests.Support;

/// <summary>The keys a written config file holds, against the keys diffusers' class takes.</summary>
internal static partial class ConfigKeys
{
    /// <summary>The top-level keys of an indented config file (read by their lines: a JSON parser refuses the bare
    /// -Infinity diffusers writes), sorted.</summary>
    public static IEnumerable<string> TopLevel(string json) =>
        TopLevelKey().Matches(json).Select(m => m.Groups[1].Value).Order(StringComparer.Ordinal);

    /// <summary>A scheduler class's config keys with the two bookkeeping ones and <paramref name="more"/>, sorted.</summary>
    public static IEnumerable<string> Scheduler(string className, params string[] more) =>
        SchedulerConfigs.KnownKeys(SchedulerFactory.ConfigType(className)).Concat(["_class_name", "_diffusers_version", .. more])
            .Distinct().Order(StringComparer.Ordinal);

    [GeneratedRegex("^  \"([^\"]+)\":", RegexOptions.Multiline)]
    private static partial Regex TopLevelKey();
}
