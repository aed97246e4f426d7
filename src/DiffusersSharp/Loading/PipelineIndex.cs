using System.Text.Json;

namespace DiffusersSharp.Loading;

/// <summary>One component entry of <c>model_index.json</c>: <c>"unet": ["diffusers", "UNet2DModel"]</c>,
/// or <c>[null, null]</c> for a component the pipeline was saved without.</summary>
public sealed record PipelineComponent(string Name, string? Library, string? ClassName)
{
    /// <summary>True for <c>[null, null]</c>: the slot exists but holds nothing (e.g. no safety checker).</summary>
    public bool IsEmpty => Library is null && ClassName is null;
}

/// <summary>
/// A pipeline folder's <c>model_index.json</c>: <c>_class_name</c> (the pipeline class), <c>_diffusers_version</c>,
/// one <c>name: [library, class]</c> entry per component (each component lives in the subfolder of that
/// name), and any other keys as pipeline options (<c>requires_safety_checker</c>, <c>_name_or_path</c>, ...).
/// </summary>
public sealed class PipelineIndex
{
    /// <summary>The pipeline index's file name in a pipeline folder.</summary>
    public const string FileName = "model_index.json";

    /// <summary>The path of the <c>model_index.json</c> read.</summary>
    public required string Path { get; init; }
    /// <summary>
    /// <c>_class_name</c>: the pipeline class (<c>StableDiffusionPipeline</c>, <c>DDPMPipeline</c>, ...).
    /// </summary>
    public required string ClassName { get; init; }
    /// <summary><c>_diffusers_version</c>: the diffusers version that wrote the file.</summary>
    public string? DiffusersVersion { get; init; }
    /// <summary>Components in file order, <c>[null, null]</c> entries included.</summary>
    public required IReadOnlyList<PipelineComponent> Components { get; init; }
    /// <summary>Every key that is not a component and not <c>_class_name</c>/<c>_diffusers_version</c>.</summary>
    public required IReadOnlyDictionary<string, JsonElement> Options { get; init; }

    /// <summary>The component of that name, or null if the index has none (or it is <c>[null, null]</c>).</summary>
    public PipelineComponent? Component(string name) =>
        Components.FirstOrDefault(c => c.Name == name && !c.IsEmpty);

    /// <summary>The component of that name; a <see cref="ConfigException"/> naming the file if it is absent or empty.</summary>
    public PipelineComponent Require(string name) =>
        Component(name) ?? throw new ConfigException(
            $"{Path}: the pipeline has no '{name}' component (it has {string.Join(", ", Components.Where(c => !c.IsEmpty).Select(c => c.Name))})")
        { FilePath = Path, Key = name };

    /// <summary>Reads <c>model_index.json</c> from a file path or a pipeline folder.</summary>
    public static PipelineIndex Read(string fileOrFolder)
    {
        string path = Directory.Exists(fileOrFolder) ? System.IO.Path.Combine(fileOrFolder, FileName) : fileOrFolder;
        using var doc = ConfigJson.ReadDocument(path);
        return FromJson(doc.RootElement, path);
    }

    /// <summary>Parses model_index JSON text; <paramref name="source"/> names the file in errors.</summary>
    public static PipelineIndex Parse(string json, string source)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(ConfigJson.NormalizePythonLiterals(json),
                new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            string where = e.LineNumber is { } line ? $" (line {line + 1}, column {(e.BytePositionInLine ?? 0) + 1})" : "";
            throw new ConfigException($"{source}: invalid JSON{where}: {e.Message}", e) { FilePath = source };
        }
        using (doc) return FromJson(doc.RootElement, source);
    }

    private static PipelineIndex FromJson(JsonElement root, string path)
    {
        ConfigException Bad(string key, string what) => new($"{path}: {what}") { FilePath = path, Key = key };
        if (root.ValueKind != JsonValueKind.Object)
            throw Bad("", $"model_index.json must be a JSON object, not {root.ValueKind}");
        string? className = null, version = null;
        var components = new List<PipelineComponent>();
        var options = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (var p in root.EnumerateObject())
        {
            switch (p.Name)
            {
                case "_class_name":
                    className = p.Value.ValueKind == JsonValueKind.String && p.Value.GetString() is { Length: > 0 } s
                        ? s : throw Bad(p.Name, $"'_class_name' must be the pipeline class name (a non-empty string), not {Printable.Json(p.Value)}");
                    break;
                case "_diffusers_version":
                    version = p.Value.ValueKind == JsonValueKind.String
                        ? p.Value.GetString() : throw Bad(p.Name, $"'_diffusers_version' must be a string, not {Printable.Json(p.Value)}");
                    break;
                default:
                    if (p.Value.ValueKind == JsonValueKind.Array && !p.Name.StartsWith('_'))
                        components.Add(ParseComponent(p, Bad));
                    else
                        options[p.Name] = p.Value.Clone();
                    break;
            }
        }
        if (className is null)
            throw Bad("_class_name", "'_class_name' is missing: this is not a diffusers pipeline index");
        return new PipelineIndex { Path = path, ClassName = className, DiffusersVersion = version, Components = components, Options = options };
    }

    private static PipelineComponent ParseComponent(JsonProperty p, Func<string, string, ConfigException> bad)
    {
        if (!IsFolderName(p.Name))
            throw bad(p.Name,
                $"component name '{Printable.Text(p.Name)}' is not a folder name: a component lives in the model folder's subfolder of its name, so it cannot be empty, '.', '..', hold '/', '\\' or control characters");
        var a = p.Value;
        string? Item(int i) => a[i].ValueKind switch
        {
            JsonValueKind.String => a[i].GetString(),
            JsonValueKind.Null => null,
            _ => throw bad(p.Name, $"component '{Printable.Text(p.Name)}' must be [library, class] or [null, null], not {Printable.Json(a)}"),
        };
        if (a.GetArrayLength() != 2)
            throw bad(p.Name, $"component '{Printable.Text(p.Name)}' must be [library, class] or [null, null], not {Printable.Json(a)}");
        string? library = Item(0), cls = Item(1);
        if ((library is null) != (cls is null) || library == "" || cls == "")
            throw bad(p.Name, $"component '{Printable.Text(p.Name)}' must be [library, class] or [null, null], not {Printable.Json(a)}");
        return new PipelineComponent(p.Name, library, cls);
    }

    /// <summary>True for a plain folder name inside the model folder (no path separators, not '.' or '..').</summary>
    public static bool IsFolderName(string name) =>
        name.Length > 0 && name is not ("." or "..") && name.IndexOfAny(['/', '\\']) < 0 && !name.Any(char.IsControl)
        && !System.IO.Path.IsPathRooted(name) && name.IndexOfAny(System.IO.Path.GetInvalidFileNameChars()) < 0;
}
