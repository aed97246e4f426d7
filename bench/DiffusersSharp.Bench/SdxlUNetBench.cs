using System.Text.RegularExpressions;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Bench;

/// <summary>
/// Issue 12's SDXL memory / speed check with random weights: one SDXL base UNet step (2,567,463,684 parameters) on the
/// classifier-free-guidance batch of a 1024² image (latents 2×4×128×128, text states 2×77×2048, text_embeds 2×1280,
/// time ids 2×6), fp32 and bf16: step time, FLOP count (convolutions, linear layers and attention matmuls counted from
/// the model's own modules), GFLOP/s, and peak RSS against the weights (target ≤ 1.3×). <c>--unet-config</c> runs
/// another UNet config (e.g. the tiny golden one, to check the code quickly); <c>--size</c> / <c>--batch</c> change the latents;
/// <c>--flops-only</c> prints the FLOP count (a meta-device build) without allocating the model.
/// </summary>
public static class SdxlUNetBench
{
    // stabilityai/stable-diffusion-xl-base-1.0 unet/config.json
    public const string SdxlBaseConfig = """
        {
          "_class_name": "UNet2DConditionModel", "act_fn": "silu", "addition_embed_type": "text_time",
          "addition_embed_type_num_heads": 64, "addition_time_embed_dim": 256, "attention_head_dim": [5, 10, 20],
          "block_out_channels": [320, 640, 1280], "center_input_sample": false, "cross_attention_dim": 2048,
          "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"], "downsample_padding": 1,
          "flip_sin_to_cos": true, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2, "mid_block_scale_factor": 1,
          "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 4, "projection_class_embeddings_input_dim": 2816,
          "sample_size": 128, "transformer_layers_per_block": [1, 2, 10],
          "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"], "use_linear_projection": true
        }
        """;

    /// <summary>Runs the benchmark (see the class summary).</summary>
    public static void Run(int[] threads, ScalarType[] dtypes, int runs, string? configPath, int size, int batch, bool flopsOnly = false)
    {
        var config = configPath is null
            ? ConfigJson.Parse<UNet2DConditionModelConfig>(SdxlBaseConfig, "sdxl base unet")
            : ConfigJson.Read<UNet2DConditionModelConfig>(configPath);
        int textLen = 77;
        int ehsDim = config.CrossAttentionDim[0];
        int timeIds = 6;
        int textEmbeds = (config.ProjectionClassEmbeddingsInputDim ?? 0) - timeIds * (config.AdditionTimeEmbedDim ?? 0);
        if (textEmbeds <= 0) { timeIds = 5; textEmbeds = (config.ProjectionClassEmbeddingsInputDim ?? 0) - 5 * (config.AdditionTimeEmbedDim ?? 0); }
        var flops = CountFlops(config, size, size, batch, textLen);
        double gflop = flops.Total / 1e9;
        Console.WriteLine($"SDXL UNet ({configPath ?? "stable-diffusion-xl-base-1.0"}), latents {batch}x4x{size}x{size}, text states {batch}x{textLen}x{ehsDim}, " +
            $"text_embeds {batch}x{textEmbeds}, time ids {batch}x{timeIds}; {gflop:F1} GFLOP per step");
        Console.WriteLine($"  by kind: {flops.Describe()}");
        if (flopsOnly) return;
        long baseline = Harness.RssBytes();
        foreach (var dtype in dtypes)
        {
            torch.manual_seed(0);
            using var unet = UNet2DConditionModel.FromConfig(config);
            unet.eval();
            if (dtype != ScalarType.Float32) unet.to(dtype);
            long weights = unet.parameters().Sum(p => p.numel() * p.element_size());
            Console.WriteLine($"  parameters: {unet.NumParameters():N0}, dtype {dtype}, weights {weights / 1e9:F2} GB, RSS {Harness.RssBytes() / 1e9:F2} GB");
            using var x = torch.randn(new long[] { batch, config.InChannels, size, size }, generator: new Generator(1)).to(dtype);
            using var ehs = torch.randn(new long[] { batch, textLen, ehsDim }, generator: new Generator(2)).to(dtype);
            using var te = torch.randn(new long[] { batch, textEmbeds }, generator: new Generator(3)).to(dtype);
            using var ids = torch.tensor(Enumerable.Repeat(new float[] { 1024, 1024, 0, 0, 1024, 1024 }.Take(timeIds), batch).SelectMany(r => r).ToArray(),
                new long[] { batch, timeIds }).to(dtype);
            using var t = torch.tensor(new long[] { 981 });
            var added = new AddedCondKwargs(te, ids);
            foreach (int n in threads)
            {
                torch.set_num_threads(n);
                using (torch.inference_mode())
                    Harness.Time($"SDXL UNet step {dtype} {n} thread(s)", 1, runs, () =>
                    {
                        using var scope = torch.NewDisposeScope();
                        unet.Forward(x, t, ehs, addedCondKwargs: added);
                    }, gflop);
            }
            long peak = Harness.PeakRssBytes();
            Console.WriteLine($"  peak RSS {peak / 1e9:F2} GB = {(double)peak / weights:F2}x the weights ({(double)(peak - baseline) / weights:F2}x over the process before the model)");
        }
    }

