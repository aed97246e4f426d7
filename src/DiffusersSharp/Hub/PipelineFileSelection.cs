using System.Text.Json;
using System.Text.RegularExpressions;

namespace DiffusersSharp.Hub;

/// <summary>
/// diffusers 0.25.1's choice of the files a pipeline needs (<c>DiffusionPipeline.download</c>,
/// <c>variant_compatible_siblings</c>, <c>is_safetensors_compatible</c>): every component's config and one weight
/// format, safetensors preferred over .bin, the requested variant where it exists.
/// </summary>
public static class PipelineFileSelection
{
    private static readonly string[] WeightNames =
    [
        "diffusion_pytorch_model.bin", "diffusion_pytorch_model.safetensors", "diffusion_flax_model.msgpack",
        "model.onnx", "weights.pb", "pytorch_model.bin", "model.safetensors", "flax_model.msgpack",
    ];

    private const string IndexFormat = @"\d{5}-of-\d{5}";

    /// <summary>
    /// The components no DiffusersSharp pipeline runs (Stable Diffusion's safety checker and its image processor): the
    /// loaders treat them as diffusers treats components passed to <c>from_pretrained</c> as <c>None</c> ("Don't download
    /// any objects that are passed"), so they are neither downloaded nor required in the cache. The one list every layer
    /// reads. (A <c>feature_extractor</c> that is in a local folder is loaded for IP-Adapter; the IP-Adapter
    /// <c>image_encoder</c> is downloaded and loaded as any component.)
    /// </summary>
    public static readonly IReadOnlyList<string> NotLoadedComponents = ["safety_checker", "feature_extractor"];

    /// <summary>True for a component of <see cref="NotLoadedComponents"/>.</summary>
    public static bool IsNotLoaded(string component) => NotLoadedComponents.Contains(component);

    /// <summary>The allow and ignore patterns and the resulting file list for a repo with these files.</summary>
    public sealed record Selection(IReadOnlyList<string> AllowPatterns, IReadOnlyList<string> IgnorePatterns, IReadOnlyList<string> Files);

    /// <summary>
    /// Selects the files of a pipeline from its <c>model_index.json</c> text and the repo's file list; the files of
    /// <see cref="NotLoadedComponents"/> are left out as diffusers leaves out passed components (also from the
    /// safetensors check).
    /// </summary>
    public static Selection Select(string modelIndexJson, IReadOnlyCollection<string> repoFiles, string? variant, string source = "model_index.json")
    {
        var folderNames = new List<string>();
        var ignoreFiles = new HashSet<string>();
        try
        {
            using var doc = JsonDocument.Parse(modelIndexJson);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new ConfigException($"{source}: expected a JSON object") { FilePath = source };
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (p.Name == "_ignore_files" && p.Value.ValueKind == JsonValueKind.Array)
                    foreach (var f in p.Value.EnumerateArray()) { if (f.GetString() is { } s) ignoreFiles.Add(s); }
                else if (p.Name != "_class_name" && p.Value.ValueKind == JsonValueKind.Array)
                {
                    folderNames.Add(p.Name);
                    var arr = p.Value.EnumerateArray().ToArray();
                    if (arr.Length > 0 && arr[0].ValueKind == JsonValueKind.String && repoFiles.Contains($"{p.Name}/{arr[0].GetString()}.py"))
                        throw new ConfigException($"{source}: component '{p.Name}' is custom Python code ({p.Name}/{arr[0].GetString()}.py), which DiffusersSharp cannot run.")
                        { FilePath = source, Key = p.Name };
                }
            }
        }
        catch (JsonException e)
        {
            throw new ConfigException($"{source}: invalid JSON: {e.Message}", e) { FilePath = source };
        }

        var (modelFiles, variantFiles) = VariantCompatibleSiblings(repoFiles, variant);
        modelFiles.ExceptWith(ignoreFiles);
        variantFiles.ExceptWith(ignoreFiles);
        var modelFolders = modelFiles.Select(Dir).Where(d => folderNames.Contains(d)).ToHashSet();

        var allow = modelFiles.OrderBy(f => f, StringComparer.Ordinal).ToList();
        allow.AddRange(folderNames.Where(k => !modelFolders.Contains(k)).Select(k => $"{k}/*"));
        allow.AddRange(modelFolders.OrderBy(f => f, StringComparer.Ordinal).Select(k => $"{k}/config.json"));
        allow.AddRange(["scheduler_config.json", "config.json", "model_index.json", "pipeline.py"]);

        // "Don't download any objects that are passed": patterns of two parts whose folder is a passed component
        static bool OfPassed(string pattern) => pattern.Split('/') is [var folder, _] && IsNotLoaded(folder);
        allow.RemoveAll(OfPassed);
        var ignore = IsSafetensorsCompatible(modelFiles.Where(f => !OfPassed(f)))
            ? new List<string> { "*.bin", "*.msgpack", "*.onnx", "*.pb" }
            : new List<string> { "*.safetensors", "*.msgpack", "*.onnx", "*.pb" };
        ignore.AddRange(ignore.Select(i => $"{i}.index.*json").ToList());

