using DiffusersSharp.Loading.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Models.Lora;

/// <summary>
/// Puts a <see cref="LoraFile"/>'s modules on the LoRA-compatible layers of a pipeline's models (diffusers'
/// <c>load_lora_into_unet</c> / <c>load_lora_into_text_encoder</c> without PEFT, v0.25.1), and the operations on loaded
/// LoRAs (fuse, unfuse, unload, adapter weights), for any set of <see cref="LoraTarget"/>s. Nothing changes unless the
/// whole file fits: shapes are checked first (a LoRA for another architecture names a key and both shapes), then
/// unplaceable keys are refused as a list (or left out with <see cref="LoraLoadOptions.IgnoreUnknownKeys"/>).
/// </summary>
public static class LoraLoader
{
    /// <summary>The adapter name of loads without one (diffusers 0.25.1's single LoRA slot).</summary>
    public const string DefaultAdapterName = "default";

    /// <summary>The LoRA-compatible layers of <paramref name="model"/> by module path.</summary>
    public static IEnumerable<(string Path, LoRACompatibleLayer Layer)> Layers(nn.Module model) =>
        model.named_modules().Where(m => m.module is LoRACompatibleLayer).Select(m => (m.name, (LoRACompatibleLayer)m.module));

    /// <summary>
    /// Reads <paramref name="path"/> (a file, a folder or a Hub id, with the options' weight name, subfolder and
    /// <see cref="LoraLoadOptions.Source"/>: <see cref="LoraFile.Locate"/>) and loads it into <paramref name="targets"/>.
    /// </summary>
    public static LoraLoadResult Load(string path, IReadOnlyList<LoraTarget> targets, LoraLoadOptions? options = null)
    {
        using var file = LoraFile.Read(LoraFile.Locate(path, options?.WeightName, options?.Subfolder, options?.Source), options?.Log);
        return Load(file, targets, options);
    }

    /// <summary>Loads a file already read (its tensors stay the file's; the layers get their own handles).</summary>
    public static LoraLoadResult Load(LoraFile file, IReadOnlyList<LoraTarget> targets, LoraLoadOptions? options = null)
    {
        options ??= new LoraLoadOptions();
        using var scope = torch.NewDisposeScope();
        string name = options.AdapterName ?? DefaultAdapterName;
        if (options.AdapterName is { } given && targets.Any(t => Layers(t.Model).Any(l => l.Layer.Adapters.Any(a => a.Name == given))))
            throw new DiffusersException($"LoRA file {file.Path}: adapter name '{given}' is already in use (LoraLoadOptions.AdapterName); unload that adapter or choose another name") { FilePath = file.Path };

        var indexes = targets.ToDictionary(t => t.Component, t => new LayerIndex(t));
        var placed = new List<(LoraTarget Target, LoRACompatibleLayer Layer, LoraModuleWeights W, Tensor Down, Tensor Up)>();
        var mismatches = new List<string>();
        var unknown = new List<string>(file.UnknownKeys);
        foreach (var w in file.Modules)
        {
            if (!indexes.TryGetValue(w.Component, out var index))
            {
                unknown.Add($"{w.SourceKey} (this pipeline has no {w.Component})");
                continue;
            }
            var (layerPath, layer) = index.Find(w);
            if (layer is null)
            {
                unknown.Add($"{w.SourceKey} ({(layerPath is null ? "no such module" : $"{w.Component}.{layerPath} is not a LoRA-compatible layer")})");
                continue;
            }
            var (down, up) = FitToLayer(layer, w.Down, w.Up);
            if (layer.CheckShapes(down, up) is { } problem)
            {
                down.Dispose();
                up.Dispose();
                mismatches.Add($"'{w.SourceKey}' on {w.Component}.{layerPath} (weight [{string.Join(", ", layer.WeightShape)}]): {problem}");
                continue;
            }
            placed.Add((index.Target, layer, w, down, up));
        }
        try
        {
            return Attach(file, targets, options, name, placed.Select(p => (p.Target, p.Layer, p.W.Alpha, p.Down, p.Up)).ToList(),
                mismatches, unknown);
        }
        finally
        {
            foreach (var p in placed)
            {
                p.Down.Dispose();
                p.Up.Dispose();
            }
        }
    }

