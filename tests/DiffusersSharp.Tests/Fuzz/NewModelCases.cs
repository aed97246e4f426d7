using System.Text.Json.Nodes;
using DiffusersSharp.Tests.Support;

namespace DiffusersSharp.Tests.Fuzz;

/// <summary>
/// Seeded fuzz cases through the CLI over the newest model folders: DiT (tiny-dit, its id2label), the x4 upscaler
/// (tiny-sd-upscale, 7-channel UNet, max_noise_level, low_res_scheduler), InstructPix2Pix (tiny-sd-instruct-pix2pix,
/// 8-channel UNet) and T2I-Adapters / MultiAdapter (tiny-t2i-adapter on tiny-sd). Each family draws from its own
/// <see cref="Random"/> with a fixed seed (<see cref="Seed"/>), as <see cref="RandomCases"/>.
/// </summary>
internal static class NewModelCases
{
    public const int Seed = 23;
    private const string DiT = "tiny-dit", Upscale = "tiny-sd-upscale", Pix2Pix = "tiny-sd-instruct-pix2pix", Sd = "tiny-sd";

    /// <summary>A key of <paramref name="file"/> (keys read from <paramref name="keysFrom"/>) set to a random bad value, <paramref name="count"/> times.</summary>
    internal static IEnumerable<(string Name, Action<FuzzWorkspace> Mutate, string[] Names)> ConfigValues(Random rng, string keysFrom, string file, int count,
        params string[] extraKeys)
    {
        var keys = ((JsonObject)JsonNode.Parse(File.ReadAllText(keysFrom))!).Select(kv => kv.Key).Concat(extraKeys).Distinct().ToArray();
        var values = RandomCases.Values;
        for (int i = 0; i < count; i++)
        {
            string key = keys[rng.Next(keys.Length)], value = values[rng.Next(values.Length)];
            if (rng.Next(4) == 0)
            {
                string key2 = keys[rng.Next(keys.Length)], value2 = values[rng.Next(values.Length)];
                yield return ($"{file} {key}={value}, {key2}={value2}", w => w.SetJson(file, (key, value), (key2, value2)), [key, key2]);
            }
            else
                yield return ($"{file} {key}={value}", w => w.SetJson(file, key, value), [key]);
        }
    }

    /// <summary>
    /// Random corruptions of a safetensors file: an entry's dtype, shape (also one of the same size, so only the
    /// shape check can see it) or offsets, an entry removed, the header length, truncation, flipped header bytes.
    /// </summary>
    internal static IEnumerable<(string Name, Action<FuzzWorkspace> Mutate)> Safetensors(Random rng, string file, int count)
    {
        string[] dtypes = ["F64", "I8", "BOOL", "F8_E4M3", "XX", "", "f32", "F16"];
        for (int i = 0; i < count; i++)
        {
            int kind = rng.Next(8), pick = rng.Next(1000), pick2 = rng.Next(1000);
            long at = rng.Next(1 << 22);
            byte b1 = (byte)rng.Next(256), b2 = (byte)rng.Next(256);
            string name = $"{file} mutation {kind}/{pick}";
            Action<FuzzWorkspace> mutate = kind switch
            {
                0 => w => WeightFiles.EditHeader(w.File(file), h => Entry(h, pick)["dtype"] = dtypes[pick2 % dtypes.Length]),
                1 => w => WeightFiles.EditHeader(w.File(file), h => Entry(h, pick)["shape"] = JsonNode.Parse(new[] { "[]", "[-1]", "[0]", "[2147483647, 2147483647]", "[1, 2, 3, 4, 5]" }[pick2 % 5])),
                2 => w => WeightFiles.EditHeader(w.File(file), h => SameSizeShape(Entry(h, pick))),
                3 => w => WeightFiles.EditHeader(w.File(file), h => Entry(h, pick)["data_offsets"] = JsonNode.Parse(new[] { "[0, 0]", "[-4, 4]", "[8, 4]", "[0, 9223372036854775807]", "[0]", "null" }[pick2 % 6])),
                4 => w => WeightFiles.EditHeader(w.File(file), h => h.Remove(Entry(h, pick).GetPropertyName())),
                5 => w => WeightFiles.Poke(w.File(file), 0, BitConverter.GetBytes(new[] { 0L, -1L, long.MaxValue, 1L << 40, 7L }[pick % 5])),
                6 => w => RandomCases.Truncate(w.File(file), at),
                _ => w => WeightFiles.Poke(w.File(file), 8 + pick % 200, [b1, b2]),
            };
            yield return (name, mutate);
        }
    }