        var files = repoFiles.Where(f => !ignore.Any(p => FnMatch.IsMatch(f, p)) && allow.Any(p => FnMatch.IsMatch(f, p)))
                             .OrderBy(f => f, StringComparer.Ordinal).ToList();
        return new Selection(allow, ignore, files);
    }

    private static readonly string[] WeightExtensions = [".bin", ".safetensors", ".msgpack", ".onnx", ".pb", ".ckpt", ".h5", ".pt", ".pth"];

    /// <summary>
    /// The files one model or scheduler folder needs (what <c>ModelMixin.from_pretrained</c> /
    /// <c>SchedulerMixin.from_pretrained</c> read with <c>subfolder=</c>): every non-weight file directly in
    /// <paramref name="subfolder"/> (configs, tokenizer files) and one weight format, chosen as for a pipeline.
    /// </summary>
    public static IReadOnlyList<string> SelectFolder(IReadOnlyCollection<string> repoFiles, string? subfolder, string? variant)
    {
        string prefix = string.IsNullOrEmpty(subfolder) ? "" : subfolder.Trim('/') + "/";
        var inFolder = repoFiles.Where(f => f.StartsWith(prefix, StringComparison.Ordinal) && !f[prefix.Length..].Contains('/')).ToList();
        var (usable, _) = VariantCompatibleSiblings(inFolder, variant);
        string dropped = IsSafetensorsCompatible(usable) ? ".bin" : ".safetensors";
        bool Keep(string f) => !IsWeight(f) || (usable.Contains(f)
                                && !f.EndsWith(dropped, StringComparison.Ordinal) && !f.Contains(dropped + ".index.", StringComparison.Ordinal)
                                && (f.EndsWith(".bin", StringComparison.Ordinal) || f.EndsWith(".safetensors", StringComparison.Ordinal) || f.EndsWith(".json", StringComparison.Ordinal)));
        return inFolder.Where(Keep).Order(StringComparer.Ordinal).ToList();
    }

    /// <summary>A weight file or a weight index by its extension (what <see cref="SelectFolder"/> selects among).</summary>
    private static bool IsWeight(string f) =>
        WeightExtensions.Any(e => f.EndsWith(e, StringComparison.Ordinal) || f.Contains(e + ".index.", StringComparison.Ordinal));

    /// <summary>
    /// What a repository with these files is for <c>diffusers download</c>: <see cref="RepoLayout.Pipeline"/> with a
    /// top-level <c>model_index.json</c>; <see cref="RepoLayout.Model"/> with a top-level <c>config.json</c> where
    /// <see cref="SelectFolder"/> (for <paramref name="variant"/>) keeps a weight file; otherwise
    /// <see cref="RepoLayout.Other"/>, whose files no diffusers selection would fetch (a LoRA's
    /// <c>pytorch_lora_weights.safetensors</c>, a <c>learned_embeds.bin</c>, a <c>model.ckpt</c>).
    /// </summary>
    public static RepoLayout LayoutOf(IReadOnlyCollection<string> repoFiles, string? variant)
    {
        if (repoFiles.Contains("model_index.json")) return RepoLayout.Pipeline;
        if (repoFiles.Contains("config.json") && SelectFolder(repoFiles, null, variant).Any(IsWeight)) return RepoLayout.Model;
        return RepoLayout.Other;
    }

    /// <summary><c>variant_compatible_siblings</c>: (usable weight files, variant weight files).</summary>
    public static (HashSet<string> Usable, HashSet<string> Variant) VariantCompatibleSiblings(IEnumerable<string> filenames, string? variant)
    {
        string prefixes = string.Join('|', WeightNames.Select(w => w.Split('.')[0]));
        string suffixes = string.Join('|', WeightNames.Select(w => w.Split('.')[^1]));
        var nonVariantFile = new Regex($"^({prefixes})(-{IndexFormat})?\\.({suffixes})$");
        var nonVariantIndex = new Regex($"^({prefixes})\\.({suffixes})\\.index\\.json");
        var all = filenames.ToList();
        var variantSet = new HashSet<string>();
        if (variant is not null)
        {
            string v = Regex.Escape(variant);
            var variantFile = new Regex($"^({prefixes})\\.({v}|{v}-{IndexFormat})\\.({suffixes})$");
            var variantIndex = new Regex($"^({prefixes})\\.({suffixes})\\.index\\.{v}\\.json$");
            foreach (var f in all)
                if (variantFile.IsMatch(Base(f)) || variantIndex.IsMatch(Base(f))) variantSet.Add(f);
        }
        var usable = new HashSet<string>(variantSet);
        foreach (var f in all.Where(f => nonVariantFile.IsMatch(Base(f)) || nonVariantIndex.IsMatch(Base(f))))
            if (!usable.Contains(ConvertToVariant(f, variant))) usable.Add(f);
        return (usable, variantSet);
    }

    // diffusers' convert_to_variant, on the full path, quirks included.
    private static string ConvertToVariant(string filename, string? variant)
    {
        if (filename.Contains("index")) return filename.Replace("index", $"index.{variant}");
        if (Regex.IsMatch(filename, $"^(.*?){IndexFormat}"))
        {
            var parts = filename.Split('-');
            return $"{parts[0]}.{variant}-{string.Join('-', parts[1..])}";
        }
        var dots = filename.Split('.');
        return $"{dots[0]}.{variant}.{dots[1]}";
    }

    /// <summary><c>is_safetensors_compatible</c>: every .bin weight has its .safetensors counterpart.</summary>
    public static bool IsSafetensorsCompatible(IEnumerable<string> filenames)
    {
        var list = filenames.ToList();
        var sf = list.Where(f => f.EndsWith(".safetensors", StringComparison.Ordinal)).ToHashSet();
        foreach (var f in list.Where(f => f.EndsWith(".bin", StringComparison.Ordinal)))
        {
            string dir = Dir(f), name = Path.GetFileNameWithoutExtension(Base(f));
            if (name.StartsWith("pytorch_model", StringComparison.Ordinal)) name = name.Replace("pytorch_model", "model");
            string expected = (dir.Length > 0 ? dir + "/" : "") + name + ".safetensors";
            if (!sf.Contains(expected)) return false;
        }
        return true;
    }

    private static string Base(string f) => f[(f.LastIndexOf('/') + 1)..];

    private static string Dir(string f) => f.LastIndexOf('/') is var i and >= 0 ? f[..i] : "";
}
