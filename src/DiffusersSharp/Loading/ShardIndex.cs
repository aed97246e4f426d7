using System.Text.Json;
using static TorchSharp.torch;

namespace DiffusersSharp.Loading;

/// <summary>
/// A sharded checkpoint's index (<c>diffusion_pytorch_model.safetensors.index.json</c>,
/// <c>model.safetensors.index.fp16.json</c>, ...): <c>{"metadata": {...}, "weight_map": {tensor: shard file}}</c>.
/// Shards are files in the index's folder; each is read once, and every tensor the map names must be in
/// the shard it is mapped to.
/// </summary>
internal static class ShardIndex
{
    public static Dictionary<string, string> ReadWeightMap(string indexPath)
    {
        using var doc = ConfigJson.ReadDocument(indexPath);
        ConfigException Bad(string what, string? key = null) => new($"{indexPath}: {what}") { FilePath = indexPath, Key = key };
        if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("weight_map", out var map))
            throw Bad("a shard index needs a \"weight_map\" object", "weight_map");
        if (map.ValueKind != JsonValueKind.Object)
            throw Bad($"\"weight_map\" must be an object of tensor name → shard file, not {map.ValueKind}", "weight_map");
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var p in map.EnumerateObject())
        {
            if (p.Value.ValueKind != JsonValueKind.String)
                throw Bad($"weight_map entry '{Printable.Text(p.Name)}' must be a file name string, not {Printable.Json(p.Value)}", p.Name);
            string shard = p.Value.GetString()!;
            if (shard.Length == 0 || shard != Path.GetFileName(shard) || shard is "." or ".." || shard.Contains('\\'))
                throw Bad($"weight_map entry '{Printable.Text(p.Name)}' names '{Printable.Text(shard)}', which is not a plain file name in the index's folder", p.Name);
            result[p.Name] = shard;
        }
        if (result.Count == 0) throw Bad("\"weight_map\" is empty", "weight_map");
        return result;
    }

    public static Dictionary<string, Tensor> Read(string indexPath) => Read(indexPath, WeightLoader.ReadFile);

    /// <summary>
    /// The index's tensors, each shard's read by <paramref name="readShard"/> (<see cref="WeightLoader.ReadFile"/>, or
    /// <see cref="SafetensorsWeights"/>' placeholders), with every check of the index. On failure the tensors read so far are
    /// disposed.
    /// </summary>
    public static Dictionary<string, Tensor> Read(string indexPath, Func<string, Dictionary<string, Tensor>> readShard)
    {
        var map = ReadWeightMap(indexPath);
        string folder = Path.GetDirectoryName(Path.GetFullPath(indexPath))!;
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var origin = new Dictionary<string, string>(StringComparer.Ordinal);
        try
        {
            foreach (var shard in map.Values.Distinct().OrderBy(s => s, StringComparer.Ordinal))
            {
                string shardPath = Path.Combine(folder, shard);
                if (!File.Exists(shardPath))
                    throw new WeightsException($"{indexPath}: shard '{Printable.Text(shard)}' is listed in weight_map but {shardPath} does not exist") { FilePath = indexPath };
                if (shard.EndsWith(".json", StringComparison.Ordinal))
                    throw new WeightsException($"{indexPath}: shard '{Printable.Text(shard)}' is not a weight file") { FilePath = indexPath };
                foreach (var (name, t) in readShard(shardPath))
                {
                    if (origin.TryGetValue(name, out var other))
                    {
                        t.Dispose();
                        throw new WeightsException($"{indexPath}: tensor '{Printable.Text(name)}' is in two shards, '{Printable.Text(other)}' and '{Printable.Text(shard)}'") { FilePath = indexPath, Key = name };
                    }
                    origin[name] = shard;
                    result[name] = t;
                }
            }
            foreach (var (name, shard) in map)
                if (!origin.TryGetValue(name, out var actual) || actual != shard)
                    throw new WeightsException(
                        $"{indexPath}: weight_map puts '{Printable.Text(name)}' in '{Printable.Text(shard)}', but " + (actual is null ? "no shard has it" : $"it is in '{Printable.Text(actual)}'"))
                    { FilePath = indexPath, Key = name };
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
        return result;
    }
}
