using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Loading;

/// <summary>
/// Reads a model folder's weights and copies them into a module: every parameter and buffer of the module must be
/// present with the same shape. A tensor of the file that the module does not have is an error of
/// <see cref="LoadInto"/>; a model's <c>FromPretrained</c> (<see cref="ModelLoading.LoadWeights"/>) warns about such
/// tensors and leaves them out, as diffusers' <c>from_pretrained</c> does. Errors name the file, the key and both shapes.
/// </summary>
public static class WeightLoader
{
    /// <summary>
    /// Reads the weights of a bare model folder (<c>config.json</c> + weights), on the CPU in their stored
    /// dtype. Looks, in this order, for <c>{name}[.{variant}].safetensors</c>, the sharded
    /// <c>{name}.safetensors.index[.{variant}].json</c>, <c>{name}[.{variant}].bin</c> and
    /// <c>{name}.bin.index[.{variant}].json</c> (diffusers' and transformers' variant names); safetensors is
    /// preferred. When nothing is found the error lists every name looked for.
    /// </summary>
    public static Dictionary<string, Tensor> ReadFolder(string folder, string weightsName = "diffusion_pytorch_model", string? variant = null) =>
        ReadFile(FindWeights(folder, weightsName, variant));

    /// <summary>The names <see cref="FindWeights(string, CheckpointFormat, string?)"/> tries, in order of preference.</summary>
    public static IReadOnlyList<string> CandidateNames(string weightsName, string? variant)
    {
        if (string.IsNullOrEmpty(weightsName) || weightsName.IndexOfAny(['/', '\\']) >= 0)
            throw new WeightsException($"Invalid weights name '{weightsName}': expected a file name stem like 'diffusion_pytorch_model'");
        if (variant is not null && (variant.Length == 0 || variant.IndexOfAny(['/', '\\', '.']) >= 0))
            throw new WeightsException($"Invalid variant '{variant}': expected a name like 'fp16'");
        string v = variant is null ? "" : "." + variant;
        return
        [
            $"{weightsName}{v}.safetensors",
            $"{weightsName}.safetensors.index{v}.json",
            $"{weightsName}{v}.bin",
            $"{weightsName}.bin.index{v}.json",
        ];
    }

    /// <summary>
    /// The weight file (or shard index) of a model folder, by <see cref="CandidateNames"/>' preference.
    /// </summary>
    public static string FindWeights(string folder, string weightsName = "diffusion_pytorch_model", string? variant = null) =>
        FindWeights(folder, new CheckpointFormat(weightsName, weightsName, StampsDiffusersKeys: true), variant);

    /// <summary>
    /// The weight file (or shard index) of a model folder in <paramref name="format"/>, by
    /// <see cref="CheckpointFormat.WeightCandidates"/>' preference. When nothing is found the error lists every name
    /// looked for (and the files without the variant, when a <paramref name="variant"/> was asked for).
    /// </summary>
    public static string FindWeights(string folder, CheckpointFormat format, string? variant)
    {
        if (!Directory.Exists(folder))
            throw new WeightsException($"Model folder not found: {folder}") { FilePath = folder };
        var names = format.WeightCandidates(variant);
        foreach (var n in names)
        {
            string p = Path.Combine(folder, n);
            if (File.Exists(p)) return p;
        }
        string hint = "";
        if (variant is not null)
        {
            var plain = format.WeightCandidates(null).Where(n => File.Exists(Path.Combine(folder, n))).ToList();
            if (plain.Count > 0) hint = $" (there is {string.Join(", ", plain)}, without the '{variant}' variant: load it with variant null)";
        }
        throw new WeightsException($"No weights found in {folder}: looked for {string.Join(", ", names)}{hint}") { FilePath = folder };
    }

    /// <summary>
    /// Reads one weight file: <c>.safetensors</c>, a torch <c>.bin</c>, or a shard index (<c>*.index*.json</c>
    /// with a <c>weight_map</c> from tensor name to shard file in the same folder).
    /// </summary>
    public static Dictionary<string, Tensor> ReadFile(string path)
    {
        string file = Path.GetFileName(path);
        if (file.EndsWith(".json", StringComparison.Ordinal)) return ShardIndex.Read(path);
        if (file.EndsWith(".safetensors", StringComparison.Ordinal))
        {
            using var f = SafetensorsFile.Open(path);
            return f.LoadAll();
        }
        if (file.EndsWith(".bin", StringComparison.Ordinal) || file.EndsWith(".pt", StringComparison.Ordinal) || file.EndsWith(".pth", StringComparison.Ordinal))
            return TorchBinFile.LoadAll(path);
        throw new WeightsException($"{path}: unknown weight file type (expected .safetensors, .bin or a shard .index.json)") { FilePath = path };
    }

