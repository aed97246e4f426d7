using System.Text.Json.Nodes;
using DiffusersSharp.Loading;
using DiffusersSharp.Loading.SingleFile;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines.SingleFile;

/// <summary>
/// Converts between a single file in the original layout and a diffusers pipeline folder: <see cref="ToDiffusers"/>
/// (what <c>from_single_file(...).save_pretrained(folder)</c> writes: the components through the models' strict loading,
/// the tokenizers, the scheduler, <c>model_index.json</c>) and <see cref="ToOriginal"/> (diffusers'
/// <c>convert_diffusers_to_original_stable_diffusion.py</c> / <c>_sdxl.py</c>, with 1-D VAE attention biases as real
/// checkpoints have them). Both write to a temporary name and rename when complete (a cancellation leaves nothing).
/// </summary>
public static class SingleFileConverter
{
    /// <summary>
    /// Writes the diffusers folder of single file <paramref name="file"/> into <paramref name="output"/> (which must not
    /// exist or be empty). <paramref name="options"/> as for <c>FromSingleFile</c>; its dtype is the saved weights' (float16
    /// for diffusers' <c>--half</c>). Returns the pipeline class written to model_index.json.
    /// </summary>
    public static string ToDiffusers(string file, string output, SingleFileOptions? options = null, CancellationToken cancellationToken = default)
    {
        // "out/" names the folder out: without the separator, so the temporary folder is its sibling, not inside it
        for (string trimmed; (trimmed = Path.TrimEndingDirectorySeparator(output)) != output;) output = trimmed;
        CheckOutputFolder(output);
        cancellationToken.ThrowIfCancellationRequested();
        using var c = SingleFileComponents.Load(file, options);
        string tmp = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(output))!, $".{Path.GetFileName(Path.GetFullPath(output))}.{Guid.NewGuid():N}.tmp");
        try
        {
            // Ctrl+C is looked at between the components; the temporary folder is removed below
            cancellationToken.ThrowIfCancellationRequested();
            c.Unet.SavePretrained(Path.Combine(tmp, "unet"));
            cancellationToken.ThrowIfCancellationRequested();
            c.Vae.SavePretrained(Path.Combine(tmp, "vae"));
            for (int i = 0; i < c.TextEncoders.Count; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var t = c.Layout.TextEncoders[i];
                string dir = Path.Combine(tmp, t.Name);
                if (c.TextEncoders[i] is CLIPTextModelWithProjection p) p.SavePretrained(dir);
                else ((CLIPTextModel)c.TextEncoders[i]).SavePretrained(dir);
                c.Tokenizers[i].SavePretrained(Path.Combine(tmp, t.TokenizerName));
            }
            ((SchedulerBase)c.Scheduler).SavePretrained(Path.Combine(tmp, "scheduler"));
            WriteModelIndex(tmp, c.Layout, c.TextEncoders.Select(t => t.GetType().Name).ToList());
            cancellationToken.ThrowIfCancellationRequested();
            if (Directory.Exists(output)) Directory.Delete(output);
            Directory.Move(tmp, output);
        }
        catch
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
            throw;
        }
        return c.Layout.PipelineClassName;
    }

    /// <summary>
    /// Writes diffusers pipeline folder <paramref name="folder"/> (SD 1.x, 2.x, SDXL base or refiner) as one
    /// <c>.safetensors</c> file in the original layout, float16 when <paramref name="half"/>. Returns the number of tensors written.
    /// </summary>
    public static int ToOriginal(string folder, string file, bool half = false, CancellationToken cancellationToken = default)
    {
        if (!file.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
            throw new DiffusersException($"{file}: only .safetensors single files are written (a .ckpt would need a pickle writer)") { FilePath = file };
        folder = PretrainedLocator.Resolve(folder);
        var layout = SingleFileLayout.FromFolder(folder);
        layout.Scheduler.Dispose();   // only the configs and key maps are written
        using var scope = torch.NewDisposeScope();
        var all = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var owned = new List<Tensor>();
        try
        {
            void Add(KeyMap map, Dictionary<string, Tensor> weights, string source)
            {
                owned.AddRange(weights.Values);
                foreach (var (k, t) in map.ToOriginal(weights, source))
                {
                    owned.Add(t);
                    all[k] = half && t.is_floating_point() ? t.to(ScalarType.Float16) : t;
                    if (!ReferenceEquals(all[k], t)) owned.Add(all[k]);
                }
            }
            string unet = PipelinePaths.Component(folder, "unet"), vae = PipelinePaths.Component(folder, "vae");
            cancellationToken.ThrowIfCancellationRequested();
            Add(layout.UnetKeys, WeightLoader.ReadFolder(unet), unet);
            cancellationToken.ThrowIfCancellationRequested();
            Add(layout.VaeKeys, ModernAttentionNames(WeightLoader.ReadFolder(vae)), vae);
            foreach (var t in layout.TextEncoders)
            {
                cancellationToken.ThrowIfCancellationRequested();
                string dir = PipelinePaths.Component(folder, t.Name);
                string weights = WeightLoader.FindWeights(dir, CheckpointFormat.Transformers, null);
                var w = WeightLoader.ReadFile(weights);
                if (w.Remove(CLIPTextTransformer.PositionIdsKey, out var ids)) ids.Dispose();
                Add(t.Keys, w, weights);
            }
            string? parent = Path.GetDirectoryName(Path.GetFullPath(file));
            if (parent is not null) Directory.CreateDirectory(parent);
            // the last look at Ctrl+C: Save writes a temporary file and renames it, so nothing is left half written
            cancellationToken.ThrowIfCancellationRequested();
            SafetensorsFile.Save(file, all);
            return all.Count;
        }
        finally
        {
            foreach (var t in new HashSet<Tensor>(owned, ReferenceEqualityComparer.Instance)) t.Dispose();
        }
    }

    /// <summary>VAE attention weights saved before diffusers' Attention refactor (query, key, value, proj_attn) under today's names.</summary>
    private static Dictionary<string, Tensor> ModernAttentionNames(Dictionary<string, Tensor> weights)
    {
        var modern = weights.Keys.Select(k => k.Replace(".query.", ".to_q.").Replace(".key.", ".to_k.").Replace(".value.", ".to_v.")
            .Replace(".proj_attn.", ".to_out.0.")).ToHashSet(StringComparer.Ordinal);
        return WeightLoader.ConvertDeprecatedAttentionNames(weights, modern);
    }

    /// <summary>The pipeline class a single file is for, from its family and UNet input channels (a .safetensors file's header only).</summary>
    public static string PipelineClassOf(string file)
    {
        using var ckpt = OriginalCheckpoint.Open(file);
        var convIn = ckpt.Shape(UNetKeyRules.Prefix + "input_blocks.0.0.weight");
        return SingleFileLayout.PipelineClass(CheckpointInspection.DetectFamily(ckpt), convIn is { Length: 4 } ? convIn[1] : 4);
    }

    private static void CheckOutputFolder(string output)
    {
        if (File.Exists(output)) throw new DiffusersException($"{output} is a file; give a folder to write the diffusers pipeline into") { FilePath = output };
        if (Directory.Exists(output) && Directory.EnumerateFileSystemEntries(output).Any())
            throw new DiffusersException($"{output} already exists and is not empty; give a new folder") { FilePath = output };
    }

    private static void WriteModelIndex(string folder, SingleFileLayout layout, IReadOnlyList<string> textClasses)
    {
        // the keys diffusers 0.25.1's save_pretrained writes for the pipeline class: every registered module (the
        // optional ones it does not have as [null, null]) and the pipeline's own config, sorted as json.dumps(sort_keys=True)
        var keys = new Dictionary<string, JsonNode?>
        {
            ["_class_name"] = layout.PipelineClassName, ["_diffusers_version"] = ModelLoading.DiffusersVersion,
        };
        bool xl = CheckpointInspection.IsXl(layout.Family);
        if (xl)
        {
            keys["force_zeros_for_empty_prompt"] = layout.Family == StableDiffusionFamily.StableDiffusionXL;
            if (layout.Family == StableDiffusionFamily.StableDiffusionXLRefiner) keys["requires_aesthetics_score"] = true;
        }
        else keys["requires_safety_checker"] = false;
        JsonArray Pair(string? lib, string? cls) => new(lib is null ? null : JsonValue.Create(lib), cls is null ? null : JsonValue.Create(cls));
        keys["feature_extractor"] = Pair(null, null);
        keys["image_encoder"] = Pair(null, null);
        keys["scheduler"] = Pair("diffusers", layout.Scheduler.ClassName);
        if (!xl) keys["safety_checker"] = Pair(null, null);
        for (int i = 0; i < layout.TextEncoders.Count; i++)
        {
            keys[layout.TextEncoders[i].Name] = Pair("transformers", textClasses[i]);
            keys[layout.TextEncoders[i].TokenizerName] = Pair("transformers", "CLIPTokenizer");
        }
        if (layout.Family == StableDiffusionFamily.StableDiffusionXLRefiner)
        {
            keys["text_encoder"] = Pair(null, null);
            keys["tokenizer"] = Pair(null, null);
        }
        keys["unet"] = Pair("diffusers", nameof(UNet2DConditionModel));
        keys["vae"] = Pair("diffusers", nameof(AutoencoderKL));
        var o = new JsonObject(keys.OrderBy(k => k.Key, StringComparer.Ordinal));
        File.WriteAllText(Path.Combine(folder, PipelineIndex.FileName), o.ToJsonString(ConfigJson.Options) + "\n");
    }
}
