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
    /// <summary>One scheduler class: its config record, how to parse and convert a config into it, and its constructor.</summary>
    private sealed record Entry(Type ConfigType, Func<JsonObject, string, SchedulerConfig> Parse,
        Func<DiffusersConfig, string, SchedulerConfig> Convert, Func<SchedulerConfig, SchedulerBase> Create)
    {
        public static KeyValuePair<string, Entry> Of<TSelf, TConfig>(Func<TConfig, TSelf> create)
            where TSelf : SchedulerBase<TSelf, TConfig>
            where TConfig : SchedulerConfig, IBetaScheduleConfig, new() =>
            new(typeof(TSelf).Name, new Entry(typeof(TConfig),
                (obj, where) => SchedulerConfigs.FromJsonObject<TConfig>(obj, where, null),
                (other, cls) => other as TConfig ?? SchedulerConfigs.Convert<TConfig>(other, cls),
                c => create((TConfig)c)));
    }

    // One line per scheduler class (diffusers' class name → its config record and constructor).
    private static readonly Dictionary<string, Entry> Registry = new(
    [
        Entry.Of<DDPMScheduler, DDPMSchedulerConfig>(c => new(c)),
        Entry.Of<DDIMScheduler, DDIMSchedulerConfig>(c => new(c)),
        Entry.Of<PNDMScheduler, PNDMSchedulerConfig>(c => new(c)),
        Entry.Of<EulerDiscreteScheduler, EulerDiscreteSchedulerConfig>(c => new(c)),
        Entry.Of<LCMScheduler, LCMSchedulerConfig>(c => new(c)),
        Entry.Of<HeunDiscreteScheduler, HeunDiscreteSchedulerConfig>(c => new(c)),
        Entry.Of<LMSDiscreteScheduler, LMSDiscreteSchedulerConfig>(c => new(c)),
        Entry.Of<EulerAncestralDiscreteScheduler, EulerAncestralDiscreteSchedulerConfig>(c => new(c)),
        Entry.Of<DPMSolverMultistepScheduler, DPMSolverMultistepSchedulerConfig>(c => new(c)),
        Entry.Of<UniPCMultistepScheduler, UniPCMultistepSchedulerConfig>(c => new(c)),
        Entry.Of<DPMSolverSinglestepScheduler, DPMSolverSinglestepSchedulerConfig>(c => new(c)),
        Entry.Of<DEISMultistepScheduler, DEISMultistepSchedulerConfig>(c => new(c)),
        Entry.Of<KDPM2DiscreteScheduler, KDPM2DiscreteSchedulerConfig>(c => new(c)),
        Entry.Of<KDPM2AncestralDiscreteScheduler, KDPM2AncestralDiscreteSchedulerConfig>(c => new(c)),
        Entry.Of<IPNDMScheduler, IPNDMSchedulerConfig>(c => new(c)),
        Entry.Of<DDIMInverseScheduler, DDIMInverseSchedulerConfig>(c => new(c)),
        Entry.Of<DPMSolverMultistepInverseScheduler, DPMSolverMultistepInverseSchedulerConfig>(c => new(c)),
        Entry.Of<CMStochasticIterativeScheduler, CMStochasticIterativeSchedulerConfig>(c => new(c)),
    ], StringComparer.Ordinal);

    /// <summary>The diffusers class names this library implements, sorted.</summary>
    public static IReadOnlyList<string> KnownClasses => Registry.Keys.OrderBy(k => k, StringComparer.Ordinal).ToList();

    /// <summary>The config record type of <paramref name="className"/>.</summary>
    public static Type ConfigType(string className) => Get(className, "scheduler").ConfigType;

    /// <summary>A scheduler of the class named by the config's <c>_class_name</c>.</summary>
    public static SchedulerBase FromConfig(DiffusersConfig config)
    {
        string name = config.ClassName ?? throw new ConfigException(
            $"The scheduler config has no _class_name; known scheduler classes: {string.Join(", ", KnownClasses)}")
        { Key = "_class_name" };
        return FromConfig(name, config);
    }

    /// <summary>A <paramref name="className"/> scheduler from any scheduler config (diffusers' from_config).</summary>
    public static SchedulerBase FromConfig(string className, DiffusersConfig config)
    {
        var entry = Get(className, "scheduler config");
        return entry.Create(entry.Convert(config, className));
    }

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

    /// <summary>
    /// Reads the <c>scheduler_config.json</c> of <paramref name="idOrPath"/> (a folder, a Hub id, or the file itself) or of
    /// its <paramref name="subfolder"/>, and builds the class its <c>_class_name</c> names (<see cref="ReadConfigFile"/>).
    /// </summary>
    public static SchedulerBase FromPretrained(string idOrPath, string? subfolder = null, LoadOptions? options = null)
    {
        string file = LocateConfig(idOrPath, subfolder, options);
        return Named(file, file, () => FromConfig(ReadConfigFile(file, null, options)));
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
    /// Reads <c>idOrPath[/subfolder]/scheduler_config.json</c> into the typed config of the class its <c>_class_name</c>
    /// names. <paramref name="idOrPath"/> may be the file itself, a local folder or a Hub id (resolved by
    /// <see cref="PretrainedLocator"/> with <paramref name="options"/>: the Hugging Face cache, downloading when allowed).
    /// Without a <paramref name="subfolder"/>, a pipeline folder with no <c>scheduler_config.json</c> of its own is read
    /// from its <c>scheduler/</c> folder.
    /// </summary>
    public static SchedulerConfig ReadConfigFile(string idOrPath, string? subfolder = null, LoadOptions? options = null)
    {
        string file = LocateConfig(idOrPath, subfolder, options);
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
        // a bare NaN / Infinity, which ConfigJson.NormalizePythonLiterals marks as a string starting with \0
        if (name.StartsWith('\0'))
            throw new ConfigException($"{file}: config key '_class_name' must be a string, not the number {name[1..]}") { FilePath = file, Key = "_class_name" };
        return Get(name, file).Parse(obj, file);
    }

    private const string ConfigName = "scheduler_config.json";
    private const string PipelineSubfolder = "scheduler";

    private static string LocateConfig(string idOrPath, string? subfolder, LoadOptions? options)
    {
        if (string.IsNullOrEmpty(subfolder) && File.Exists(idOrPath)) return idOrPath;
        string folder = PretrainedLocator.Resolve(idOrPath, subfolder, options);
        string file = Path.Combine(folder, ConfigName);
        if (File.Exists(file)) return file;
        if (string.IsNullOrEmpty(subfolder))
        {
            string inPipeline = Path.Combine(folder, PipelineSubfolder, ConfigName);
            if (File.Exists(inPipeline)) return inPipeline;
            throw new ConfigException($"No {ConfigName} in {folder}: expected {file} (or {inPipeline} in a pipeline folder)") { FilePath = file };
        }
        throw new ConfigException($"No {ConfigName} in {folder}: expected {file}") { FilePath = file };
    }

    private static Entry Get(string className, string where) =>
        Registry.TryGetValue(className, out var e) ? e
        : throw new ConfigException(
            $"{where}: unknown scheduler class \"{className}\"; known scheduler classes: {string.Join(", ", KnownClasses)}")
        { Key = "_class_name" };
}
