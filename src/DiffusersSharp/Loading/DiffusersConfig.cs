using System.Text.Json;
using System.Text.Json.Serialization;

namespace DiffusersSharp.Loading;

/// <summary>
/// Base of every typed config (model <c>config.json</c>, <c>scheduler_config.json</c>). Derived records are
/// <c>sealed record</c>s whose property defaults equal diffusers' defaults and whose JSON names are
/// diffusers' snake_case keys. Keys the record does not know land in <see cref="Extra"/> and are written
/// back unchanged by <see cref="ConfigJson.Write{T}"/>, so a load/save round trip loses nothing.
/// </summary>
public abstract record DiffusersConfig
{
    /// <summary><c>_class_name</c>: the diffusers class the config belongs to.</summary>
    [JsonPropertyName("_class_name"), JsonPropertyOrder(-10)]
    public string? ClassName { get; init; }

    /// <summary><c>_diffusers_version</c>: the diffusers version that wrote the file.</summary>
    [JsonPropertyName("_diffusers_version"), JsonPropertyOrder(-9)]
    public string? DiffusersVersion { get; init; }

    /// <summary>Keys this record does not model, kept verbatim.</summary>
    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Extra { get; init; }

    /// <summary>
    /// Checks what only the JSON text shows, once <see cref="ConfigJson"/> has read the record from <paramref name="root"/>
    /// (the object it was read from): a form the record does not keep, such as a one-entry list, which reads as the same
    /// one-element array as a bare value. Throws a <see cref="ConfigException"/> naming <paramref name="source"/> and the key.
    /// </summary>
    internal virtual void CheckJsonForm(JsonElement root, string source)
    {
    }
}
