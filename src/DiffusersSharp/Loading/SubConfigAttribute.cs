namespace DiffusersSharp.Loading;

/// <summary>
/// Marks a config record that transformers also reads out of a composite model's config: when the file's
/// <c>model_type</c> is <see cref="CompositeModelType"/>, <see cref="ConfigJson.Parse{T}"/> reads the record from the
/// file's <see cref="Key"/> object alone and drops the composite's own keys, as transformers 4.36's
/// <c>CLIPTextConfig.from_pretrained</c> does with a <c>CLIPModel</c> config (<c>"model_type": "clip"</c>: it takes
/// <c>config_dict["text_config"]</c>). A composite config without that object is a <see cref="ConfigException"/>.
/// </summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class SubConfigAttribute(string compositeModelType, string key) : Attribute
{
    /// <summary>The composite config's <c>model_type</c> (<c>"clip"</c>).</summary>
    public string CompositeModelType { get; } = compositeModelType;

    /// <summary>The key of the sub-config inside it (<c>"text_config"</c>).</summary>
    public string Key { get; } = key;
}
