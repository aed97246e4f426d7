using DiffusersSharp.Models.Lora;
using DiffusersSharp.Pipelines;

namespace DiffusersSharp.Generation;

/// <summary>
/// The LoRAs of a <see cref="GenerationService"/>: requests name LoRA files of one directory (by file name, with or
/// without <c>.safetensors</c>; never a path, so a client cannot make the server read other files). Each file is loaded
/// once, as a named adapter (its name), and stays loaded; before every run <see cref="ILoraPipeline.SetAdapters"/>
/// activates exactly the request's adapters with the request's weights, so a request without LoRAs runs the base model.
/// </summary>
internal sealed class GenerationLoras(ILoraPipeline pipeline, string? directory)
{
    private readonly HashSet<string> _loaded = new(StringComparer.Ordinal);

    /// <summary>The LoRA names the directory offers (its <c>*.safetensors</c> files without the extension), sorted; none without a directory.</summary>
    public IReadOnlyList<string> Available =>
        directory is null || !Directory.Exists(directory)
            ? []
            : Directory.EnumerateFiles(directory, "*.safetensors").Select(f => Path.GetFileNameWithoutExtension(f)!)
                .Order(StringComparer.Ordinal).ToList();

    /// <summary>Checks the names and weights of a request without loading anything (<c>loras: …</c> messages).</summary>
    public static void Validate(IReadOnlyDictionary<string, double>? loras, string? directory)
    {
        if (loras is not { Count: > 0 }) return;
        if (directory is null)
            throw new DiffusersException($"loras: this server has no LoRA directory (serve --lora-dir), so it cannot apply {string.Join(", ", loras.Keys)}");
        foreach (var (name, weight) in loras)
        {
            if (!double.IsFinite(weight) || Math.Abs(weight) > 100)
                throw new DiffusersException($"loras: the weight of '{name}' must be a finite number between -100 and 100, got {weight}");
            Resolve(name, directory);
        }
    }

    /// <summary>The file of LoRA <paramref name="name"/> in <paramref name="directory"/> (a full path); a path or an unknown name is refused.</summary>
    public static string Resolve(string name, string directory)
    {
        if (name.Length == 0 || name.Contains('/') || name.Contains('\\') || name.Contains("..") || Path.IsPathRooted(name))
            throw new DiffusersException($"loras: '{name}' is not a LoRA name (give the file name of a LoRA in the server's LoRA directory)");
        string stem = name.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) ? name[..^".safetensors".Length] : name;
        // a full path: should the file vanish before it is loaded, a relative 'loras/x.safetensors' would read as a Hub id
        string path = Path.GetFullPath(Path.Combine(directory, stem + ".safetensors"));
        if (!File.Exists(path))
            throw new DiffusersException($"loras: no LoRA named '{name}' in the server's LoRA directory ({directory})");
        return path;
    }

    /// <summary>Loads what the request names that is not loaded yet, then activates exactly its adapters with its weights.</summary>
    public void Apply(IReadOnlyDictionary<string, double>? loras)
    {
        Validate(loras, directory);
        var names = new List<string>();
        var weights = new List<double>();
        foreach (var (name, weight) in loras ?? new Dictionary<string, double>())
        {
            string path = Resolve(name, directory!);
            string adapter = Path.GetFileNameWithoutExtension(path);
            if (_loaded.Add(adapter))
            {
                try
                {
                    // local files only: a request's LoRA never reaches the Hub
                    pipeline.LoadLoraWeights(path, new LoraLoadOptions { AdapterName = adapter, Source = new() { LocalFilesOnly = true } });
                }
                catch (DiffusersException e)
                {
                    _loaded.Remove(adapter);
                    throw new DiffusersException($"loras: '{name}': {e.Message}");
                }
            }
            names.Add(adapter);
            weights.Add(weight);
        }
        if (_loaded.Count > 0) pipeline.SetAdapters(names, weights);
    }
}
