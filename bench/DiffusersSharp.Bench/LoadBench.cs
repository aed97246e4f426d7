using System.Diagnostics;
using DiffusersSharp.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Bench;

/// <summary>Safetensors load speed from the page cache (issue 2 target: ≥ 1 GB/s).</summary>
public static class LoadBench
{
    public static void Run(int megabytes)
    {
        string dir = Directory.CreateTempSubdirectory("ds-bench-").FullName;
        try
        {
            string path = Path.Combine(dir, "w.safetensors");
            var tensors = new Dictionary<string, Tensor>();
            long perTensor = 16L * 1024 * 1024 / 4; // 16 MiB each, like large conv/linear weights
            for (int i = 0; i < megabytes / 16; i++) tensors[$"layer.{i}.weight"] = torch.randn(perTensor);
            SafetensorsFile.Save(path, tensors);
            foreach (var t in tensors.Values) t.Dispose();
            long bytes = new FileInfo(path).Length;
            // warm the page cache
            using (var f = SafetensorsFile.Open(path)) foreach (var t in f.LoadAll().Values) t.Dispose();
            var r = Harness.Time($"safetensors load {bytes / 1e6:F0} MB", 1, 5, () =>
            {
                using var f = SafetensorsFile.Open(path);
                foreach (var t in f.LoadAll().Values) t.Dispose();
            });
            Console.WriteLine($"  {bytes / 1e9 / r.Median:F2} GB/s (median), {bytes / 1e9 / r.Min:F2} GB/s (best)");
        }
        finally { Directory.Delete(dir, true); }
    }
}