    private static LoraLoadResult Attach(LoraFile file, IReadOnlyList<LoraTarget> targets, LoraLoadOptions options, string name,
        List<(LoraTarget Target, LoRACompatibleLayer Layer, double? Alpha, Tensor Down, Tensor Up)> placed, List<string> mismatches,
        List<string> unknown)
    {
        if (mismatches.Count > 0)
            throw new WeightsException($"LoRA file {file.Path} does not fit this model (a LoRA for another architecture?): {mismatches[0]}" +
                (mismatches.Count > 1 ? $"; {mismatches.Count - 1} more module(s) differ" : ""))
            { FilePath = file.Path, Key = FirstKey(mismatches[0]) };
        if (unknown.Count > 0)
        {
            string list = string.Join(", ", unknown.Take(20)) + (unknown.Count > 20 ? $", … ({unknown.Count} in all)" : "");
            if (!options.IgnoreUnknownKeys)
                throw new WeightsException($"LoRA file {file.Path}: {unknown.Count} key(s) fit no LoRA-compatible layer of this pipeline: {list}") { FilePath = file.Path };
            options.Log?.Invoke($"LoRA {Path.GetFileName(file.Path)}: ignored {unknown.Count} key(s): {list}");
        }

        // diffusers 0.25.1: a load without a name first un-patches every text encoder the file patches
        if (options.AdapterName is null)
            foreach (var t in placed.Select(p => p.Target).Distinct().Where(t => !t.IsUnet))
                foreach (var (_, l) in Layers(t.Model)) l.RemoveAdapters(DefaultAdapterName);

        var counts = targets.ToDictionary(t => t.Component, _ => 0);
        foreach (var (target, layer, alpha, down, up) in placed)
        {
            var dtype = layer.Weight.dtype;
            var device = layer.Weight.device;
            var d = down.to(dtype, device).DetachFromDisposeScope();
            var u = up.to(dtype, device).DetachFromDisposeScope();
            layer.AddAdapter(new LoraAdapter(name, d, u, alpha, options.Scale), replace: options.AdapterName is null);
            layer.ScaleSource = target.Scale;
            counts[target.Component]++;
        }
        return new LoraLoadResult(name, counts, options.IgnoreUnknownKeys ? unknown : []) { File = file.Path };
    }

    private static string? FirstKey(string message) => message.StartsWith('\'') ? message[1..message.IndexOf('\'', 1)] : null;

    /// <summary>A 2-D (linear) LoRA on a 1×1 convolution gets 1×1 kernels; a 1×1 conv LoRA on a linear layer loses them.</summary>
    private static (Tensor Down, Tensor Up) FitToLayer(LoRACompatibleLayer layer, Tensor down, Tensor up)
    {
        if (layer is LoRACompatibleConv { KernelSize: 1 } && down.dim() == 2 && up.dim() == 2)
            return (down.view(down.shape[0], down.shape[1], 1, 1), up.view(up.shape[0], up.shape[1], 1, 1));
        if (layer is LoRACompatibleLinear && down.dim() == 4 && up.dim() == 4
            && down.shape[2] == 1 && down.shape[3] == 1 && up.shape[2] == 1 && up.shape[3] == 1)
            return (down.flatten(1), up.flatten(1));
        return (down.alias(), up.alias());
    }

    /// <summary>
    /// diffusers' <c>fuse_lora(lora_scale)</c>: folds every active adapter of every target into its layer's weight (see
    /// <see cref="LoRACompatibleLayer.Fuse"/>). Returns the number of layers fused.
    /// </summary>
    public static int Fuse(IEnumerable<LoraTarget> targets, double loraScale = 1.0) =>
        targets.SelectMany(t => Layers(t.Model)).Count(l => l.Layer.Fuse(loraScale));

