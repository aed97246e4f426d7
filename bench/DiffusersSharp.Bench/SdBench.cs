using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Bench;

/// <summary>
/// Issue 4's Stable Diffusion benchmarks with random weights: one SD 1.5 UNet step (859.5M parameters, latents
/// 2×4×64×64 = the classifier-free-guidance batch, text states 2×77×768; 1,607 GFLOP; targets at 2 threads
/// ≤ 6.0 s fp32, ≤ 4.0 s bf16) and the SD VAE decode of a 64×64 latent to 512² (seconds and peak RSS, untiled
/// or tiled: run each mode in its own process, since peak RSS only grows).
/// </summary>
public static class SdBench
{
    public const double UNetStepGflop = 1607.0;

    // runwayml/stable-diffusion-v1-5 vae/config.json
    public const string Sd15VaeConfig = """
    {
      "_class_name": "AutoencoderKL", "act_fn": "silu", "block_out_channels": [128, 256, 512, 512],
      "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
      "in_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32, "out_channels": 3,
      "sample_size": 512,
      "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"]
    }
    """;

    // runwayml/stable-diffusion-v1-5 unet/config.json
    public const string Sd15UNetConfig = """
    {
      "_class_name": "UNet2DConditionModel", "act_fn": "silu", "attention_head_dim": 8,
      "block_out_channels": [320, 640, 1280, 1280], "center_input_sample": false, "cross_attention_dim": 768,
      "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
      "downsample_padding": 1, "flip_sin_to_cos": true, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
      "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 4, "sample_size": 64,
      "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
    }
    """;

    public static void RunUNet(int[] threads, ScalarType[] dtypes, int runs, BenchWeights weights = BenchWeights.Loaded)
    {
        Console.WriteLine($"SD 1.5 UNet2DConditionModel, latents 2x4x64x64, text states 2x77x768; {UNetStepGflop} GFLOP per step; weights {weights.ToString().ToLowerInvariant()}");
        var flops = SdxlUNetBench.CountFlops(ConfigJson.Parse<UNet2DConditionModelConfig>(Sd15UNetConfig, "sd15 unet"), 64, 64, 2, 77);
        Console.WriteLine($"  by kind: {flops.Describe()}");
        foreach (var dtype in dtypes)
        {
            using var unet = Sd15UNet(dtype, weights);
            unet.eval();
            if (Harness.NchwRequested) unet.ChannelsLast = false;
            if (Environment.GetEnvironmentVariable("CL") == "1") unet.ChannelsLast = true;
            Console.WriteLine($"  parameters: {unet.NumParameters() / 1e6:F1}M, dtype {dtype}, RSS {Harness.RssBytes() / 1e9:F2} GB");
            using var x = torch.randn(new long[] { 2, 4, 64, 64 }, generator: new Generator(1)).to(dtype);
            using var ehs = torch.randn(new long[] { 2, 77, 768 }, generator: new Generator(2)).to(dtype);
            using var t = torch.tensor(new long[] { 981 });
            foreach (int n in threads)
            {
                torch.set_num_threads(n);
                using (torch.inference_mode())
                    Harness.Time($"UNet step {dtype} {Harness.Layout(unet.ChannelsLast)} {n} thread(s)", 1, runs, () =>
                    {
                        using var scope = torch.NewDisposeScope();
                        unet.Forward(x, t, ehs);
                    }, UNetStepGflop);
            }
            Console.WriteLine($"  peak RSS {Harness.PeakRssBytes() / 1e9:F2} GB");
        }
    }

    /// <summary>
    /// The SD 1.5 UNet with random weights (seed 0) in <paramref name="dtype"/>, loaded from the folder written once
    /// (<see cref="BenchWeights.Loaded"/>) or built and converted in place (<see cref="BenchWeights.Converted"/>).
    /// </summary>
    public static UNet2DConditionModel Sd15UNet(ScalarType dtype, BenchWeights weights) =>
        BenchModels.Model("sd15-unet", dtype, weights, RandomSd15UNet, (dir, options) => UNet2DConditionModel.FromPretrained(dir, options: options));

    /// <summary>Writes the SD 1.5 UNet with random weights (seed 0, fp32) to <paramref name="dir"/>.</summary>
    public static void WriteSd15UNet(string dir)
    {
        using var m = RandomSd15UNet();
        m.SavePretrained(dir);
    }

    private static UNet2DConditionModel RandomSd15UNet()
    {
        torch.manual_seed(0);
        return UNet2DConditionModel.FromConfig(ConfigJson.Parse<UNet2DConditionModelConfig>(Sd15UNetConfig, "sd15 unet"));
    }