    /// <summary>
    /// Copies <paramref name="weights"/> into the module's parameters and buffers (converted to each target's
    /// dtype and device: F16/BF16/F32 stored weights load into a module of any float dtype). Legacy attention
    /// names are renamed first, as diffusers does (<see cref="ConvertDeprecatedAttentionNames"/>).
    /// <paramref name="source"/> names the file(s) in error messages.
    /// </summary>
    public static void LoadInto(nn.Module module, IReadOnlyDictionary<string, Tensor> weights, string source) =>
        LoadWith(module, weights, source, CopyWeight);

    /// <summary>
    /// <c>target.copy_(source)</c>, converting the dtype; a column-major 2-D target (a linear weight kept transposed,
    /// Models/LinearWeightLayout) from a row-major source of its shape is copied with both sides read transposed, so the
    /// destination is contiguous and libtorch takes its blocked transposing copy (a strided copy took 4× as long: 16.7
    /// against 3.9 ms for a 4096 × 1024 fp32 weight).
    /// </summary>
    internal static void CopyWeight(Tensor target, Tensor source)
    {
        if (IsColumnMajor(target) && !target.is_contiguous() && source.is_contiguous() && target.shape.SequenceEqual(source.shape))
        {
            using var cast = source.dtype == target.dtype ? source.alias() : source.to(target.dtype);
            using var dst = target.t();
            using var src = cast.t();
            dst.copy_(src);
            return;
        }
        target.copy_(source);
    }

    /// <summary>A 2-D tensor stored as its dense transpose (strides (1, rows)): how Models/LinearWeightLayout keeps fp32
    /// linear weights.</summary>
    internal static bool IsColumnMajor(Tensor t) => t.dim() == 2 && t.stride(0) == 1 && t.stride(1) == t.shape[0];

