using System.Diagnostics;
using DiffusersSharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Bench;

/// <summary>
/// TAESD (<see cref="AutoencoderTiny"/>, diffusers' default config, random weights) decoding 1×4×64×64 → 512², per dtype,
/// NCHW against channels-last, interleaved call by call.
/// </summary>
public static class TinyVaeBench
{
    public static void Run(ScalarType[] dtypes, int runs, int latent)
    {
        foreach (var dtype in dtypes)
        {
            torch.manual_seed(0);
            using var vae = AutoencoderTiny.FromConfig(new AutoencoderTinyConfig());
            vae.eval();
            vae.to(dtype);
            using var z = torch.randn(new long[] { 1, 4, latent, latent }, generator: new Generator(3)).to(dtype);
            using var mode = torch.inference_mode();
            var times = new[] { new List<double>(), new List<double>() };
            Tensor? reference = null;
            double maxDiff = 0;
            for (int i = 0; i < runs + 1; i++)
                for (int layout = 0; layout < 2; layout++)
                {
                    vae.ChannelsLast = layout == 1;
                    var sw = Stopwatch.StartNew();
                    var y = vae.Decode(z).Sample;
                    double ms = sw.Elapsed.TotalMilliseconds;
                    if (i > 0) times[layout].Add(ms);
                    else Console.WriteLine($"  first call {(layout == 1 ? "channels-last" : "NCHW")}: {ms:F1} ms");
                    if (reference is null) reference = y;
                    else
                    {
                        using var d = (y - reference).abs().max();
                        maxDiff = Math.Max(maxDiff, d.to_type(ScalarType.Float32).item<float>());
                        y.Dispose();
                    }
                }
            reference?.Dispose();
            Console.WriteLine($"TAESD decode 1x4x{latent}x{latent} {dtype} {torch.get_num_threads()} thread(s): NCHW median {Harness.Median(times[0]):F1} ms (min {times[0].Min():F1}), " +
                $"channels-last median {Harness.Median(times[1]):F1} ms (min {times[1].Min():F1}), cl/nchw {Harness.Median(times[1]) / Harness.Median(times[0]):F3}; max |diff| {maxDiff:G3}");
        }
    }
}
