using System.Text;
using System.Text.Json.Nodes;
using static DiffusersSharp.Tests.Fuzz.FuzzCommands;

namespace DiffusersSharp.Tests.Fuzz;

/// <summary>
/// Seeded random fuzz cases over every file family (configs, weights, tokenizer files, model_index.json, images,
/// options). Each family draws from its own <see cref="Random"/> with a fixed seed, so the cases are the same on
/// every run; change <see cref="Seed"/> to explore others.
/// </summary>
internal static class RandomCases
{
    public const int Seed = 11;
    private const string Ddpm = "tiny-ddpm", Sd = "tiny-sd";

    /// <summary>JSON values that break configs: wrong types, out of range, non-finite, huge, empty.</summary>
    internal static readonly string[] Values =
    [
        "null", "true", "false", "0", "1", "-1", "2", "3", "7", "1.5", "-0.5", "1e-30", "2147483647", "-2147483648", "1e30",
        "1e308", "-1e308", "NaN", "Infinity", "-Infinity", "3e38", "\"\"", "\"x\"", "\"silu\"", "\"../x\"", "\"\\u001b[31m\"",
        "[]", "[0]", "[-1]", "[1, 2]", "[\"x\"]", "[null]", "{}", "[32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072]",
    ];

    /// <summary>A key of the file (or one of <paramref name="extraKeys"/>) set to a random bad value, <paramref name="count"/> times.</summary>
    private static IEnumerable<FuzzCase> ConfigValues(Random rng, string model, string file, int count, Func<FuzzWorkspace, string[]> args, params string[] extraKeys)
    {
        var keys = ((JsonObject)JsonNode.Parse(File.ReadAllText(Support.Golden.Path(model, file)))!).Select(kv => kv.Key).Concat(extraKeys).Distinct().ToArray();
        for (int i = 0; i < count; i++)
        {
            string key = keys[rng.Next(keys.Length)], value = Values[rng.Next(Values.Length)];
            if (rng.Next(4) == 0)
            {
                // two keys at once
                string key2 = keys[rng.Next(keys.Length)], value2 = Values[rng.Next(Values.Length)];
                yield return new($"{model}/{file} {key}={value}, {key2}={value2}", model, w => w.SetJson(file, (key, value), (key2, value2)), args)
                { Names = [key, key2] };
            }
            else
                yield return new($"{model}/{file} {key}={value}", model, w => w.SetJson(file, key, value), args) { Names = [key] };
        }
    }

    public static IEnumerable<FuzzCase> Configs()
    {
        var rng = new Random(Seed);
        yield return new("tiny-ddpm unchanged", Ddpm, _ => { }, w => FuzzCommands.Ddpm(w));
        yield return new("tiny-sd unchanged", Sd, _ => { }, w => FuzzCommands.Sd(w));
        foreach (var c in ConfigValues(rng, Ddpm, "unet/config.json", 32, w => FuzzCommands.Ddpm(w))) yield return c;
        foreach (var c in ConfigValues(rng, Ddpm, "scheduler/scheduler_config.json", 20, w => FuzzCommands.Ddpm(w), "use_karras_sigmas", "solver_order")) yield return c;
        foreach (var c in ConfigValues(rng, Ddpm, "model_index.json", 6, w => FuzzCommands.Ddpm(w))) yield return c;
        foreach (var c in ConfigValues(rng, Sd, "unet/config.json", 30, w => FuzzCommands.Sd(w))) yield return c;
        foreach (var c in ConfigValues(rng, Sd, "vae/config.json", 18, w => FuzzCommands.Sd(w))) yield return c;
        foreach (var c in ConfigValues(rng, Sd, "text_encoder/config.json", 18, w => FuzzCommands.Sd(w))) yield return c;
        foreach (var c in ConfigValues(rng, Sd, "scheduler/scheduler_config.json", 15, w => FuzzCommands.Sd(w))) yield return c;
        foreach (var c in ConfigValues(rng, Sd, "model_index.json", 8, Info)) yield return c;
        foreach (var c in ConfigValues(rng, Sd, "unet/config.json", 8, Info)) yield return c;
        // whole files that are not config objects
        string[] wholes = ["", "{", "null", "[]", "42", "\"x\"", "{\"a\": 1,}", "\uFEFF{}", "{\"a\": \"\\ud800\"}"];
        foreach (var file in new[] { "unet/config.json", "vae/config.json", "text_encoder/config.json", "scheduler/scheduler_config.json", "model_index.json" })
        {
            string text = wholes[rng.Next(wholes.Length)];
            yield return new($"tiny-sd/{file} is '{text}'", Sd, w => w.Write(file, text), w => FuzzCommands.Sd(w));
        }
        yield return new("tiny-sd/unet/config.json is invalid UTF-8", Sd, w => w.Write("unet/config.json", [0x7B, 0x22, 0xC3, 0x28, 0x22, 0x3A, 0x31, 0x7D]), w => FuzzCommands.Sd(w));
    }

