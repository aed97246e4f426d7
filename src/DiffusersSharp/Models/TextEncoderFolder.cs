using DiffusersSharp.Hub;
using DiffusersSharp.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// Reading a transformers model folder (<c>config.json</c> + <c>model.safetensors</c> or
/// <c>pytorch_model.bin</c>) for the CLIP text encoders.
/// </summary>
internal static class TextEncoderFolder
{
    /// <summary>transformers' non-persistent buffer, present in files written before 4.31: ignored as transformers does.</summary>
    public const string PositionIdsKey = "text_model.embeddings.position_ids";

    /// <summary>The text encoder folder of a local path or a Hub id (config.json + safetensors, else .bin weights).</summary>
    public static string Resolve(string pathOrId, string? subfolder, string what, string? variant, HubClient? hub, string? revision)
    {
        string v = variant is null ? "" : "." + variant;
        return ComponentSource.Resolve(pathOrId, subfolder, what, hub, revision, HasWeights,
            ["config.json", $"model{v}.safetensors", $"model.safetensors.index{v}.json", $"model{v}-*.safetensors"],
            ["config.json", $"pytorch_model{v}.bin", $"pytorch_model.bin.index{v}.json", $"pytorch_model{v}-*.bin"]);

        bool HasWeights(string folder) => File.Exists(Path.Combine(folder, "config.json")) && WeightCandidates(variant)
            .Any(n => File.Exists(Path.Combine(folder, n)));
    }

    /// <summary>transformers' weight file names, in order of preference.</summary>
    public static IEnumerable<string> WeightCandidates(string? variant) =>
        WeightLoader.CandidateNames("model", variant).Where(n => n.Contains(".safetensors", StringComparison.Ordinal))
            .Concat(WeightLoader.CandidateNames("pytorch_model", variant).Where(n => n.Contains(".bin", StringComparison.Ordinal)));

    public static CLIPTextConfig ReadConfig(string folder)
    {
        string path = Path.Combine(folder, "config.json");
        var config = ConfigJson.Read<CLIPTextConfig>(path);
        config.Validate(path);
        return config;
    }

    /// <summary>Loads the folder's weights into <paramref name="module"/> (strict), then moves it to dtype/device.</summary>
    public static void LoadWeights(TorchSharp.torch.nn.Module module, string folder, string? variant, ScalarType? dtype, Device? device)
    {
        var names = WeightCandidates(variant).ToList();
        string file = names.Select(n => Path.Combine(folder, n)).FirstOrDefault(File.Exists)
            ?? throw new WeightsException($"No weights found in {folder}: looked for {string.Join(", ", names)}") { FilePath = folder };
        var weights = WeightLoader.ReadFile(file);
        try
        {
            if (weights.Remove(PositionIdsKey, out var positionIds)) positionIds.Dispose();
            WeightLoader.LoadInto(module, weights, file);
        }
        finally
        {
            foreach (var t in weights.Values) t.Dispose();
        }
        if (dtype is { } dt) module.to(dt);
        if (device is not null) module.to(device);
    }

    /// <summary>
    /// transformers' <c>save_pretrained(safe_serialization=True)</c>: <c>config.json</c> (the config's keys, unknown
    /// ones included) and <c>model.safetensors</c> (every weight, in the model's dtype, metadata format "pt").
    /// </summary>
    public static void Save(TorchSharp.torch.nn.Module module, CLIPTextConfig config, string folder)
    {
        Directory.CreateDirectory(folder);
        var node = System.Text.Json.Nodes.JsonNode.Parse(ConfigJson.Serialize(config))!.AsObject();
        foreach (var key in new[] { "_class_name", "_diffusers_version", "use_attention_mask" })
            if (node.TryGetPropertyValue(key, out var v) && v is null) node.Remove(key);
        string configPath = Path.Combine(folder, "config.json");
        File.WriteAllText(configPath + ".tmp", node.ToJsonString(ConfigJson.Options) + "\n");
        File.Move(configPath + ".tmp", configPath, overwrite: true);

        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, p) in module.named_parameters()) tensors[name] = p;
        foreach (var (name, b) in module.named_buffers()) tensors.TryAdd(name, b);
        SafetensorsFile.Save(Path.Combine(folder, "model.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" });
    }
}