    /// <summary>
    /// Where one fp32 SD 1.5 UNet step (batch 2) holds its memory: glibc's live native heap and the RSS at every
    /// block boundary (the model's intermediate hook), against the heap after loading.
    /// </summary>
    public static void TraceUNetMemory()
    {
        torch.manual_seed(0);
        using var unet = UNet2DConditionModel.FromConfig(ConfigJson.Parse<UNet2DConditionModelConfig>(Sd15UNetConfig, "sd15 unet"));
        unet.eval();
        unet.ChannelsLast = !Harness.NchwRequested;
        using var x = torch.randn(new long[] { 2, 4, 64, 64 }, generator: new Generator(1));
        using var ehs = torch.randn(new long[] { 2, 77, 768 }, generator: new Generator(2));
        using var t = torch.tensor(new long[] { 981 });
        var sw = System.Diagnostics.Stopwatch.StartNew();
        long baseHeap = Harness.NativeHeap().InUse, baseRss = Harness.RssBytes();
        long maxLive = 0, lastRss = 0;
        string maxAt = "";
        unet.IntermediateHook = (name, _) =>
        {
            long live = Harness.NativeHeap().InUse - baseHeap;
            if (live > maxLive) (maxLive, maxAt) = (live, name);
            long rss = Harness.RssBytes() - baseRss;
            if (rss - lastRss > 20_000_000 || name.Count(c => c == '.') == 0)
                Console.WriteLine($"  {name,-60} live +{live / 1e6,7:F0} MB   RSS +{rss / 1e6,7:F0} MB");
            lastRss = Math.Max(lastRss, rss);
        };
        for (int run = 0; run < 2; run++)
        {
            Console.WriteLine($"step {run + 1}:");
            using (torch.inference_mode())
            using (var scope = torch.NewDisposeScope())
                unet.Forward(x, t, ehs);
        }
        unet.IntermediateHook = null;
        Console.WriteLine($"  largest live heap at a hook point: +{maxLive / 1e6:F0} MB (at {maxAt}); peak RSS +{(Harness.PeakRssBytes() - baseRss) / 1e6:F0} MB; {sw.Elapsed.TotalSeconds:F1} s for 2 steps, {Harness.Layout(unet.ChannelsLast)}");
    }

    /// <param name="tiled">Decode in tiles of 32 latent cells / 256 px (the SD VAE's own tile, 512 px, would not tile a 64x64 latent).</param>
    public static void RunVae(int[] threads, int runs, bool tiled, int tileLatent = 32, ScalarType dtype = ScalarType.Float32)
    {
        torch.manual_seed(0);
        using var vae = AutoencoderKL.FromConfig(ConfigJson.Parse<AutoencoderKLConfig>(Sd15VaeConfig, "sd15 vae"));
        vae.eval();
        if (dtype != ScalarType.Float32) vae.to(dtype);
        if (Harness.NchwRequested) vae.ChannelsLast = false;
        long weightBytes = vae.parameters().Sum(p => p.numel() * p.element_size());
        if (tiled)
        {
            vae.EnableTiling();
            vae.TileSampleMinSize = tileLatent * 8;
            vae.TileLatentMinSize = tileLatent;
        }
        Console.WriteLine($"SD VAE decode {dtype} 1x4x64x64 -> 1x3x512x512, {(tiled ? $"tiled ({tileLatent}-cell latent tiles, {tileLatent * 8} px)" : "untiled")}; weights {weightBytes / 1e6:F0} MB");
        using var z = torch.randn(new long[] { 1, 4, 64, 64 }, generator: new Generator(3)).to(dtype);
        long before = Harness.PeakRssBytes();
        if (Environment.GetEnvironmentVariable("TRACE") == "time")
        {
            var lap = System.Diagnostics.Stopwatch.StartNew();
            vae.IntermediateHook = (name, _) =>
            {
                Console.WriteLine($"  {name,-40} {lap.Elapsed.TotalMilliseconds,8:F1} ms");
                lap.Restart();
            };
        }
        else if (Environment.GetEnvironmentVariable("TRACE") == "1")
        {
            long baseRss = Harness.RssBytes(), baseHeap = Harness.NativeHeap().InUse;
            vae.IntermediateHook = (name, _) => Console.WriteLine(
                $"  {name,-40} live +{(Harness.NativeHeap().InUse - baseHeap) / 1e6,6:F0} MB  RSS +{(Harness.RssBytes() - baseRss) / 1e6,6:F0} MB  peak +{(Harness.PeakRssBytes() - baseRss) / 1e6,6:F0} MB");
        }
        foreach (int n in threads)
        {
            torch.set_num_threads(n);
            using (torch.inference_mode())
                Harness.Time($"VAE decode {(tiled ? "tiled" : "untiled")} {Harness.Layout(vae.ChannelsLast)} {n} thread(s)", 1, runs, () =>
                {
                    using var scope = torch.NewDisposeScope();
                    vae.Decode(z);
                });
        }
        Console.WriteLine($"  peak RSS {Harness.PeakRssBytes() / 1e9:F2} GB (before decoding: {before / 1e9:F2} GB)");
    }
}
