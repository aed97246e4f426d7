using System.Text.Json;
using System.Text.Json.Nodes;
using DiffusersSharp.Loading;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// Builds a scheduler from a config by its <c>_class_name</c> (what diffusers' pipeline loading does), or
/// any registered class from another scheduler's config (diffusers' <c>XScheduler.from_config(config)</c>).
/// </summary>
public static class SchedulerFactory
{
    private sealed record Entry(Type ConfigType, Func<DiffusersConfig, SchedulerBase> FromConfig);

    // One line per scheduler class (diffusers' class name → its config record and from_config).
    private static readonly Dictionary<string, Entry> Registry = new(StringComparer.Ordinal)
    {
        [DDPMScheduler.Name] = new(typeof(DDPMSchedulerConfig), DDPMScheduler.FromConfig),
        [DDIMScheduler.Name] = new(typeof(DDIMSchedulerConfig), DDIMScheduler.FromConfig),
        [PNDMScheduler.Name] = new(typeof(PNDMSchedulerConfig), PNDMScheduler.FromConfig),
        [EulerDiscreteScheduler.Name] = new(typeof(EulerDiscreteSchedulerConfig), EulerDiscreteScheduler.FromConfig),
        [LCMScheduler.Name] = new(typeof(LCMSchedulerConfig), LCMScheduler.FromConfig),
        [HeunDiscreteScheduler.Name] = new(typeof(HeunDiscreteSchedulerConfig), HeunDiscreteScheduler.FromConfig),
        [LMSDiscreteScheduler.Name] = new(typeof(LMSDiscreteSchedulerConfig), LMSDiscreteScheduler.FromConfig),
        [EulerAncestralDiscreteScheduler.Name] = new(typeof(EulerAncestralDiscreteSchedulerConfig), EulerAncestralDiscreteScheduler.FromConfig),
        [DPMSolverMultistepScheduler.Name] = new(typeof(DPMSolverMultistepSchedulerConfig), DPMSolverMultistepScheduler.FromConfig),
        [UniPCMultistepScheduler.Name] = new(typeof(UniPCMultistepSchedulerConfig), UniPCMultistepScheduler.FromConfig),
        [DPMSolverSinglestepScheduler.Name] = new(typeof(DPMSolverSinglestepSchedulerConfig), DPMSolverSinglestepScheduler.FromConfig),
        [DEISMultistepScheduler.Name] = new(typeof(DEISMultistepSchedulerConfig), DEISMultistepScheduler.FromConfig),
        [KDPM2DiscreteScheduler.Name] = new(typeof(KDPM2DiscreteSchedulerConfig), KDPM2DiscreteScheduler.FromConfig),
        [KDPM2AncestralDiscreteScheduler.Name] = new(typeof(KDPM2AncestralDiscreteSchedulerConfig), KDPM2AncestralDiscreteScheduler.FromConfig),
    };

    /// <summary>The diffusers class names this library implements, sorted.</summary>
    public static IReadOnlyList<string> KnownClasses => Registry.Keys.OrderBy(k => k, StringComparer.Ordinal).ToList();

    /// <summary>The config record type of <paramref name="className"/>.</summary>
    public static Type ConfigType(string className) => Get(className, "scheduler").ConfigType;

    /// <summary>A scheduler of the class named by the config's <c>_class_name</c>.</summary>
    public static SchedulerBase FromConfig(DiffusersConfig config)
    {
        string name = config.ClassName ?? throw new ConfigException(
            $"The scheduler config has no _class_name; known scheduler classes: {string.Join(", ", KnownClasses)}") { Key = "_class_name" };
        return FromConfig(name, config);
    }

    /// <summary>A <paramref name="className"/> scheduler from any scheduler config (diffusers' from_config).</summary>
    public static SchedulerBase FromConfig(string className, DiffusersConfig config) =>
        Get(className, "scheduler config").FromConfig(config);

