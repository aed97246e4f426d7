using System.Buffers.Binary;
using System.Text;
using static DiffusersSharp.Tests.Fuzz.FuzzCommands;

namespace DiffusersSharp.Tests.Fuzz;

/// <summary>The inputs issue 11 lists one by one (crashes, memory exhaustion, silent NaN output, reads outside the model).</summary>
internal static class IssueCases
{
    private const string Ddpm = "tiny-ddpm", Sd = "tiny-sd";
    private const string UNetConfig = "unet/config.json", DdpmScheduler = "scheduler/scheduler_config.json";
    private const string UNetWeights = "unet/diffusion_pytorch_model.safetensors", UNetBin = "unet/diffusion_pytorch_model.bin";

    public static IEnumerable<FuzzCase> All()
    {
        // --- crashes
        yield return new("safetensors: invalid UTF-8 in a tensor name", Ddpm,
            w => WeightFiles.ReplaceInHeader(w.File(UNetWeights), "conv_in.weight", [0x63, 0xC3, 0x28, 0xFF, 0x6E]), w => FuzzCommands.Ddpm(w));
        yield return new("safetensors: control characters in a tensor name", Ddpm,
            w => WeightFiles.ReplaceInHeader(w.File(UNetWeights), "conv_in.weight", Encoding.ASCII.GetBytes("conv_in\\u001b[31m\\n.weight")), w => FuzzCommands.Ddpm(w));
        yield return new(".bin: corrupt zip local header", Ddpm, w =>
        {
            w.Delete(UNetWeights);
            WeightFiles.Poke(w.File(UNetBin), WeightFiles.LocalHeader(w.File(UNetBin), 0) + 26, [0xFF, 0xFF]);
        }, w => FuzzCommands.Ddpm(w));
        yield return new(".bin: corrupt local header of a storage", Ddpm, w =>
        {
            w.Delete(UNetWeights);
            WeightFiles.Poke(w.File(UNetBin), FindLocalHeaderOf(w.File(UNetBin), "data/0") + 28, [0xFF, 0x7F]);
        }, w => FuzzCommands.Ddpm(w));
        yield return new(".bin: corrupt local header of byteorder", Ddpm, w =>
        {
            w.Delete(UNetWeights);
            WeightFiles.EditZipEntry(w.File(UNetBin), "data.pkl", b => b, add: ("byteorder", "little"u8.ToArray()));
            long at = FindLocalHeaderOf(w.File(UNetBin), "byteorder");
            WeightFiles.Poke(w.File(UNetBin), at + 26, [0xFF, 0x7F]);
        }, w => FuzzCommands.Ddpm(w));
        foreach (var json in new[] { "null", "[]", "42", "\"x\"" })
        {
            yield return new($"unet/config.json is {json}", Ddpm, w => w.Write(UNetConfig, json), w => FuzzCommands.Ddpm(w));
            yield return new($"scheduler_config.json is {json}", Ddpm, w => w.Write(DdpmScheduler, json), w => FuzzCommands.Ddpm(w));
            yield return new($"tokenizer_config.json is {json}", Sd, w => w.Write("tokenizer/tokenizer_config.json", json), w => FuzzCommands.Sd(w));
            yield return new($"info: unet/config.json is {json}", Sd, w => w.Write(UNetConfig, json), Info);
        }
        foreach (var (key, value) in new[]
        {
            ("block_out_channels", "null"), ("up_block_types", "null"), ("down_block_types", "null"), ("act_fn", "null"),
            ("attention_head_dim", "64"), ("sample_size", "0"), ("sample_size", "-8"), ("sample_size", "30"),
            ("attn_norm_num_groups", "0"), ("attn_norm_num_groups", "-1"), ("attn_norm_num_groups", "3"),
            ("downsample_padding", "-1"), ("downsample_padding", "100"), ("num_class_embeds", "-1"),
            ("class_embed_type", "\"identity\""), ("class_embed_type", "\"timestep\""), ("num_class_embeds", "10"),
            ("block_out_channels", "[2147483647, 2147483647]"), ("block_out_channels", "[65536, 65536]"), ("layers_per_block", "100000"),
            ("norm_eps", "NaN"), ("norm_eps", "-1"), ("norm_eps", "-Infinity"), ("mid_block_scale_factor", "NaN"),
            ("time_embedding_type", "\"learned\""), ("freq_shift", "2147483647"),
        })
            yield return new($"unet/config.json {key}={value}", Ddpm, w => w.SetJson(UNetConfig, key, value), w => FuzzCommands.Ddpm(w)) { Names = [key] };
        yield return new("unet/config.json learned time embedding, num_train_timesteps 1e9", Ddpm, w =>
        {
            w.SetJson(UNetConfig, "time_embedding_type", "\"learned\"");
            w.SetJson(UNetConfig, "num_train_timesteps", "1000000000");
        }, w => FuzzCommands.Ddpm(w))
        { Names = ["num_train_timesteps"] };
        foreach (var (key, value) in new[]
        {
            ("num_train_timesteps", "1000000000"), ("beta_start", "-1"), ("beta_start", "Infinity"), ("beta_end", "NaN"),
            ("beta_end", "-Infinity"), ("trained_betas", "[" + string.Join(",", Enumerable.Repeat("2.0", 1000)) + "]"),
            ("trained_betas", "[" + string.Join(",", Enumerable.Repeat("-0.5", 1000)) + "]"), ("trained_betas", "[0.1]"),
        })
            yield return new($"scheduler_config.json {key}={Short(value)}", Ddpm, w => w.SetJson(DdpmScheduler, key, value), w => FuzzCommands.Ddpm(w)) { Names = [key] };
        yield return new("tokenizer model_max_length 1e30", Sd, w => w.SetJson("tokenizer/tokenizer_config.json", "model_max_length", "1e30"), w => FuzzCommands.Sd(w)) { Names = ["model_max_length"] };
        yield return new("tokenizer model_max_length 0", Sd, w => w.SetJson("tokenizer/tokenizer_config.json", "model_max_length", "0"), w => FuzzCommands.Sd(w)) { Names = ["model_max_length"] };
        yield return new("tokenizer model_max_length 100 (> max_position_embeddings)", Sd, w => w.SetJson("tokenizer/tokenizer_config.json", "model_max_length", "100"), w => FuzzCommands.Sd(w)) { Names = ["model_max_length"] };
        foreach (var attr in new[] { "eos_token", "pad_token", "bos_token" })
            yield return new($"tokenizer {attr} not in the vocabulary", Sd, w => w.SetJson("tokenizer/tokenizer_config.json", attr, "\"<|not-there|>\""), w => FuzzCommands.Sd(w)) { Names = [attr] };
        yield return new("text encoder vocab_size below the tokenizer's ids", Sd, w => w.SetJson("text_encoder/config.json", "vocab_size", "500"), w => FuzzCommands.Sd(w)) { Names = ["vocab_size"] };
        // (--batch 100000 of the issue needs ~47 GiB by the estimate: refused here, allowed on a larger machine; this
        // one is refused on any)
        yield return new("--batch 100000000", Ddpm, _ => { }, w => FuzzCommands.Ddpm(w, ("--batch", "100000000")));
        yield return new("--batch 2147483647", Sd, _ => { }, w => FuzzCommands.Sd(w, ("--batch", "2147483647")));
        yield return new("--width 2147483640", Sd, _ => { }, w => FuzzCommands.Sd(w, ("--width", "2147483640")));
        yield return new("--height 16392", Sd, _ => { }, w => FuzzCommands.Sd(w, ("--height", "16392")));
        yield return new("--init-image 30000x30000 PNG", Sd, w => File.WriteAllBytes(Path.Combine(w.Root, "big.png"), HugePng(30000, 30000)),
            w => FuzzCommands.Sd(w, ("--init-image", Path.Combine(w.Root, "big.png")), ("--width", null!), ("--height", null!)));
        yield return new("--mask 30000x30000 PNG", Sd, w =>
        {
            File.WriteAllBytes(Path.Combine(w.Root, "big.png"), HugePng(30000, 30000));
            File.Copy(Support.Golden.Path("img2img-init.png"), Path.Combine(w.Root, "init.png"));
        }, w => FuzzCommands.Sd(w, ("--init-image", Path.Combine(w.Root, "init.png")), ("--mask", Path.Combine(w.Root, "big.png"))));

        // --- silent wrong answers
        foreach (var (what, value, all) in new[] { ("NaN", float.NaN, false), ("+Inf", float.PositiveInfinity, false), ("-Inf", float.NegativeInfinity, false), ("3e38", 3e38f, true) })
        {
            yield return new($"unet weight {what}", Ddpm, w => WeightFiles.SetValues(w.File(UNetWeights), WeightFiles.FirstTensor(w.File(UNetWeights)), value, all), w => FuzzCommands.Ddpm(w));
            foreach (var part in new[] { "unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors" })
                yield return new($"{part} weight {what}", Sd, w => WeightFiles.SetValues(w.File(part), WeightFiles.FirstTensor(w.File(part)), value, all), w => FuzzCommands.Sd(w));
        }
        yield return new(".bin weight NaN", Ddpm, w =>
        {
            w.Delete(UNetWeights);
            WeightFiles.EditZipEntry(w.File(UNetBin), "data/0", b => { BitConverter.GetBytes(float.NaN).CopyTo(b, 0); return b; });
        }, w => FuzzCommands.Ddpm(w));
        yield return new("--scheduler-config beta_end=nan", Ddpm, _ => { }, w => FuzzCommands.Ddpm(w, ("--scheduler-config", "beta_end=nan")));
        yield return new("--scheduler-config beta_start=-1", Sd, _ => { }, w => FuzzCommands.Sd(w, ("--scheduler-config", "beta_start=-1")));
        yield return new("--eta 1e308", Ddpm, _ => { }, w => FuzzCommands.Ddpm(w, ("--scheduler", "ddim"), ("--eta", "1e308")));
        yield return new("--eta 1.5", Sd, _ => { }, w => FuzzCommands.Sd(w, ("--scheduler", "ddim"), ("--eta", "1.5")));
        yield return new("--guidance 1e308", Sd, _ => { }, w => FuzzCommands.Sd(w, ("--guidance", "1e308")));
        yield return new("--guidance nan", Sd, _ => { }, w => FuzzCommands.Sd(w, ("--guidance", "nan")));
        yield return new("--strength nan", Sd, w => File.Copy(Support.Golden.Path("img2img-init.png"), Path.Combine(w.Root, "init.png")),
            w => FuzzCommands.Sd(w, ("--init-image", Path.Combine(w.Root, "init.png")), ("--strength", "nan"), ("--width", null!), ("--height", null!)));
        foreach (var name in new[] { "../outside", "/abs", "unet/../../outside", ".", "..", "a\\b", "un\net" })
        {
            yield return new($"model_index component '{name}' (info)", Ddpm, w => AddComponent(w, name), Info);
            yield return new($"model_index component '{name}' (generate)", Ddpm, w => AddComponent(w, name), w => FuzzCommands.Ddpm(w));
        }
        yield return new("model_index unet → ../outside (info)", Ddpm, w =>
        {
            w.RemoveJson("model_index.json", "unet");
            w.SetJson("model_index.json", Path.Combine(w.Root, "outside"), "[\"diffusers\", \"UNet2DModel\"]");
        }, Info);

        // --- smaller
        foreach (var (option, value) in new[] { ("--steps", "abc"), ("--batch", "1.5"), ("--seed", "x"), ("--dtype", "fp8"), ("--width", "-"), ("--eta", "e") })
            yield return new($"{option} {value}", Ddpm, _ => { }, w => FuzzCommands.Ddpm(w, (option, value)));
    }

