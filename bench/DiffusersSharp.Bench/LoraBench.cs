using System.Diagnostics;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Models.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Bench;

/// <summary>
/// Issue 13's LoRA costs (<c>sd-unet --lora-rank 64</c>): a random rank-r LoRA on every LoRA-compatible layer of the SD 1.5
/// UNet (diffusers layout, written to a temporary .safetensors), its load time (read + placement; target ≤ 0.5 s at rank
/// 64), and one UNet step without LoRA, with the LoRA unfused (target ≤ 1.15× without) and fused (= without).
/// <c>--unet-config file</c> runs another UNet config (e.g. tests/golden/tiny-sd/unet/config.json to prove the harness).
/// </summary>
public static class LoraBench
{
    public static void Run(int rank, int[] threads, ScalarType[] dtypes, int runs, string? unetConfigPath)
    {
        var config = unetConfigPath is null
            ? ConfigJson.Parse<UNet2DConditionModelConfig>(SdBench.Sd15UNetConfig, "sd15 unet")
            : ConfigJson.Read<UNet2DConditionModelConfig>(unetConfigPath);
        long size = config.SampleSize is { Length: > 0 } ss ? ss[0] : 64;
        long crossDim = config.CrossAttentionDim[0];
        Console.WriteLine($"LoRA rank {rank} on every LoRA-compatible layer; UNet {(unetConfigPath ?? "SD 1.5")}, latents 2x{config.InChannels}x{size}x{size}, text states 2x77x{crossDim}");
        foreach (var dtype in dtypes)
        {
            torch.manual_seed(0);
            using var unet = UNet2DConditionModel.FromConfig(config);
            unet.eval();
            if (Harness.NchwRequested) unet.ChannelsLast = false;
            if (dtype != ScalarType.Float32) unet.to(dtype);
            string dir = Directory.CreateTempSubdirectory("lora-bench-").FullName;
            try
            {
                string file = Path.Combine(dir, "pytorch_lora_weights.safetensors");
                int layers = WriteRandomLora(unet, rank, file, dtype);
                Console.WriteLine($"  {layers} layers, file {new FileInfo(file).Length / 1e6:F1} MB ({dtype})");
                var targets = new[] { LoraTarget.ForUnet(unet) };
                var loadTimes = new List<double>();
                for (int i = 0; i < Math.Max(1, runs); i++)
                {
                    var sw = Stopwatch.StartNew();
                    LoraLoader.Load(file, targets);
                    loadTimes.Add(sw.Elapsed.TotalSeconds);
                    LoraLoader.Unload(targets);
                }
                loadTimes.Sort();
                Console.WriteLine($"  load: median {loadTimes[loadTimes.Count / 2]:F3} s, min {loadTimes[0]:F3} s (target ≤ 0.5 s at rank 64 for SD 1.5)");

                using var x = torch.randn(new long[] { 2, config.InChannels, size, size }, generator: new Generator(1)).to(dtype);
                using var ehs = torch.randn(new long[] { 2, 77, crossDim }, generator: new Generator(2)).to(dtype);
                using var t = torch.tensor(new long[] { 981 });
                foreach (int n in threads)
                {
                    torch.set_num_threads(n);
                    double Step(string what) => Harness.Time($"UNet step {dtype} {what} {n} thread(s)", 1, runs, () =>
                    {
                        using var scope = torch.NewDisposeScope();
                        using var _ = torch.inference_mode();
                        unet.Forward(x, t, ehs);
                    }).Median;
                    double none = Step("no LoRA");
                    LoraLoader.Load(file, targets);
                    double unfused = Step("LoRA unfused");
                    LoraLoader.Fuse(targets);
                    double fused = Step("LoRA fused");
                    LoraLoader.Unfuse(targets);
                    LoraLoader.Unload(targets);
                    Console.WriteLine($"  {n} thread(s): unfused {unfused / none:F3}× (target ≤ 1.15×), fused {fused / none:F3}×");
                }
            }
            finally
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    /// <summary>A diffusers-layout LoRA of rank <paramref name="rank"/> on every LoRA-compatible layer; returns the layer count.</summary>
    private static int WriteRandomLora(UNet2DConditionModel unet, int rank, string file, ScalarType dtype)
    {
        using var scope = torch.NewDisposeScope();
        using var gen = new Generator(3);
        var tensors = new Dictionary<string, Tensor>();
        int n = 0;
        foreach (var (path, layer) in LoraLoader.Layers(unet))
        {
            var shape = layer.WeightShape;
            long outDim = shape[0], inDim = shape[1];
            var down = shape.Length == 4
                ? torch.randn(new[] { rank, inDim, shape[2], shape[3] }, generator: gen)
                : torch.randn(new[] { rank, inDim }, generator: gen);
            var up = shape.Length == 4
                ? torch.randn(new[] { outDim, rank, 1, 1 }, generator: gen)
                : torch.randn(new[] { outDim, (long)rank }, generator: gen);
            tensors[$"unet.{path}.lora.down.weight"] = (down / Math.Sqrt(inDim)).to(dtype);
            tensors[$"unet.{path}.lora.up.weight"] = (up * 0.01).to(dtype);
            n++;
        }
        SafetensorsFile.Save(file, tensors);
        return n;
    }
}
