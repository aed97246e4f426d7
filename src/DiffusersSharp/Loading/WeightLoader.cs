using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Loading;

/// <summary>
/// Reads a model folder's weights and copies them into a module, strictly: every parameter and buffer of
/// the module must be present with the same shape, and every tensor of the file must be used. Errors name
/// the file, the key and both shapes.
/// </summary>
public static class WeightLoader
{
    /// <summary>
    /// Reads the weights of a bare model folder (<c>config.json</c> + weights): <c>{name}[.{variant}].safetensors</c>
    /// preferred over <c>{name}[.{variant}].bin</c>. Tensors come back on the CPU in their stored dtype.
    /// </summary>
    public static Dictionary<string, Tensor> ReadFolder(string folder, string weightsName = "diffusion_pytorch_model", string? variant = null)
    {
        string v = variant is null ? "" : "." + variant;
        string st = Path.Combine(folder, weightsName + v + ".safetensors");
        if (File.Exists(st))
        {
            using var f = SafetensorsFile.Open(st);
            return f.LoadAll();
        }
        throw new WeightsException($"No weights found in {folder}: expected {weightsName}{v}.safetensors") { FilePath = folder };
    }

    /// <summary>
    /// Copies <paramref name="weights"/> into the module's parameters and buffers (converted to each target's
    /// dtype and device). <paramref name="source"/> names the file(s) in error messages.
    /// </summary>
    public static void LoadInto(nn.Module module, IReadOnlyDictionary<string, Tensor> weights, string source)
    {
        var targets = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, p) in module.named_parameters()) targets[name] = p;
        foreach (var (name, b) in module.named_buffers()) targets.TryAdd(name, b);

        var missing = targets.Keys.Where(k => !weights.ContainsKey(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
        var unexpected = weights.Keys.Where(k => !targets.ContainsKey(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
        if (missing.Count > 0 || unexpected.Count > 0)
        {
            var parts = new List<string>();
            if (missing.Count > 0) parts.Add($"missing keys: {Summarize(missing)}");
            if (unexpected.Count > 0) parts.Add($"unexpected keys: {Summarize(unexpected)}");
            throw new WeightsException($"{source}: the weights do not match {module.GetType().Name}: {string.Join("; ", parts)}")
            { FilePath = source, Key = missing.Concat(unexpected).First() };
        }
        foreach (var (name, target) in targets)
        {
            var w = weights[name];
            if (!w.shape.SequenceEqual(target.shape))
                throw new WeightsException(
                    $"{source}: weight '{name}' has shape [{string.Join(", ", w.shape)}] but {module.GetType().Name} expects [{string.Join(", ", target.shape)}]")
                { FilePath = source, Key = name };
        }
        using (torch.no_grad())
        {
            foreach (var (name, target) in targets)
                target.copy_(weights[name]);
        }
    }

    private static string Summarize(List<string> keys) =>
        keys.Count <= 8 ? string.Join(", ", keys) : string.Join(", ", keys.Take(8)) + $", … ({keys.Count} in all)";
}
