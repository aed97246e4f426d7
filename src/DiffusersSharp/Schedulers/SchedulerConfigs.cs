using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using DiffusersSharp.Loading;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// diffusers' <c>ConfigMixin</c> semantics for scheduler configs: reading a file (absent keys take the class
/// defaults and are remembered as <see cref="SchedulerConfig.DefaultedKeys"/>) and <c>from_config</c> across
/// classes (keys the other config took by default are dropped, keys the new class does not know are kept aside
/// in <see cref="DiffusersConfig.Extra"/>, absent keys take the new class's defaults).
/// </summary>
public static class SchedulerConfigs
{
    /// <summary>Reads <c>path</c> (a scheduler_config.json) into <typeparamref name="T"/>.</summary>
    public static T Read<T>(string path) where T : SchedulerConfig
    {
        using var doc = ConfigJson.ReadDocument(path);
        if (doc.RootElement.ValueKind != JsonValueKind.Object)
            throw new ConfigException($"{path}: a scheduler config must be a JSON object") { FilePath = path };
        var obj = JsonObject.Create(doc.RootElement)!;
        return FromJsonObject<T>(obj, path, null);
    }

    /// <summary>Parses config JSON text (diffusers' in-memory form may carry <c>_use_default_values</c>).</summary>
    public static T Parse<T>(string json, string source = "scheduler config") where T : SchedulerConfig
    {
        JsonNode? node;
        try { node = JsonNode.Parse(ConfigJson.NormalizePythonLiterals(json)); }
        catch (JsonException e) { throw new ConfigException($"{source}: invalid JSON: {e.Message}", e) { FilePath = source }; }
        if (node is not JsonObject obj)
            throw new ConfigException($"{source}: a scheduler config must be a JSON object") { FilePath = source };
        return FromJsonObject<T>(obj, source, null);
    }

    /// <summary>
    /// diffusers' <c>from_config</c>: builds the config of class <paramref name="className"/> (record
    /// <typeparamref name="T"/>) from any other scheduler's config.
    /// </summary>
    public static T Convert<T>(DiffusersConfig other, string className) where T : SchedulerConfig
    {
        var obj = ToJsonObject(other);
        if (other is SchedulerConfig sc)
            foreach (var k in sc.DefaultedKeys) obj.Remove(k);
        return FromJsonObject<T>(obj, $"{other.ClassName ?? other.GetType().Name} config", className);
    }

    /// <summary>The config as a JSON object (its <see cref="DiffusersConfig.Extra"/> keys flattened in).</summary>
    public static JsonObject ToJsonObject(DiffusersConfig config)
    {
        string text = JsonSerializer.Serialize(config, config.GetType(), ConfigJson.Options);
        return (JsonObject)JsonNode.Parse(ConfigJson.NormalizePythonLiterals(text))!;
    }

    /// <summary>The JSON keys <typeparamref name="T"/> models (its snake_case property names).</summary>
    public static IReadOnlyList<string> KnownKeys<T>() where T : SchedulerConfig => KnownKeys(typeof(T));

    /// <summary>The JSON keys the config type <paramref name="t"/> models (its snake_case property names).</summary>
    public static IReadOnlyList<string> KnownKeys(Type t) =>
        t.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.GetCustomAttribute<JsonIgnoreAttribute>() is null && p.GetCustomAttribute<JsonExtensionDataAttribute>() is null)
            .Select(p => p.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name)
            .Where(n => n is not null && !n.StartsWith('_'))
            .Select(n => n!)
            .ToList();

    internal static T FromJsonObject<T>(JsonObject source, string where, string? className) where T : SchedulerConfig
    {
        var obj = (JsonObject)source.DeepClone();
        if (obj["_use_default_values"] is JsonArray used)
        {
            foreach (var k in used.Select(n => n?.GetValue<string>()).ToList())
                if (k is not null) obj.Remove(k);
        }
        obj.Remove("_use_default_values");
        if (className is not null) obj["_class_name"] = className;
        var present = obj.Select(kv => kv.Key).ToHashSet(StringComparer.Ordinal);
        var config = ConfigJson.Parse<T>(obj.ToJsonString(), where);
        SchedulerConfigValidation.Validate(config, where, File.Exists(where) ? where : null);
        var defaulted = KnownKeys<T>().Where(k => !present.Contains(k)).ToList();
        return config with { DefaultedKeys = defaulted };
    }
}