    /// <summary>Gives an entry the reverse of its shape (or [n] for a 1-d one of n > 1 split in two): the same bytes, another shape.</summary>
    private static void SameSizeShape(JsonObject entry)
    {
        var shape = entry["shape"]!.AsArray().Select(n => n!.GetValue<long>()).ToArray();
        long[] other = shape.Length > 1 && shape.Distinct().Count() > 1 ? shape.Reverse().ToArray()
            : shape.Length == 1 && shape[0] % 2 == 0 ? [2, shape[0] / 2] : [.. shape, 1];
        entry["shape"] = new JsonArray(other.Select(n => (JsonNode)n).ToArray());
    }

    private static JsonObject Entry(JsonObject header, int pick)
    {
        var names = header.Where(kv => kv.Key != "__metadata__").Select(kv => kv.Key).Order(StringComparer.Ordinal).ToList();
        return (JsonObject)header[names[pick % names.Count]]!;
    }

    private static IEnumerable<FuzzCase> Cases(string model, IEnumerable<(string Name, Action<FuzzWorkspace> Mutate, string[] Names)> mutations,
        Func<FuzzWorkspace, string[]> args, Action<FuzzWorkspace>? setup = null) =>
        mutations.Select(m => new FuzzCase($"{model}: {m.Name}", model, w => { setup?.Invoke(w); m.Mutate(w); }, args) { Names = m.Names });

    private static IEnumerable<(string, Action<FuzzWorkspace>, string[])> NoNames(IEnumerable<(string Name, Action<FuzzWorkspace> Mutate)> m) =>
        m.Select(x => (x.Name, x.Mutate, Array.Empty<string>()));

    private static IEnumerable<(string, Action<FuzzWorkspace>, string[])> Whole(string file, params string[] texts) =>
        texts.Select(t => ($"{file} is '{t}'", (Action<FuzzWorkspace>)(w => w.Write(file, t)), Array.Empty<string>()));

    private static IEnumerable<(string, Action<FuzzWorkspace>, string[])> Keys(string file, params (string Key, string Value)[] values) =>
        values.Select(v => ($"{file} {v.Key}={Short(v.Value)}", (Action<FuzzWorkspace>)(w => w.SetJson(file, v.Key, v.Value)), new[] { v.Key }));

    private static IEnumerable<(string, Action<FuzzWorkspace>, string[])> Missing(params string[] files) =>
        files.Select(f => ($"{f} missing", (Action<FuzzWorkspace>)(w => DeletePath(w, f)), Array.Empty<string>()));

    private static void DeletePath(FuzzWorkspace w, string relative)
    {
        string p = w.File(relative);
        if (Directory.Exists(p)) Directory.Delete(p, recursive: true);
        else File.Delete(p);
    }

    private static string Short(string s) => s.Length <= 24 ? s : s[..21] + "...";

