using System.Diagnostics;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using TorchSharp;

namespace DiffusersSharp.Bench;

/// <summary>
/// Loading the SD 1.5 UNet's weights (859.5M parameters, 3.4 GB safetensors, page cache warm) into a built model, and
/// the part of it that is the non-finite check (one float64 sum per tensor): the two timed in turns, so that both see
/// the same machine load.
/// </summary>
public static class SdLoadBench
{
    public static void Run(int runs)
    {
        string dir = Directory.CreateTempSubdirectory("ds-bench-load-").FullName;
        try
        {
            torch.manual_seed(0);
            using var unet = UNet2DConditionModel.FromConfig(ConfigJson.Parse<UNet2DConditionModelConfig>(SdBench.Sd15UNetConfig, "sd15 unet"));
            ModelLoading.SaveWeights(unet, dir);
            Console.WriteLine($"SD 1.5 UNet: {unet.NumParameters() / 1e6:F1}M parameters, {new FileInfo(Path.Combine(dir, "diffusion_pytorch_model.safetensors")).Length / 1e9:F2} GB");
            ModelLoading.LoadWeights(unet, dir); // warm the page cache
            var targets = unet.named_parameters().ToDictionary(p => p.name, p => (torch.Tensor)p.parameter);
            var load = new List<double>();
            var check = new List<double>();
            for (int i = 0; i < runs; i++)
            {
                var sw = Stopwatch.StartNew();
                ModelLoading.LoadWeights(unet, dir);
                load.Add(sw.Elapsed.TotalSeconds);
                sw.Restart();
                WeightLoader.CheckFinite(targets, "bench", "UNet2DConditionModel");
                check.Add(sw.Elapsed.TotalSeconds);
            }
            Console.WriteLine($"load (read + strict copy + finite check)  median {Harness.Median(load):F3} s   min {load.Min():F3} s   runs {runs}");
            Console.WriteLine($"finite check alone                         median {Harness.Median(check):F3} s   min {check.Min():F3} s");
            Console.WriteLine($"load without the check (difference)        median {Harness.Median(load) - Harness.Median(check):F3} s; the check is {100 * Harness.Median(check) / Harness.Median(load):F1}% of the load");
        }
        finally { Directory.Delete(dir, true); }
    }
}