    private static void AddComponent(FuzzWorkspace w, string name)
    {
        string n = name == "/abs" ? Path.Combine(w.Root, "outside") : name;
        w.SetJson("model_index.json", n, "[\"diffusers\", \"UNet2DModel\"]");
    }

    private static string Short(string s) => s.Length <= 20 ? s : s[..17] + "...";

    private static long FindLocalHeaderOf(string path, string suffix)
    {
        byte[] all = File.ReadAllBytes(path);
        byte[] name = Encoding.ASCII.GetBytes(suffix);
        for (int i = 0; i + 30 <= all.Length; i++)
        {
            if (all[i] != 0x50 || all[i + 1] != 0x4B || all[i + 2] != 3 || all[i + 3] != 4) continue;
            int n = BinaryPrimitives.ReadUInt16LittleEndian(all.AsSpan(i + 26));
            if (all.AsSpan(i + 30, n).EndsWith(name)) return i;
        }
        throw new InvalidOperationException($"no local header for *{suffix} in {path}");
    }

    /// <summary>A PNG that declares <paramref name="w"/>×<paramref name="h"/> pixels (RGB) with a single all-zero row of data.</summary>
    public static byte[] HugePng(int w, int h)
    {
        using var m = new MemoryStream();
        m.Write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, w);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), h);
        ihdr[8] = 8; ihdr[9] = 2; // 8-bit RGB
        Chunk(m, "IHDR", ihdr);
        using (var z = new MemoryStream())
        {
            using (var d = new System.IO.Compression.ZLibStream(z, System.IO.Compression.CompressionLevel.SmallestSize, leaveOpen: true))
                d.Write(new byte[1 + 3 * w]);
            Chunk(m, "IDAT", z.ToArray());
        }
        Chunk(m, "IEND", []);
        return m.ToArray();
    }

    private static void Chunk(Stream s, string type, byte[] data)
    {
        var len = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(len, data.Length);
        s.Write(len);
        byte[] typeAndData = [.. Encoding.ASCII.GetBytes(type), .. data];
        s.Write(typeAndData);
        var crc = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(crc, Crc32(typeAndData));
        s.Write(crc);
    }

    private static uint Crc32(byte[] data)
    {
        uint c = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            c ^= b;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
        }
        return ~c;
    }
}