    public static IEnumerable<FuzzCase> Tokenizer()
    {
        var rng = new Random(Seed + 1);
        foreach (var c in ConfigValues(rng, Sd, "tokenizer/tokenizer_config.json", 18, w => FuzzCommands.Sd(w))) yield return c;
        foreach (var c in ConfigValues(rng, Sd, "tokenizer/special_tokens_map.json", 8, w => FuzzCommands.Sd(w))) yield return c;
        foreach (var (name, text) in new[]
                 {
                     ("vocab.json", "[]"), ("vocab.json", "{\"a</w>\": -1}"), ("vocab.json", "{\"a</w>\": 2147483647}"), ("vocab.json", "{\"a</w>\": \"x\"}"),
                     ("vocab.json", "{}"), ("vocab.json", "{\"a</w>\": 1, \"b</w>\": 1}"), ("vocab.json", ""), ("merges.txt", ""),
                     ("merges.txt", "#version: 0.2\na b c d\n"), ("merges.txt", "#version: 0.2\n\u0000 \u0001\n"), ("added_tokens.json", "{\"<x>\": 5000000}"),
                     ("added_tokens.json", "[1]"), ("special_tokens_map.json", "{\"eos_token\": 5}"), ("special_tokens_map.json", "{\"pad_token\": {\"content\": 1}}"),
                 })
            yield return new($"tokenizer/{name} = {Short(text)}", Sd, w =>
            {
                if (name is "added_tokens.json" or "special_tokens_map.json") w.RemoveJson("tokenizer/tokenizer_config.json", "added_tokens_decoder");
                w.Write("tokenizer/" + name, text);
            }, w => FuzzCommands.Sd(w))
            { Names = [name] };
        foreach (var name in new[] { "vocab.json", "merges.txt" })
            yield return new($"tokenizer/{name} missing", Sd, w => w.Delete("tokenizer/" + name), w => FuzzCommands.Sd(w)) { Names = [name] };
        yield return new("tokenizer/vocab.json with a control-character token", Sd, w =>
        {
            var vocab = (JsonObject)JsonNode.Parse(File.ReadAllText(w.File("tokenizer/vocab.json")))!;
            vocab["\u0007bell</w>"] = 5;
            w.Write("tokenizer/vocab.json", vocab.ToJsonString());
        }, w => FuzzCommands.Sd(w));
    }