    /// <summary>
    /// <see cref="LoadInto(nn.Module, IReadOnlyDictionary{string, Tensor}, string)"/> with every check made on
    /// <paramref name="weights"/>' names, shapes and dtypes before anything is copied, then <paramref name="copy"/>
    /// (target, weight) per target under <c>no_grad</c> (<see cref="SafetensorsWeights.CopyInto"/> fills the target from a
    /// placeholder's file), then the non-finite check of the targets. <paramref name="storedDType"/> names a weight's
    /// stored dtype in messages (<see cref="SafetensorsWeights.StoredDType"/>: a placeholder's safetensors dtype where its
    /// torch dtype stands in for one TorchSharp has no type for); by default its torch dtype. Tensors the module does not
    /// have (after the legacy attention names are converted) are an error, unless <paramref name="warnUnexpected"/> is
    /// given: then, when every other check has passed, they get one warning through it (the file, their count and the
    /// first of them) and are not read, as diffusers 0.25.1's <c>from_pretrained</c> logs "Some weights of the model
    /// checkpoint were not used" and loads the rest. Missing tensors and shape mismatches stay errors.
    /// </summary>
    internal static void LoadWith(nn.Module module, IReadOnlyDictionary<string, Tensor> weights, string source, Action<Tensor, Tensor> copy,
        Func<Tensor, string>? storedDType = null, Action<string>? warnUnexpected = null)
    {
        var targets = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, p) in module.named_parameters()) targets[name] = p;
        foreach (var (name, b) in module.named_buffers()) targets.TryAdd(name, b);
        var renamed = ConvertDeprecatedAttentionNames(weights, targets.Keys.ToHashSet(StringComparer.Ordinal));

        var missing = targets.Keys.Where(k => !renamed.ContainsKey(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
        var unexpected = renamed.Keys.Where(k => !targets.ContainsKey(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
        if (missing.Count > 0 || (unexpected.Count > 0 && warnUnexpected is null))
        {
            var parts = new List<string>();
            if (missing.Count > 0) parts.Add($"missing keys: {Summarize(missing.Select(k => $"{Printable.Text(k)} {Shape(targets[k])}").ToList())}");
            if (unexpected.Count > 0) parts.Add($"unexpected keys: {Summarize(unexpected.Select(k => $"{Printable.Text(k)} {Shape(renamed[k])}").ToList())}");
            throw new WeightsException($"{source}: the weights do not match {module.GetType().Name}: {string.Join("; ", parts)}")
            { FilePath = source, Key = missing.Concat(unexpected).First() };
        }
        foreach (var (name, target) in targets)
        {
            var w = renamed[name];
            if (!w.shape.SequenceEqual(target.shape))
                throw new WeightsException(
                    $"{source}: weight '{name}' has shape {Shape(w)} but {module.GetType().Name} expects {Shape(target)}")
                { FilePath = source, Key = name };
            if (w.is_floating_point() != target.is_floating_point() && target.dtype != ScalarType.Bool)
                throw new WeightsException(
                    $"{source}: weight '{name}' is stored as {storedDType?.Invoke(w) ?? w.dtype.ToString()} but {module.GetType().Name} holds {target.dtype}")
                { FilePath = source, Key = name };
        }
        if (unexpected.Count > 0)
        {
            warnUnexpected!($"{source}: {unexpected.Count} weight(s) of the file are not in {module.GetType().Name} and were not loaded: " +
                Summarize(unexpected.Select(k => $"{Printable.Text(k)} {Shape(renamed[k])}").ToList()));
        }
        using (torch.no_grad())
        {
            foreach (var (name, target) in targets)
                copy(target, renamed[name]);
        }
        CheckFinite(targets, source, module.GetType().Name);
    }

    /// <summary>
    /// Refuses weights holding NaN or ±Inf (after conversion to the module's dtype, so a float32 value beyond the
    /// float16 range counts too): a model with them only ever outputs NaN. The cost is one sum per tensor in its own
    /// dtype (one read pass, no temporary the size of the tensor) and a single synchronisation: a NaN or an infinity
    /// always makes the sum non-finite. Only the tensors whose sum is not finite (a real NaN/Inf, or a sum of large
    /// finite values that overflowed) are then looked at element by element.
    /// </summary>
    internal static void CheckFinite(IReadOnlyDictionary<string, Tensor> tensors, string source, string model)
    {
        using var scope = torch.NewDisposeScope();
        // meta tensors (a model built to inspect shapes) hold no values to check
        var floats = tensors.Where(kv => kv.Value.is_floating_point() && kv.Value.numel() > 0 && kv.Value.device_type != DeviceType.META).ToList();
        if (floats.Count == 0) return;
        using (torch.no_grad())
        {
            var sums = torch.stack(floats.Select(kv => kv.Value.sum().to(ScalarType.Float32)).ToArray());
            var finiteSums = torch.isfinite(sums);
            if (finiteSums.all().item<bool>()) return;
            bool[] ok = finiteSums.cpu().data<bool>().ToArray();
            for (int i = 0; i < floats.Count; i++)
            {
                if (ok[i]) continue;
                var (name, t) = floats[i];
                var finite = torch.isfinite(t);
                if (finite.all().item<bool>()) continue;
                long nan = torch.isnan(t).sum().item<long>(), total = t.numel(), bad = total - finite.sum().item<long>();
                throw new WeightsException(
                    $"{source}: weight '{Printable.Text(name)}' of {model} holds {bad} non-finite values of {total} ({nan} NaN, {bad - nan} ±Inf, as {t.dtype}): the checkpoint is corrupt, or its values do not fit the dtype")
                { FilePath = source, Key = name };
            }
        }
    }

    /// <summary>
    /// diffusers 0.25's <c>_convert_deprecated_attention_blocks</c>: checkpoints from before the Attention
    /// refactor name an attention block's projections <c>query</c>, <c>key</c>, <c>value</c>, <c>proj_attn</c>;
    /// they become <c>to_q</c>, <c>to_k</c>, <c>to_v</c>, <c>to_out.0</c> (weight and bias; <c>group_norm</c>
    /// keeps its name). diffusers renames only inside blocks flagged as converted from the old
    /// AttentionBlock; here the equivalent test is structural: the module has <c>{path}.to_q.weight</c> and
    /// no <c>{path}.query.weight</c>. Checkpoints already in the new names pass through unchanged.
    /// </summary>
    public static Dictionary<string, Tensor> ConvertDeprecatedAttentionNames(IReadOnlyDictionary<string, Tensor> weights, IReadOnlySet<string> moduleKeys)
    {
        var result = new Dictionary<string, Tensor>(weights, StringComparer.Ordinal);
        foreach (var key in weights.Keys)
        {
            foreach (var (oldName, newName) in DeprecatedAttentionNames)
            {
                foreach (var suffix in new[] { ".weight", ".bias" })
                {
                    string tail = "." + oldName + suffix;
                    if (!key.EndsWith(tail, StringComparison.Ordinal)) continue;
                    string path = key[..^tail.Length];
                    if (moduleKeys.Contains(key) || !moduleKeys.Contains($"{path}.{newName}.weight")) continue;
                    result.Remove(key);
                    result[$"{path}.{newName}{suffix}"] = weights[key];
                }
            }
        }
        return result;
    }

    private static readonly (string Old, string New)[] DeprecatedAttentionNames =
        [("query", "to_q"), ("key", "to_k"), ("value", "to_v"), ("proj_attn", "to_out.0")];

    private static string Shape(Tensor t) => $"[{string.Join(", ", t.shape)}]";

    private static string Summarize(List<string> keys) =>
        keys.Count <= 8 ? string.Join(", ", keys) : string.Join(", ", keys.Take(8)) + $", … ({keys.Count} in all)";
}