    /// <summary>DiTPipeline (tiny-dit): transformer / VAE / scheduler configs, id2label, weights, missing files, labels by name.</summary>
    public static IEnumerable<FuzzCase> DiTFolders()
    {
        var rng = new Random(Seed);
        Func<FuzzWorkspace, string[]> run = w => FuzzCommands.DiT(w);
        yield return new("tiny-dit unchanged", DiT, _ => { }, run);
        foreach (var c in Cases(DiT, ConfigValues(rng, Golden.Path(DiT, "transformer/config.json"), "transformer/config.json", 28), run)) yield return c;
        foreach (var c in Cases(DiT, ConfigValues(rng, Golden.Path(DiT, "scheduler/scheduler_config.json"), "scheduler/scheduler_config.json", 6), run)) yield return c;
        foreach (var c in Cases(DiT, ConfigValues(rng, Golden.Path(DiT, "vae/config.json"), "vae/config.json", 4), run)) yield return c;
        foreach (var c in Cases(DiT, Keys("transformer/config.json",
                     ("norm_type", "\"layer_norm\""), ("norm_type", "\"ada_norm_single\""), ("num_embeds_ada_norm", "null"), ("num_embeds_ada_norm", "0"),
                     ("num_embeds_ada_norm", "-1"), ("patch_size", "null"), ("patch_size", "3"), ("patch_size", "0"), ("sample_size", "7"),
                     ("sample_size", "0"), ("out_channels", "4"), ("out_channels", "null"), ("in_channels", "3"), ("num_attention_heads", "0"),
                     ("attention_head_dim", "0"), ("num_layers", "0"), ("num_layers", "100000"), ("activation_fn", "\"relu\""),
                     ("num_vector_embeds", "10"), ("cross_attention_dim", "16"), ("norm_eps", "0"), ("norm_eps", "NaN"),
                     ("norm_elementwise_affine", "true"), ("attention_bias", "false"), ("caption_channels", "16")), run))
            yield return c;
        foreach (var c in Cases(DiT, Keys("model_index.json",
                     ("id2label", "null"), ("id2label", "[]"), ("id2label", "\"x\""), ("id2label", "{\"x\": \"a\"}"), ("id2label", "{\"1\": 5}"),
                     ("id2label", "{\"1\": null}"), ("id2label", "{\"-1\": \"a\"}"), ("id2label", "{\"1e3\": \"a\"}"), ("id2label", "{\"1\": \"\"}"),
                     ("transformer", "[\"diffusers\", \"UNet2DModel\"]"), ("transformer", "[\"diffusers\", \"Nope\"]"), ("transformer", "null"),
                     ("scheduler", "[\"diffusers\", \"NotAScheduler\"]"), ("vae", "[\"diffusers\"]"), ("_class_name", "\"DiTPipelineX\"")), run))
            yield return c;
        // a label name of a mutated id2label: ids out of range, the null class, an empty name
        foreach (var (table, label) in new[] { ("{\"5000\": \"huge\"}", "huge"), ("{\"-3\": \"neg\"}", "neg"), ("{\"1000\": \"null class\"}", "null class"),
                     ("{\"1\": \" , ,\"}", ""), ("{\"1\": \"a\", \"2\": \"a\"}", "a"), ("{\"2147483647\": \"max\"}", "max") })
            yield return new($"tiny-dit: id2label {table}, --class-label '{label}'", DiT, w => w.SetJson("model_index.json", "id2label", table),
                w => FuzzCommands.DiT(w, ("--class-label", label)))
            { Names = ["id2label", "--class-label"] };
        foreach (var c in Cases(DiT, Whole("transformer/config.json", "", "[]", "{\"_class_name\": \"Transformer2DModel\"}"), run)) yield return c;
        foreach (var c in Cases(DiT, Whole("model_index.json", "{", "{\"_class_name\": \"DiTPipeline\"}"), run)) yield return c;
        foreach (var c in Cases(DiT, NoNames(Safetensors(rng, "transformer/diffusion_pytorch_model.safetensors", 16)), run)) yield return c;
        foreach (var c in Cases(DiT, Missing("transformer/diffusion_pytorch_model.safetensors", "transformer/config.json", "vae", "scheduler/scheduler_config.json"), run))
            yield return c;
    }

    /// <summary>StableDiffusionUpscalePipeline (tiny-sd-upscale): max_noise_level, the 7-channel UNet, both schedulers, weights.</summary>
    public static IEnumerable<FuzzCase> UpscaleFolders()
    {
        var rng = new Random(Seed + 1);
        Func<FuzzWorkspace, string[]> run = w => FuzzCommands.Upscale(w);
        yield return new("tiny-sd-upscale unchanged", Upscale, _ => { }, run);
        foreach (var c in Cases(Upscale, Keys("model_index.json",
                     ("max_noise_level", "-1"), ("max_noise_level", "0"), ("max_noise_level", "null"), ("max_noise_level", "\"x\""), ("max_noise_level", "1.5"),
                     ("max_noise_level", "1e30"), ("max_noise_level", "2147483647"), ("max_noise_level", "1000"), ("max_noise_level", "5"),
                     ("low_res_scheduler", "null"), ("low_res_scheduler", "[\"diffusers\", \"EulerDiscreteScheduler\"]"),
                     ("low_res_scheduler", "[\"diffusers\", \"IPNDMScheduler\"]")), run))
            yield return c;
        // the default noise level 20 against a small max_noise_level; a noise level of the model's whole range
        yield return new("tiny-sd-upscale: max_noise_level 5, --noise-level 5", Upscale, w => w.SetJson("model_index.json", "max_noise_level", "5"),
            w => FuzzCommands.Upscale(w, ("--noise-level", "5")))
        { Names = ["max_noise_level", "--noise-level"] };
        yield return new("tiny-sd-upscale: --noise-level 350 (the model's max)", Upscale, _ => { }, w => FuzzCommands.Upscale(w, ("--noise-level", "350")));
        yield return new("tiny-sd-upscale: max_noise_level 5000, --noise-level 5000", Upscale, w => w.SetJson("model_index.json", "max_noise_level", "5000"),
            w => FuzzCommands.Upscale(w, ("--noise-level", "5000")))
        { Names = ["max_noise_level", "--noise-level"] };
        foreach (var c in Cases(Upscale, Keys("unet/config.json",
                     ("in_channels", "4"), ("in_channels", "8"), ("in_channels", "3"), ("num_class_embeds", "null"), ("num_class_embeds", "10"),
                     ("num_class_embeds", "0"), ("num_class_embeds", "-1"), ("class_embed_type", "\"timestep\""), ("out_channels", "3"),
                     ("only_cross_attention", "[true]"), ("only_cross_attention", "[true, false, true]"), ("sample_size", "0")), run))
            yield return c;
        foreach (var c in Cases(Upscale, ConfigValues(rng, Golden.Path(Upscale, "unet/config.json"), "unet/config.json", 14), run)) yield return c;
        foreach (var c in Cases(Upscale, ConfigValues(rng, Golden.Path(Upscale, "low_res_scheduler/scheduler_config.json"), "low_res_scheduler/scheduler_config.json", 12,
                     "variance_type", "clip_sample_range", "timestep_spacing"), run))
            yield return c;
        foreach (var c in Cases(Upscale, ConfigValues(rng, Golden.Path(Upscale, "scheduler/scheduler_config.json"), "scheduler/scheduler_config.json", 6), run)) yield return c;
        foreach (var c in Cases(Upscale, Whole("low_res_scheduler/scheduler_config.json", "", "[]", "{}"), run)) yield return c;
        foreach (var c in Cases(Upscale, NoNames(Safetensors(rng, "unet/diffusion_pytorch_model.safetensors", 10)), run)) yield return c;
        // the 8-channel InstructPix2Pix UNet in the upscaler, and the upscaler's 7-channel UNet in InstructPix2Pix
        yield return new("tiny-sd-upscale: the unet of tiny-sd-instruct-pix2pix", Upscale, w => CopyComponent(w, Pix2Pix, "unet"), run);
        yield return new("tiny-sd-upscale: the unet of tiny-sd", Upscale, w => CopyComponent(w, Sd, "unet"), run);
        foreach (var c in Cases(Upscale, Missing("low_res_scheduler", "low_res_scheduler/scheduler_config.json", "unet/diffusion_pytorch_model.safetensors"), run))
            yield return c;
    }