    public static IEnumerable<FuzzCase> Weights()
    {
        var rng = new Random(Seed + 2);
        const string st = "unet/diffusion_pytorch_model.safetensors", bin = "unet/diffusion_pytorch_model.bin";
        string[] dtypes = ["F64", "I8", "BOOL", "F8_E4M3", "XX", "", "f32"];
        for (int i = 0; i < 30; i++)
        {
            int kind = rng.Next(9), pick = rng.Next(1000), pick2 = rng.Next(1000);
            long at = rng.Next(1 << 20);
            string name = $"safetensors mutation {kind}/{pick}";
            Action<FuzzWorkspace> mutate = kind switch
            {
                0 => w => WeightFiles.EditHeader(w.File(st), h => Entry(h, pick)["dtype"] = dtypes[pick % dtypes.Length]),
                1 => w => WeightFiles.EditHeader(w.File(st), h => Entry(h, pick)["shape"] = JsonNode.Parse(new[] { "[]", "[-1]", "[0]", "[2147483647, 2147483647, 2147483647]", "[1, 2, 3, 4, 5]", "[\"x\"]" }[pick2 % 6])),
                2 => w => WeightFiles.EditHeader(w.File(st), h => Entry(h, pick)["data_offsets"] = JsonNode.Parse(new[] { "[0, 0]", "[-4, 4]", "[8, 4]", "[0, 9223372036854775807]", "[0]", "null", "[0.5, 4]" }[pick2 % 7])),
                3 => w => WeightFiles.EditHeader(w.File(st), h => h.Remove(Entry(h, pick).GetPropertyName())),
                4 => w => WeightFiles.Poke(w.File(st), 0, BitConverter.GetBytes(new[] { 0L, -1L, long.MaxValue, 1L << 40, 7L }[pick % 5])),
                5 => w => Truncate(w.File(st), at),
                6 => w => WeightFiles.Poke(w.File(st), 8 + pick % 200, [(byte)rng.Next(256), (byte)rng.Next(256)]),
                7 => w => WeightFiles.Poke(w.File(st), -(1 + at % 1_000_000), [0xFF, 0xFF, 0xFF, 0x7F]),
                _ => w => WeightFiles.EditHeader(w.File(st), h => h["__metadata__"] = JsonNode.Parse(new[] { "[]", "{\"format\": 5}", "\"x\"", "{\"a\": {\"b\": null}}" }[pick2 % 4])),
            };
            yield return new(name, Ddpm, mutate, w => FuzzCommands.Ddpm(w));
        }
        for (int i = 0; i < 14; i++)
        {
            int kind = rng.Next(4);
            long at = rng.Next(1 << 20);
            byte b = (byte)rng.Next(256);
            yield return new($".bin mutation {kind}/{at}/{b}", Ddpm, w =>
            {
                w.Delete(st);
                string path = w.File(bin);
                long len = new FileInfo(path).Length;
                switch (kind)
                {
                    case 0: Truncate(path, at % len); break;
                    case 1: WeightFiles.Poke(path, at % len, [b]); break;
                    case 2: WeightFiles.EditZipEntry(path, "data.pkl", p => { p[(int)(at % p.Length)] = b; return p; }); break;
                    default: WeightFiles.EditZipEntry(path, "data.pkl", p => p[..(int)(at % p.Length)]); break;
                }
            }, w => FuzzCommands.Ddpm(w));
        }
        foreach (var part in new[] { "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors" })
            for (int i = 0; i < 3; i++)
            {
                long at = rng.Next(1 << 20);
                yield return new($"{part} truncated at {at}", Sd, w => Truncate(w.File(part), at), w => FuzzCommands.Sd(w));
            }
        yield return new("unet weights missing", Ddpm, w => { w.Delete(st); w.Delete(bin); }, w => FuzzCommands.Ddpm(w));
        yield return new("unet weights a git-lfs pointer", Ddpm, w => w.Write(st, "version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n"), w => FuzzCommands.Ddpm(w));
        yield return new("unet weights a folder", Ddpm, w => { w.Delete(st); Directory.CreateDirectory(w.File(st)); }, w => FuzzCommands.Ddpm(w));
        yield return new("unet fp16 weights of 1e5 (overflow in fp16)", Ddpm,
            w => WeightFiles.SetValues(w.File(st), WeightFiles.FirstTensor(w.File(st)), 1e5f, all: false), w => FuzzCommands.Ddpm(w, ("--dtype", "fp16")));
    }

    public static IEnumerable<FuzzCase> Options()
    {
        var rng = new Random(Seed + 3);
        (string Option, string[] Values)[] ddpm =
        [
            ("--steps", ["0", "-1", "1", "1001", "2147483647", "1e3", ""]), ("--batch", ["0", "-1", "2", "2147483647", "x"]),
            ("--seed", ["-1", "9223372036854775807", "18446744073709551615", "0x10"]), ("--scheduler", ["ddim", "euler", "dpm++2m", "warp", "", "LMSDiscreteScheduler", "unipc", "heun", "lcm", "dpm2-a"]),
            ("--scheduler-config", ["beta_end=nan", "beta_start=2", "num_train_timesteps=0", "num_train_timesteps=100000000", "timestep_spacing=sideways", "steps_offset=-5", "trained_betas=[0.5]", "clip_sample_range=-1", "prediction_type=\"v_prediction\"", "x=1", "=1", "variance_type=null"]),
            ("--eta", ["-0.1", "nan", "inf", "0.5", "1e308"]), ("--dtype", ["bf16", "fp16", "fp8", "FP32"]), ("--upscale", ["0", "2", "65", "-1"]),
            ("--output", ["out.txt", "", "/nonexistent/dir/x.png", "."]), ("--prompt", ["a cat"]),
        ];
        (string Option, string[] Values)[] sd =
        [
            ("--steps", ["0", "1", "2", "1001"]), ("--batch", ["0", "2", "2147483647"]), ("--guidance", ["0", "1", "-1", "1e308", "nan", "inf", "1000"]),
            ("--guidance-rescale", ["-1", "0.5", "2", "nan"]), ("--clip-skip", ["-1", "0", "1", "4", "5", "100"]),
            ("--width", ["0", "7", "8", "16", "16392", "-8", "2147483640"]), ("--height", ["0", "8", "24", "16392", "65536"]),
            ("--strength", ["0.5", "-1", "nan"]), ("--negative-prompt", ["", "a dog"]), ("--prompt", ["", new string('x', 5000), "\u0000\u001b[31m", "a cat"]),
            ("--scheduler", ["ddim", "euler-a", "dpm++2m-karras", "dpm2", "deis", "dpm++2s", "lms"]),
            ("--scheduler-config", ["beta_start=-1", "use_karras_sigmas=true", "solver_order=100", "sigma_min=5", "timestep_spacing=\"trailing\""]),
            ("--eta", ["0.3", "2"]), ("--mask", ["x.png"]),
        ];
        for (int i = 0; i < 25; i++)
        {
            var opts = Draw(rng, ddpm, rng.Next(1, 3));
            yield return new($"ddpm {Describe(opts)}", Ddpm, _ => { }, w => FuzzCommands.Ddpm(w, Resolve(w, opts))) { Names = opts.Select(o => o.Option).ToArray() };
        }
        for (int i = 0; i < 25; i++)
        {
            var opts = Draw(rng, sd, rng.Next(1, 3));
            yield return new($"sd {Describe(opts)}", Sd, _ => { }, w => FuzzCommands.Sd(w, Resolve(w, opts))) { Names = opts.Select(o => o.Option).ToArray() };
        }
    }

