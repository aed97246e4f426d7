using DiffusersSharp.Loading;
using DiffusersSharp.Schedulers;

namespace DiffusersSharp.Tests.Support;

/// <summary>The keys a written config file holds, against the keys diffusers' class takes.</summary>
internal static class ConfigKeys
{
    /// <summary>The top-level keys of the config file at <paramref name="path"/> (read as the loaders read it), sorted.</summary>
    public static IEnumerable<string> TopLevel(string path)
    {
        using var doc = ConfigJson.ReadObject(path);
        return doc.RootElement.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal).ToList();
    }

    /// <summary>A scheduler class's config keys with the two bookkeeping ones and <paramref name="more"/>, sorted.</summary>
    public static IEnumerable<string> Scheduler(string className, params string[] more) =>
        SchedulerConfigs.KnownKeys(SchedulerFactory.ConfigType(className)).Concat(["_class_name", "_diffusers_version", .. more])
            .Distinct().Order(StringComparer.Ordinal);
}