    /// <summary>StableDiffusionInstructPix2PixPipeline (tiny-sd-instruct-pix2pix): the 8-channel UNet, its config and weights.</summary>
    public static IEnumerable<FuzzCase> InstructPix2PixFolders()
    {
        var rng = new Random(Seed + 2);
        Func<FuzzWorkspace, string[]> run = w => FuzzCommands.InstructPix2Pix(w);
        yield return new("tiny-sd-instruct-pix2pix unchanged", Pix2Pix, _ => { }, run);
        foreach (var c in Cases(Pix2Pix, Keys("unet/config.json",
                     ("in_channels", "4"), ("in_channels", "9"), ("in_channels", "7"), ("out_channels", "8"), ("in_channels", "0"), ("in_channels", "null")), run))
            yield return c;
        foreach (var c in Cases(Pix2Pix, ConfigValues(rng, Golden.Path(Pix2Pix, "unet/config.json"), "unet/config.json", 12), run)) yield return c;
        foreach (var c in Cases(Pix2Pix, ConfigValues(rng, Golden.Path(Pix2Pix, "scheduler/scheduler_config.json"), "scheduler/scheduler_config.json", 6), run)) yield return c;
        foreach (var c in Cases(Pix2Pix, NoNames(Safetensors(rng, "unet/diffusion_pytorch_model.safetensors", 10)), run)) yield return c;
        yield return new("tiny-sd-instruct-pix2pix: the unet of tiny-sd-upscale", Pix2Pix, w => CopyComponent(w, Upscale, "unet"), run);
        yield return new("tiny-sd-instruct-pix2pix: the unet of tiny-sd", Pix2Pix, w => CopyComponent(w, Sd, "unet"), run);
        foreach (var c in Cases(Pix2Pix, Missing("unet/config.json", "vae/diffusion_pytorch_model.safetensors"), run)) yield return c;
    }

    /// <summary>
    /// Prepares a T2I-Adapter workspace from tiny-sd: the SD-order UNet of tests/golden/tiny-t2i-adapter and the adapters
    /// <c>sd-full</c> in <c>model/adapter</c>, <c>sd-light</c> in <c>model/adapter-light</c>, <c>sd-full-gray</c> in
    /// <c>model/adapter-gray</c>, <c>sdxl-full</c> in <c>model/adapter-xl</c>.
    /// </summary>
    public static void WithAdapter(FuzzWorkspace w)
    {
        Directory.Delete(w.File("unet"), recursive: true);
        CopyFolder(Golden.Path("tiny-t2i-adapter", "sd-unet"), w.File("unet"));
        foreach (var (from, to) in new[] { ("sd-full", "adapter"), ("sd-light", "adapter-light"), ("sd-full-gray", "adapter-gray"), ("sdxl-full", "adapter-xl") })
            CopyFolder(Golden.Path("tiny-t2i-adapter", from), w.File(to));
    }