    private static readonly Regex Down = new(@"^down_blocks\.(\d+)\.", RegexOptions.Compiled);
    private static readonly Regex Up = new(@"^up_blocks\.(\d+)\.", RegexOptions.Compiled);

    /// <summary>
    /// Floating-point operations (2 per multiply-add) of one forward: every Conv2d and Linear of the model (built on the meta
    /// device, so no memory) at the resolution of its level, plus the attention matmuls (QKᵀ and AV; cross-attention
    /// against <paramref name="textLen"/> tokens), by kind. Norms, activations and additions are left out (a few percent).
    /// </summary>
    public static UNetFlops CountFlops(UNet2DConditionModelConfig config, long h, long w, int batch, int textLen)
    {
        var previous = torch.get_default_device();
        torch.set_default_device(torch.META);
        UNet2DConditionModel built;
        try { built = UNet2DConditionModel.FromConfig(config); }
        finally { torch.set_default_device(previous); }
        using var unet = built;
        int levels = config.BlockOutChannels.Length;
        double spatial = 0, pointwise = 0, attention = 0;
        foreach (var (name, module) in unet.named_modules())
        {
            if (module is not (TorchSharp.Modules.Conv2d or TorchSharp.Modules.Linear or DiffusersSharp.Models.Lora.LoRACompatibleLayer)) continue;
            var weight = module.named_parameters().First(p => p.name == "weight").parameter;
            int level = Level(name, levels);
            long tokens = name.StartsWith("time_embedding", StringComparison.Ordinal) || name.StartsWith("add_embedding", StringComparison.Ordinal)
                || name.EndsWith("time_emb_proj", StringComparison.Ordinal) ? 1
                : Math.Max(1, h >> level) * Math.Max(1, w >> level);
            if (name.Contains(".attn2.to_k", StringComparison.Ordinal) || name.Contains(".attn2.to_v", StringComparison.Ordinal)) tokens = textLen;
            double macs = (double)weight.numel() * tokens;   // conv: Cout·Cin·k² per output pixel; linear: in·out per token
            if (weight.dim() == 4 && weight.shape[2] * weight.shape[3] > 1) spatial += macs; else pointwise += macs;
            if (name.EndsWith(".to_q", StringComparison.Ordinal))
            {
                long s = Math.Max(1, h >> level) * Math.Max(1, w >> level), c = weight.shape[0];
                long keys = name.Contains(".attn2.", StringComparison.Ordinal) ? textLen : s;
                attention += 2.0 * s * keys * c;
            }
        }
        return new(2 * spatial * batch, 2 * pointwise * batch, 2 * attention * batch);
    }

    /// <summary>
    /// A forward's floating-point operations by kind: convolutions with kernels above 1×1 (<c>Spatial</c>), linear layers
    /// and 1×1 convolutions (<c>Pointwise</c>: plain matrix products), and the attention matmuls.
    /// </summary>
    public readonly record struct UNetFlops(double Spatial, double Pointwise, double Attention)
    {
        /// <summary>All three kinds.</summary>
        public double Total => Spatial + Pointwise + Attention;

        /// <summary>"3x3 convolutions …, linear layers and 1x1 convolutions …, attention matmuls … GFLOP", for the benches' headers.</summary>
        public string Describe() =>
            $"3x3 convolutions {Spatial / 1e9:F1}, linear layers and 1x1 convolutions {Pointwise / 1e9:F1}, attention matmuls {Attention / 1e9:F1} GFLOP";
    }

    /// <summary>The resolution level (0 = full latent size) a module's output has.</summary>
    private static int Level(string name, int levels)
    {
        if (Down.Match(name) is { Success: true } d)
            return int.Parse(d.Groups[1].Value) + (name.Contains(".downsamplers.", StringComparison.Ordinal) ? 1 : 0);
        if (name.StartsWith("mid_block.", StringComparison.Ordinal)) return levels - 1;
        if (Up.Match(name) is { Success: true } u)
            return levels - 1 - int.Parse(u.Groups[1].Value) - (name.Contains(".upsamplers.", StringComparison.Ordinal) ? 1 : 0);
        return 0;
    }
}
