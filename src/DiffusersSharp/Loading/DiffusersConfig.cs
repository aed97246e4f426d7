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
}
