using System.Text.Json;
using System.Text.Json.Nodes;
using DiffusersSharp.Schedulers;

namespace DiffusersSharp.Cli;

/// <summary>
/// <c>--scheduler</c> (a diffusers class name or a short alias) and <c>--scheduler-config key=value</c>: builds
/// the new scheduler from the pipeline's scheduler config the way diffusers' <c>from_config</c> does, then
/// applies the alias's settings and the user's overrides on top. Values are JSON where they parse as JSON,
/// else strings; "inf", "-inf" and "nan" are accepted for float keys.
/// </summary>
public static class SchedulerSelection
{
    /// <summary>Short names: alias → (class, settings applied before the user's overrides); the library's <see cref="SchedulerAliases.Aliases"/>.</summary>
    public static IReadOnlyDictionary<string, (string ClassName, (string Key, string Json)[] Settings)> Aliases => SchedulerAliases.Aliases;

    /// <summary>The class an alias or class name (any case) stands for, and the alias's settings.</summary>
    public static (string ClassName, (string Key, string Json)[] Settings) Resolve(string nameOrAlias)
    {
        if (!SchedulerAliases.TryResolve(nameOrAlias, out var cls, out var settings))
            throw new UserException("--scheduler: " + SchedulerAliases.UnknownMessage(nameOrAlias));
        return (cls, settings);
    }

    /// <summary>
    /// The scheduler to use: <paramref name="current"/> unchanged when nothing is asked, else a new one of the
    /// chosen class built from <paramref name="current"/>'s config plus the overrides.
    /// </summary>
    public static IScheduler Build(IScheduler current, string? nameOrAlias, IReadOnlyList<string> overrides)
    {
        if (nameOrAlias is null && overrides.Count == 0) return current;
        var (className, settings) = nameOrAlias is null ? (current.ClassName, []) : Resolve(nameOrAlias);
        if (!SchedulerFactory.KnownClasses.Contains(className))
            throw new UserException(
                $"--scheduler {nameOrAlias}: {className} is not implemented in this build; available: {string.Join(", ", SchedulerFactory.KnownClasses)}");

        var knownKeys = SchedulerConfigs.KnownKeys(SchedulerFactory.ConfigType(className));
        var obj = className == current.ClassName ? SchedulerConfigs.ToJsonObject((Loading.DiffusersConfig)current.Config) : FromConfigJson(className, current);
        foreach (var (key, json) in settings) obj[key] = JsonNode.Parse(json);
        foreach (var item in overrides)
        {
            int eq = item.IndexOf('=');
            if (eq <= 0)
                throw new UserException($"--scheduler-config '{item}': expected key=value, e.g. timestep_spacing=trailing");
            string key = item[..eq].Trim(), value = item[(eq + 1)..];
            if (key.StartsWith('_') || !knownKeys.Contains(key))
                throw new UserException(
                    $"--scheduler-config: unknown key '{key}' for {className}; its keys: {string.Join(", ", knownKeys)}");
            obj[key] = ParseValue(value);
        }
        obj["_class_name"] = className;
        try
        {
            return SchedulerFactory.FromJson(obj.ToJsonString(), $"--scheduler-config ({className})");
        }
        catch (ConfigException e)
        {
            // a value of the wrong JSON type: say what the key takes; any other rejection (an unknown option
            // value, a combination diffusers refuses) keeps the scheduler's own message
            var bad = e.Key is null || e.InnerException is not JsonException ? null
                : overrides.LastOrDefault(o => o.Split('=', 2)[0].Trim() == e.Key);
            if (bad is null) throw new UserException(e.Message);
            var type = SchedulerFactory.ConfigType(className);
            throw new UserException(
                $"--scheduler-config {bad}: {className} expects {Describe(type, e.Key!)} for '{e.Key}'");
        }
    }

