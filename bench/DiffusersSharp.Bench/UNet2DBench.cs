using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Bench;

/// <summary>
/// google/ddpm-cat-256's UNet2DModel (113.7M parameters), random weights, batch 1, 256², one forward pass
/// (497 GFLOP). Issue 2's targets at 2 threads: ≤ 1.75 s fp32 (ONNX Runtime: 1.66–1.78 s), ≤ 1.2 s bf16.
/// </summary>
public static class UNet2DBench
{
    public const double ForwardGflop = 497.0;

    public const string DdpmCat256Config = """
    {
      "_class_name": "UNet2DModel", "act_fn": "silu", "attention_head_dim": null,
      "block_out_channels": [128, 128, 256, 256, 512, 512],
      "center_input_sample": false,
      "down_block_types": ["DownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "DownBlock2D"],
      "downsample_padding": 0, "flip_sin_to_cos": false, "freq_shift": 1, "in_channels": 3, "layers_per_block": 2,
      "mid_block_scale_factor": 1, "norm_eps": 1e-06, "norm_num_groups": 32, "out_channels": 3, "sample_size": 256,
      "time_embedding_type": "positional",
      "up_block_types": ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"]
    }
    """;

    /// <summary>
    /// The ddpm-cat-256 UNet with random weights (seed 0) in <paramref name="dtype"/>, loaded from the folder written once
    /// (<see cref="BenchWeights.Loaded"/>) or built and converted in place (<see cref="BenchWeights.Converted"/>).
    /// </summary>
    public static UNet2DModel Build(ScalarType dtype, BenchWeights weights = BenchWeights.Loaded)
    {
        var model = BenchModels.Model("ddpm-cat-256-unet", dtype, weights, Random, (dir, options) => UNet2DModel.FromPretrained(dir, options: options));
        model.eval();
        return model;
    }

    /// <summary>Writes the ddpm-cat-256 UNet with random weights (seed 0, fp32) to <paramref name="dir"/>.</summary>
    public static void Write(string dir)
    {
        using var m = Random();
        m.SavePretrained(dir);
    }

    private static UNet2DModel Random()
    {
        torch.manual_seed(0);
        return UNet2DModel.FromConfig(ConfigJson.Parse<UNet2DModelConfig>(DdpmCat256Config, "ddpm-cat-256 config"));
    }

    public static void Run(int[] threads, ScalarType[] dtypes, int runs, int size, bool[] channelsLastModes, BenchWeights weights = BenchWeights.Loaded)
    {
        Console.WriteLine($"UNet2DModel google/ddpm-cat-256 layout, batch 1, {size}x{size}; {ForwardGflop} GFLOP per forward at 256²; weights {weights.ToString().ToLowerInvariant()}");
        double gflop = ForwardGflop * size * size / (256.0 * 256.0);
        var results = new Dictionary<(int, ScalarType), Harness.Result>();
        Tensor? fp32Out = null;
        foreach (var dtype in dtypes)
        {
            using var model = Build(dtype, weights);
            Console.WriteLine($"  parameters: {model.NumParameters() / 1e6:F1}M, dtype {dtype}");
            using var x = torch.randn(new long[] { 1, 3, size, size }, generator: new Generator(1)).to(dtype);
            using var t = torch.tensor(new long[] { 500 });
            foreach (bool cl in channelsLastModes)
            {
                model.ChannelsLast = cl;
                foreach (int n in threads)
                {
                    torch.set_num_threads(n);
                    using (torch.inference_mode())
                    {
                        var r = Harness.Time($"forward {dtype} {Harness.Layout(cl)} {n} thread(s)", 1, runs, () =>
                        {
                            using var scope = torch.NewDisposeScope();
                            model.Forward(x, t);
                        }, gflop);
                        if (!results.TryGetValue((n, dtype), out var best) || r.Median < best.Median) results[(n, dtype)] = r;
                    }
                }
            }
            model.ChannelsLast = channelsLastModes.Last();
            using (torch.inference_mode())
            {
                var y = model.Forward(x, t).Sample.to(ScalarType.Float32);
                if (dtype == ScalarType.Float32) fp32Out = y;
                else if (fp32Out is not null)
                {
                    double maxDiff = (y - fp32Out).abs().max().item<float>();
                    double refScale = fp32Out.abs().max().item<float>();
                    Console.WriteLine($"  {dtype} vs fp32 output (same random weights, rounded to {dtype}): max |diff| {maxDiff:F4} (fp32 max |y| {refScale:F3})");
                }
            }
        }
        foreach (var ((n, dtype), r) in results)
            if (dtype != ScalarType.Float32 && results.TryGetValue((n, ScalarType.Float32), out var f))
                Console.WriteLine($"  ratio {dtype}/fp32 (best layout of each) at {n} thread(s): median {r.Median / f.Median:F2}");
    }
}
