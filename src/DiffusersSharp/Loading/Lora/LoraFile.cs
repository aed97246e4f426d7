using DiffusersSharp.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Loading.Lora;

/// <summary>
/// A LoRA file read into per-module weights (diffusers' <c>lora_state_dict</c>): <c>.safetensors</c> or a torch <c>.bin</c>
/// (read with the allow-listed unpickler), found as a file, in a folder or in a Hugging Face Hub repository by
/// <see cref="Locate"/> (<c>pytorch_lora_weights.safetensors</c> / <c>.bin</c>, else diffusers' best guess). The
/// format is detected from the keys (<see cref="LoraFormat"/>); every tensor is checked to be finite, and every down
/// matrix must have an up matrix of the same rank. Keys that fit no LoRA layout are listed in <see cref="UnknownKeys"/>
/// (the loader refuses them unless told to ignore them). Owns its tensors until <see cref="Dispose"/>.
/// </summary>
public sealed class LoraFile : IDisposable
{
    /// <summary>The file names looked for in a folder, in order (diffusers' <c>LORA_WEIGHT_NAME_SAFE</c>, <c>LORA_WEIGHT_NAME</c>).</summary>
    public static readonly IReadOnlyList<string> FolderFileNames = ["pytorch_lora_weights.safetensors", "pytorch_lora_weights.bin"];

    /// <summary>
    /// Parts of a file name that mark it as no LoRA (diffusers' <c>unallowed_substrings</c>): a scheduler's or an
    /// optimizer's state, or an intermediate training checkpoint.
    /// </summary>
    public static readonly IReadOnlyList<string> NotLoraSubstrings = ["scheduler", "optimizer", "checkpoint"];

    /// <summary>How a folder's or a repository's LoRA file is chosen when no weight name is given (<see cref="BestGuessWeightName"/>).</summary>
    public static WeightFileRule WeightFiles { get; } = new("LoRA",
        $"{FolderFileNames[0]} or {FolderFileNames[1]}, else a single other .safetensors or .bin file", FolderFileNames[0], BestGuessWeightName);

    private LoraFile(string path, LoraFormat format, List<LoraModuleWeights> modules, List<string> unknown)
    {
        Path = path;
        Format = format;
        Modules = modules;
        UnknownKeys = unknown;
    }

    /// <summary>The file read.</summary>
    public string Path { get; }

    /// <summary>The key layout found.</summary>
    public LoraFormat Format { get; }

    /// <summary>One entry per LoRA module, in file order.</summary>
    public IReadOnlyList<LoraModuleWeights> Modules { get; }

    /// <summary>Keys that fit no LoRA layout (a LoHa / LoKr tensor, a stray key).</summary>
    public IReadOnlyList<string> UnknownKeys { get; }

    /// <summary>
    /// Reads <paramref name="path"/> (a file, a folder or a Hub id: <see cref="Locate"/>). <paramref name="log"/> gets one
    /// line per module without an alpha in a kohya file (diffusers' default applies: no alpha scaling, i.e. alpha = rank).
    /// </summary>
    public static LoraFile Read(string path, Action<string>? log = null)
    {
        string file = Locate(path);
        var tensors = ReadTensors(file);
        try
        {
            return Parse(file, tensors, log);
        }
        catch
        {
            foreach (var t in tensors.Values) t.Dispose();
            throw;
        }
    }

    /// <summary>Parses a state dict already in memory (diffusers accepts a dict too); takes ownership of the tensors.</summary>
    public static LoraFile FromStateDict(string source, Dictionary<string, Tensor> tensors, Action<string>? log = null) =>
        Parse(source, tensors, log);

    /// <summary>
    /// The LoRA file of <paramref name="pathOrId"/> (diffusers' <c>lora_state_dict</c> file lookup): a file as it is; in a
    /// folder or a Hugging Face Hub repository (<see cref="PretrainedFileLocator"/>; <paramref name="options"/> give the
    /// revision, cache and Hub settings) the file <paramref name="weightName"/> names, else <see cref="BestGuessWeightName"/>'s.
    /// </summary>
    public static string Locate(string pathOrId, string? weightName = null, string? subfolder = null, LoadOptions? options = null) =>
        PretrainedFileLocator.Resolve(pathOrId, WeightFiles, weightName, subfolder, options);

