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

    public static string Resolve(string path, string? subfolder, string what)
    {
        if (!Directory.Exists(path))
            throw new DiffusersException($"{what}.FromPretrained: '{path}' is not a folder") { FilePath = path };
        string folder = string.IsNullOrEmpty(subfolder) ? path : Path.Combine(path, subfolder);
        if (!Directory.Exists(folder))
            throw new DiffusersException($"{what}.FromPretrained: {path} has no '{subfolder}' folder") { FilePath = folder };
        return folder;
    }

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
        string v = variant is null ? "" : "." + variant;
        string weightsName = File.Exists(Path.Combine(folder, "model" + v + ".safetensors")) ? "model"
            : File.Exists(Path.Combine(folder, "pytorch_model" + v + ".bin")) ? "pytorch_model"
            : throw new WeightsException($"No weights found in {folder}: expected model{v}.safetensors or pytorch_model{v}.bin") { FilePath = folder };
        var weights = WeightLoader.ReadFolder(folder, weightsName, variant);
        try
        {
            if (weights.Remove(PositionIdsKey, out var positionIds)) positionIds.Dispose();
            WeightLoader.LoadInto(module, weights, Path.Combine(folder, weightsName + v + (weightsName == "model" ? ".safetensors" : ".bin")));
        }
        finally
        {
            foreach (var t in weights.Values) t.Dispose();
        }
        if (dtype is { } dt) module.to(dt);
        if (device is not null) module.to(device);
    }
}