    /// <summary>A scheduler from config JSON text (a file's text, or diffusers' in-memory config with <c>_use_default_values</c>).</summary>
    public static SchedulerBase FromJson(string json, string source = "scheduler config")
    {
        JsonNode? node;
        try { node = JsonNode.Parse(ConfigJson.NormalizePythonLiterals(json)); }
        catch (JsonException e) { throw new ConfigException($"{source}: invalid JSON: {e.Message}", e) { FilePath = source }; }
        if (node is not JsonObject obj)
            throw new ConfigException($"{source}: a scheduler config must be a JSON object") { FilePath = source };
        return Named(source, null, () => FromConfig(ParseTyped(obj, source)));
    }

    /// <summary>Reads a scheduler_config.json and builds the class its <c>_class_name</c> names.</summary>
    public static SchedulerBase FromPretrained(string path, string? subfolder = "scheduler")
    {
        string file = LocateConfig(path, subfolder);
        return Named(file, file, () => FromConfig(ReadConfigFile(file, null)));
    }

    /// <summary>
    /// Runs <paramref name="build"/>; a config error a scheduler's constructor raises (which knows its class, not where
    /// its config came from) gets <paramref name="source"/> in front.
    /// </summary>
    private static T Named<T>(string source, string? file, Func<T> build)
    {
        try
        {
            return build();
        }
        catch (ConfigException e) when (e.FilePath is null && !e.Message.StartsWith(source, StringComparison.Ordinal))
        {
            throw new ConfigException($"{source}: {e.Message}", e) { FilePath = file, Key = e.Key };
        }
    }

    /// <summary>
    /// Reads <c>path/subfolder/scheduler_config.json</c> (or <c>path/scheduler_config.json</c>, or the file itself;
    /// <paramref name="path"/> may be a Hub id present in the local Hugging Face cache)
    /// into the typed config of the class its <c>_class_name</c> names.
    /// </summary>
    public static SchedulerConfig ReadConfigFile(string path, string? subfolder = "scheduler")
    {
        string file = LocateConfig(path, subfolder);
        using var doc = ConfigJson.ReadDocument(file);
        if (doc.RootElement.ValueKind != JsonValueKind.Object)
            throw new ConfigException($"{file}: a scheduler config must be a JSON object") { FilePath = file };
        return ParseTyped(JsonObject.Create(doc.RootElement)!, file);
    }

    private static SchedulerConfig ParseTyped(JsonObject obj, string file)
    {
        string? name = obj["_class_name"] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;
        if (name is null)
            throw new ConfigException($"{file}: no \"_class_name\"; known scheduler classes: {string.Join(", ", KnownClasses)}") { FilePath = file, Key = "_class_name" };
        var entry = Get(name, file);
        var method = typeof(SchedulerConfigs).GetMethod(nameof(SchedulerConfigs.FromJsonObject),
            System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!.MakeGenericMethod(entry.ConfigType);
        try
        {
            return (SchedulerConfig)method.Invoke(null, [obj, file, null])!;
        }
        catch (System.Reflection.TargetInvocationException e) when (e.InnerException is DiffusersException d)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(d).Throw();
            throw;
        }
    }

    internal static string LocateConfig(string path, string? subfolder)
    {
        if (File.Exists(path)) return path;
        // A local folder, else a Hub id resolved from the local Hugging Face cache (its errors say how to get it).
        if (!Directory.Exists(path)) path = PretrainedLocator.Resolve(path);
        if (subfolder is { Length: > 0 })
        {
            string sub = Path.Combine(path, subfolder, "scheduler_config.json");
            if (File.Exists(sub)) return sub;
        }
        string root = Path.Combine(path, "scheduler_config.json");
        if (File.Exists(root)) return root;
        string expected = subfolder is { Length: > 0 } ? Path.Combine(path, subfolder, "scheduler_config.json") : root;
        throw new ConfigException($"No scheduler_config.json in {path}: expected {expected}") { FilePath = expected };
    }

    private static Entry Get(string className, string where) =>
        Registry.TryGetValue(className, out var e) ? e
        : throw new ConfigException(
            $"{where}: unknown scheduler class \"{className}\"; known scheduler classes: {string.Join(", ", KnownClasses)}")
        { Key = "_class_name" };
}