    /// <summary>
    /// diffusers' <c>_best_guess_weight_name</c>, .safetensors first, then .bin: of the names with that extension and
    /// without <see cref="NotLoraSubstrings"/>, those ending in <c>pytorch_lora_weights.*</c> when there are any; one left
    /// is the choice, several are an error naming them (pass a weight name), none moves on to .bin, then null. Where
    /// diffusers' candidates include the exact top-level <c>pytorch_lora_weights.*</c> besides others ending so (in
    /// subfolders), that one is taken (diffusers refuses); where its filter leaves nothing, there is no guess
    /// (diffusers fails with an IndexError).
    /// </summary>
    public static string? BestGuessWeightName(IReadOnlyList<string> files, string where)
    {
        ArgumentNullException.ThrowIfNull(files);
        foreach (var preferred in FolderFileNames)
        {
            string extension = System.IO.Path.GetExtension(preferred);
            var candidates = files.Where(f => f.EndsWith(extension, StringComparison.Ordinal)
                                              && !NotLoraSubstrings.Any(s => f.Contains(s, StringComparison.Ordinal))).ToList();
            if (candidates.Contains(preferred)) return preferred;
            if (candidates.Any(f => f.EndsWith(preferred, StringComparison.Ordinal)))
                candidates = candidates.Where(f => f.EndsWith(preferred, StringComparison.Ordinal)).ToList();
            if (candidates.Count > 1)
                throw new WeightsException(
                    $"{where} holds more than one LoRA weights file in the {extension} format: {string.Join(", ", candidates)}. "
                    + "Pass the one to load as the weight name (diffusers' weight_name), or keep only one .safetensors or .bin file there.")
                { Key = "weight_name" };
            if (candidates.Count == 1) return candidates[0];
        }
        return null;
    }

    private static Dictionary<string, Tensor> ReadTensors(string file)
    {
        if (file.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
        {
            using var st = SafetensorsFile.Open(file);
            return st.LoadAll();
        }
        return TorchBinFile.LoadAll(file);
    }

    private static LoraFile Parse(string file, Dictionary<string, Tensor> tensors, Action<string>? log)
    {
        using var scope = torch.NewDisposeScope();
        foreach (var (key, t) in tensors)
            if (t.is_floating_point() && !TorchUtils.Scoped(() => torch.isfinite(t).all().item<bool>()))
                throw new WeightsException($"LoRA file {file}: tensor '{key}' holds NaN or infinite values; the LoRA is refused") { FilePath = file, Key = key };

        bool kohya = tensors.Keys.Any(k => KohyaLoraNames.Prefixes.Any(p => k.StartsWith(p, StringComparison.Ordinal)));
        bool peft = !kohya && tensors.Keys.Any(k => k.Contains(".lora_A.") || k.Contains(".lora_B."));
        var format = kohya ? LoraFormat.Kohya : peft ? LoraFormat.Peft : LoraFormat.Diffusers;

        var downs = new List<(string Module, string Component, bool Kohya, string DownKey, string UpKey)>();
        var alphas = new Dictionary<string, string>();
        var used = new HashSet<string>();
        foreach (var key in tensors.Keys)
        {
            var parsed = format == LoraFormat.Kohya ? KohyaLoraNames.ParseKey(key) : DiffusersLoraNames.ParseKey(key);
            if (parsed is not { } p) continue;
            if (p.Part == LoraKeyPart.Alpha) { alphas[p.Component + "/" + p.Module] = key; used.Add(key); continue; }
            if (p.Part != LoraKeyPart.Down) continue;
            string upKey = p.PartnerKey;
            if (!tensors.ContainsKey(upKey))
                throw new WeightsException($"LoRA file {file}: '{key}' has no matching up weight '{upKey}'") { FilePath = file, Key = key };
            downs.Add((p.Module, p.Component, format == LoraFormat.Kohya, key, upKey));
            used.Add(key);
            used.Add(upKey);
        }

        var modules = new List<LoraModuleWeights>();
        foreach (var (module, component, isKohya, downKey, upKey) in downs)
        {
            var down = tensors[downKey];
            var up = tensors[upKey];
            if (down.dim() < 2 || up.dim() < 2 || down.dim() != up.dim() || up.shape[1] != down.shape[0])
                throw new WeightsException($"LoRA file {file}: rank mismatch at '{downKey}': down [{string.Join(", ", down.shape)}] has rank {down.shape[0]}, " +
                    $"up '{upKey}' [{string.Join(", ", up.shape)}] has {(up.dim() < 2 ? "no rank" : $"rank {up.shape[1]}")}")
                { FilePath = file, Key = downKey };
            double? alpha = null;
            if (alphas.TryGetValue(component + "/" + module, out var alphaKey))
            {
                using var a = tensors[alphaKey].to_type(ScalarType.Float64);
                // item() reads the one value of any shape; flatten()[0] left two temporaries to the finalizer per alpha
                alpha = a.numel() == 1 ? a.item<double>() : throw new WeightsException(
                    $"LoRA file {file}: alpha '{alphaKey}' has shape [{string.Join(", ", a.shape)}], expected one value")
                { FilePath = file, Key = alphaKey };
            }
            else if (isKohya)
                log?.Invoke($"LoRA {System.IO.Path.GetFileName(file)}: '{module}' has no alpha; diffusers' default applies (no alpha scaling, as alpha = rank {down.shape[0]})");
            modules.Add(new LoraModuleWeights(component, module, isKohya, down, up, alpha, downKey));
        }
        var unknown = tensors.Keys.Where(k => !used.Contains(k)).ToList();
        foreach (var k in unknown) tensors[k].Dispose();
        foreach (var k in alphas.Values) tensors[k].Dispose();
        return new LoraFile(file, format, modules, unknown);
    }

    /// <summary>Frees every tensor still held.</summary>
    public void Dispose()
    {
        foreach (var m in Modules)
        {
            m.Down.Dispose();
            m.Up.Dispose();
        }
    }
}
