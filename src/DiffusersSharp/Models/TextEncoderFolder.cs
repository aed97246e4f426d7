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
}