    /// <summary>T2IAdapter and MultiAdapter (tiny-t2i-adapter on tiny-sd through <c>--adapter</c>): adapter configs, weights, mismatched adapters.</summary>
    public static IEnumerable<FuzzCase> AdapterFolders()
    {
        var rng = new Random(Seed + 3);
        Func<FuzzWorkspace, string[]> run = w => FuzzCommands.Adapter(w);
        yield return new("t2i-adapter unchanged", Sd, WithAdapter, run);
        foreach (var c in Cases(Sd, Keys("adapter/config.json",
                     ("adapter_type", "\"full_adapter_xl\""), ("adapter_type", "\"light_adapter\""), ("adapter_type", "\"x\""), ("adapter_type", "null"),
                     ("channels", "[32]"), ("channels", "[32, 64, 64]"), ("channels", "[]"), ("channels", "[0, 64]"), ("channels", "[32, 64, 128, 256, 512]"),
                     ("downscale_factor", "0"), ("downscale_factor", "1"), ("downscale_factor", "4"), ("downscale_factor", "-2"), ("downscale_factor", "3"),
                     ("in_channels", "0"), ("in_channels", "1"), ("in_channels", "-3"), ("num_res_blocks", "0"), ("num_res_blocks", "-1"),
                     ("num_res_blocks", "100000"), ("_class_name", "\"UNet2DModel\""), ("_class_name", "\"MultiAdapter\"")), run, WithAdapter))
            yield return c;
        foreach (var c in Cases(Sd, ConfigValues(rng, Golden.Path("tiny-t2i-adapter", "sd-full", "config.json"), "adapter/config.json", 16), run, WithAdapter))
            yield return c;
        foreach (var c in Cases(Sd, Whole("adapter/config.json", "", "null", "{}"), run, WithAdapter)) yield return c;
        foreach (var c in Cases(Sd, NoNames(Safetensors(rng, "adapter/diffusion_pytorch_model.safetensors", 14)), run, WithAdapter)) yield return c;
        foreach (var c in Cases(Sd, Missing("adapter/diffusion_pytorch_model.safetensors", "adapter/config.json", "adapter"), run, WithAdapter)) yield return c;
        // weights of another adapter type under this config (same names, other shapes; other names)
        foreach (var (from, what) in new[] { ("adapter-light", "light"), ("adapter-gray", "one-channel"), ("adapter-xl", "SDXL") })
            yield return new($"t2i-adapter: the weights of the {what} adapter", Sd, w =>
            {
                WithAdapter(w);
                File.Copy(w.File(from, "diffusion_pytorch_model.safetensors"), w.File("adapter", "diffusion_pytorch_model.safetensors"), overwrite: true);
            }, run);
        // an adapter whose features do not fit the UNet: the SDXL adapter on Stable Diffusion, a light adapter of other channels
        yield return new("t2i-adapter: the SDXL adapter on a Stable Diffusion UNet", Sd, WithAdapter, w => FuzzCommands.Adapter(w, ("--adapter", w.File("adapter-xl"))));
        // MultiAdapter: pairs of adapters, one of them changed
        string[] multi = ["adapter", "adapter-light", "adapter-gray", "adapter-xl"];
        for (int i = 0; i < 8; i++)
        {
            string a = multi[rng.Next(multi.Length)], b = multi[rng.Next(multi.Length)];
            var change = ConfigValues(rng, Golden.Path("tiny-t2i-adapter", "sd-full", "config.json"), $"{b}/config.json", 1).Single();
            bool mutate = rng.Next(2) == 0;
            yield return new($"t2i-adapter: MultiAdapter {a} + {b}{(mutate ? ", " + change.Name : "")}", Sd, w =>
            {
                WithAdapter(w);
                if (mutate) change.Mutate(w);
            }, w => [.. FuzzCommands.Adapter(w, ("--adapter", w.File(a))), "--adapter", w.File(b), "--adapter-image", Golden.Path("controlnet-edges.png")])
            { Names = mutate ? change.Names : [] };
        }
    }

    private static void CopyComponent(FuzzWorkspace w, string model, string component)
    {
        Directory.Delete(w.File(component), recursive: true);
        CopyFolder(Golden.Path(model, component), w.File(component));
    }

    private static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
    }
}