    public static IEnumerable<FuzzCase> Images()
    {
        var rng = new Random(Seed + 4);
        byte[] png = File.ReadAllBytes(Support.Golden.Path("img2img-init.png"));
        var files = new (string Name, Func<byte[]> Bytes)[]
        {
            ("empty", () => []), ("random bytes", () => { var b = new byte[4096]; rng.NextBytes(b); return b; }),
            ("truncated PNG", () => png[..(png.Length / 2)]), ("text", () => Encoding.ASCII.GetBytes("not an image\n")),
            ("PNG header only", () => png[..33]), ("1x1 PNG", () => IssueCases.HugePng(1, 1)), ("16384x8 PNG", () => IssueCases.HugePng(16384, 8)),
            ("8x16392 PNG", () => IssueCases.HugePng(8, 16392)), ("PNG with a flipped byte", () => { var b = (byte[])png.Clone(); b[png.Length / 3] ^= 0xFF; return b; }),
            ("golden PNG", () => png),
        };
        foreach (var (name, bytes) in files)
        {
            byte[] data = bytes();
            yield return new($"--init-image {name}", Sd, w => File.WriteAllBytes(Path.Combine(w.Root, "in.png"), data),
                w => FuzzCommands.Sd(w, ("--init-image", Path.Combine(w.Root, "in.png")), ("--width", null!), ("--height", null!)));
            yield return new($"--mask {name}", Sd, w =>
            {
                File.WriteAllBytes(Path.Combine(w.Root, "mask.png"), data);
                File.WriteAllBytes(Path.Combine(w.Root, "in.png"), png);
            }, w => FuzzCommands.Sd(w, ("--init-image", Path.Combine(w.Root, "in.png")), ("--mask", Path.Combine(w.Root, "mask.png"))));
        }
    }

    private static (string Option, string Value)[] Draw(Random rng, (string Option, string[] Values)[] pool, int n) =>
        Enumerable.Range(0, n).Select(_ => pool[rng.Next(pool.Length)]).DistinctBy(p => p.Option)
            .Select(p => (p.Option, p.Values[rng.Next(p.Values.Length)])).ToArray();

    /// <summary>Relative output and mask names are put in the workspace.</summary>
    private static (string, string)[] Resolve(FuzzWorkspace w, (string Option, string Value)[] opts) =>
        opts.Select(o => o.Option is "--output" or "--mask" && o.Value.Length > 0 && !o.Value.StartsWith('/') && o.Value != "."
            ? (o.Option, Path.Combine(w.Root, o.Value)) : (o.Option, o.Value)).ToArray();

    private static string Describe((string Option, string Value)[] opts) => string.Join(" ", opts.Select(o => $"{o.Option} {Short(o.Value)}"));

    private static string Short(string s) => s.Length <= 24 ? s : s[..21] + "...";

    /// <summary>The <paramref name="pick"/>-th tensor entry (by name) of a safetensors header.</summary>
    private static JsonObject Entry(JsonObject header, int pick)
    {
        var names = header.Where(kv => kv.Key != "__metadata__").Select(kv => kv.Key).Order(StringComparer.Ordinal).ToList();
        return (JsonObject)header[names[pick % names.Count]]!;
    }

    internal static void Truncate(string path, long at)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Write);
        fs.SetLength(at % Math.Max(1, fs.Length));
    }
}
