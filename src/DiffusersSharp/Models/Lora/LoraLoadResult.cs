namespace DiffusersSharp.Models.Lora;

/// <summary>What a LoRA load did: the adapter name, the layers patched per component, and the keys left out.</summary>
public sealed record LoraLoadResult(string AdapterName, IReadOnlyDictionary<string, int> LayersPatched, IReadOnlyList<string> IgnoredKeys)
{
    /// <summary>The file read (a Hub id's file in the cache, a folder's chosen file).</summary>
    public string? File { get; init; }

    /// <summary>All layers patched.</summary>
    public int TotalLayers => LayersPatched.Values.Sum();
}
