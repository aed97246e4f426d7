namespace DiffusersSharp.Models.Lora;

/// <summary>What a LoRA load did: the adapter name, the layers patched per component, and the keys left out.</summary>
public sealed record LoraLoadResult(string AdapterName, IReadOnlyDictionary<string, int> LayersPatched, IReadOnlyList<string> IgnoredKeys)
{
    /// <summary>All layers patched.</summary>
    public int TotalLayers => LayersPatched.Values.Sum();
}