    /// <summary>diffusers' <c>unfuse_lora()</c>: the original weights back, bit for bit. Returns the number of layers restored.</summary>
    public static int Unfuse(IEnumerable<LoraTarget> targets) => targets.SelectMany(t => Layers(t.Model)).Count(l => l.Layer.Unfuse());

    /// <summary>
    /// diffusers' <c>unload_lora_weights()</c>: removes every adapter (or only <paramref name="adapterName"/>) and frees it.
    /// Fused weights stay fused (as in 0.25.1; <see cref="Unfuse"/> still restores them).
    /// </summary>
    public static void Unload(IEnumerable<LoraTarget> targets, string? adapterName = null)
    {
        foreach (var (_, l) in targets.SelectMany(t => Layers(t.Model))) l.RemoveAdapters(adapterName);
    }

    /// <summary>
    /// diffusers' <c>set_adapters(names, weights)</c>: only the named adapters are applied, each with its weight (the
    /// updates add up); the others stay loaded but inactive. Unknown names are refused.
    /// </summary>
    public static void SetAdapters(IEnumerable<LoraTarget> targets, IReadOnlyList<string> names, IReadOnlyList<double>? weights = null)
    {
        if (weights is not null && weights.Count != names.Count)
            throw new ArgumentException($"SetAdapters: {names.Count} adapter name(s) but {weights.Count} weight(s)");
        var layers = targets.SelectMany(t => Layers(t.Model)).Select(l => l.Layer).ToList();
        var loaded = layers.SelectMany(l => l.Adapters).Select(a => a.Name).ToHashSet();
        var missing = names.Where(n => !loaded.Contains(n)).ToList();
        if (missing.Count > 0)
            throw new DiffusersException($"SetAdapters: no adapter named {string.Join(", ", missing.Select(n => $"'{n}'"))} is loaded (loaded: {string.Join(", ", loaded.Order())})");
        foreach (var l in layers)
            foreach (var a in l.Adapters)
            {
                int i = names.ToList().IndexOf(a.Name);
                a.Active = i >= 0;
                if (i >= 0) a.Weight = weights?[i] ?? 1.0;
            }
    }

    /// <summary>The names of the adapters loaded on any target, in first-load order.</summary>
    public static IReadOnlyList<string> AdapterNames(IEnumerable<LoraTarget> targets) =>
        targets.SelectMany(t => Layers(t.Model)).SelectMany(l => l.Layer.Adapters).Select(a => a.Name).Distinct().ToList();

    /// <summary>A target's layers by dotted path and by kohya's underscore form.</summary>
    private sealed class LayerIndex
    {
        private readonly Dictionary<string, LoRACompatibleLayer> _byPath = new(StringComparer.Ordinal);
        private readonly Dictionary<string, string> _byUnderscore = new(StringComparer.Ordinal);
        private readonly HashSet<string> _allModules;

        public LayerIndex(LoraTarget target)
        {
            Target = target;
            foreach (var (path, layer) in Layers(target.Model))
            {
                _byPath[path] = layer;
                _byUnderscore[path.Replace('.', '_')] = path;
            }
            _allModules = target.Model.named_modules().Select(m => m.name).ToHashSet();
        }

        public LoraTarget Target { get; }

        /// <summary>(the module path when one exists, the layer when it is LoRA-compatible).</summary>
        public (string? Path, LoRACompatibleLayer? Layer) Find(LoraModuleWeights w)
        {
            string path = w.Name;
            if (w.IsKohyaName)
            {
                string u = Target.IsUnet ? KohyaLoraNames.UnetName(w.Name, Target.LayersPerBlock ?? 2) : w.Name;
                if (!_byUnderscore.TryGetValue(u, out var p)) return (null, null);
                path = p;
            }
            if (_byPath.TryGetValue(path, out var layer)) return (path, layer);
            return (_allModules.Contains(path) ? path : null, null);
        }
    }
}
