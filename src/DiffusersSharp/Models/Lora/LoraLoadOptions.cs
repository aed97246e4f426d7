using DiffusersSharp.Loading;

namespace DiffusersSharp.Models.Lora;

/// <summary>The options of a LoRA load (diffusers' <c>load_lora_weights</c> keyword arguments, and ours).</summary>
public sealed record LoraLoadOptions
{
    /// <summary>
    /// The adapter's name. Null = diffusers 0.25.1's single slot (<c>"default"</c>): a second load without a name
    /// replaces the first on every UNet layer both name and clears the text encoders the new file patches. Names stack:
    /// several named adapters add their updates (see <c>SetAdapters</c>).
    /// </summary>
    public string? AdapterName { get; init; }

    /// <summary>The adapter's weight (as <c>set_adapters(name, weight)</c>); 1.0 = as trained.</summary>
    public double Scale { get; init; } = 1.0;

    /// <summary>Leave out keys no layer of the model takes (a warning through <see cref="Log"/>) instead of refusing the file.</summary>
    public bool IgnoreUnknownKeys { get; init; }

    /// <summary>Where notes go (a module without alpha, ignored keys); null = nowhere.</summary>
    public Action<string>? Log { get; init; }

    /// <summary>
    /// The file to load from a folder or a Hub repository (diffusers' <c>weight_name</c>, e.g.
    /// <c>pytorch_lora_weights.safetensors</c>); null = <c>pytorch_lora_weights.*</c>, else the single other .safetensors
    /// or .bin file (<see cref="Loading.Lora.LoraFile.BestGuessWeightName"/>). A path given as a file ignores it.
    /// </summary>
    public string? WeightName { get; init; }

    /// <summary>The folder of the file in the folder or repository (diffusers' <c>subfolder</c>); null = its top level.</summary>
    public string? Subfolder { get; init; }

    /// <summary>
    /// How a Hub id is found and fetched: <see cref="LoadOptions.Revision"/>, <see cref="LoadOptions.CacheDir"/>,
    /// <see cref="LoadOptions.LocalFilesOnly"/>, <see cref="LoadOptions.Token"/>, <see cref="LoadOptions.Hub"/>,
    /// <see cref="LoadOptions.HubClientOptions"/> and <see cref="LoadOptions.DownloadProgress"/> (the rest is not read);
    /// null = <see cref="LoadOptions.Default"/> (the <c>main</c> revision, the environment's cache and Hub settings).
    /// </summary>
    public LoadOptions? Source { get; init; }
}