    /// <summary>diffusers' <c>className.from_config(current.config)</c>'s config as JSON (the scheduler built for it is disposed).</summary>
    private static JsonObject FromConfigJson(string className, IScheduler current)
    {
        using var converted = SchedulerFactory.FromConfig(className, (Loading.DiffusersConfig)current.Config);
        return SchedulerConfigs.ToJsonObject((Loading.DiffusersConfig)converted.Config);
    }

    /// <summary>
    /// Puts the scheduler <paramref name="nameOrAlias"/> and <paramref name="overrides"/> ask for (<see cref="Build"/>) into a
    /// pipeline with <paramref name="assign"/> (<c>s =&gt; pipe.Scheduler = s</c>) in place of <paramref name="current"/>, and
    /// disposes <paramref name="current"/>: a pipeline leaves the scheduler an assignment replaces to the caller. Nothing
    /// happens when nothing is asked.
    /// </summary>
    public static void Swap(IScheduler current, string? nameOrAlias, IReadOnlyList<string> overrides, Action<IScheduler> assign)
    {
        var chosen = Build(current, nameOrAlias, overrides);
        if (ReferenceEquals(chosen, current)) return;
        assign(chosen);
        current.Dispose();
    }

    /// <summary>
    /// Refuses an option whose <c>step</c> argument (<paramref name="argument"/>, diffusers' name) the scheduler does not
    /// read, rather than ignoring it: the message names the classes that read it and the alias to choose one.
    /// </summary>
    public static void CheckReads(IScheduler scheduler, string argument, string option, bool given)
    {
        if (!given || scheduler.StepArguments.Contains(argument)) return;
        var readers = SchedulerFactory.KnownClasses.Where(c => Reads(c, argument)).ToList();
        string? alias = readers.Count == 0 ? null
            : Aliases.FirstOrDefault(a => a.Value.ClassName == readers[0] && a.Value.Settings.Length == 0).Key;
        throw new UserException(
            $"{option} applies to {(readers.Count == 0 ? "no scheduler" : string.Join(" and ", readers) + " only")}; " +
            $"the scheduler is {scheduler.ClassName}{(alias is null ? "" : $" (add --scheduler {alias})")}");
    }

    /// <summary>Whether a <paramref name="className"/> scheduler of the default config reads the step argument <paramref name="argument"/>.</summary>
    private static bool Reads(string className, string argument)
    {
        using var scheduler = SchedulerFactory.FromJson($"{{\"_class_name\": \"{className}\"}}");
        return scheduler.StepArguments.Contains(argument);
    }

    /// <summary>What a config key takes, in words, from the config record's property type.</summary>
    public static string Describe(Type configType, string key)
    {
        var prop = configType.GetProperties().FirstOrDefault(p =>
            p.GetCustomAttributes(typeof(System.Text.Json.Serialization.JsonPropertyNameAttribute), true)
                .Cast<System.Text.Json.Serialization.JsonPropertyNameAttribute>().Any(a => a.Name == key));
        if (prop is null) return "a valid value";
        var t = prop.PropertyType;
        bool nullable = Nullable.GetUnderlyingType(t) is not null
                        || new System.Reflection.NullabilityInfoContext().Create(prop).WriteState == System.Reflection.NullabilityState.Nullable;
        t = Nullable.GetUnderlyingType(t) ?? t;
        string what = t == typeof(bool) ? "true or false"
            : t == typeof(int) || t == typeof(long) ? "an integer"
            : t == typeof(double) || t == typeof(float) ? "a number (or \"inf\", \"-inf\", \"nan\")"
            : t == typeof(string) ? "a string"
            : t.IsArray ? $"a JSON list of {(t.GetElementType() == typeof(string) ? "strings" : "numbers")}"
            : "a valid value";
        return nullable ? what + " or null" : what;
    }

    /// <summary>JSON where the text parses as JSON, else the text as a string.</summary>
    public static JsonNode? ParseValue(string value)
    {
        try
        {
            return JsonNode.Parse(value);
        }
        catch (JsonException)
        {
            return JsonValue.Create(value);
        }
    }
}
