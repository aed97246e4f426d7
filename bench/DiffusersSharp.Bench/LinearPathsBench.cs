using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Bench;

/// <summary>
/// The SD 1.5 UNet's linear layers (batch 2) in one dtype, interleaved call by call: <c>F.linear</c> (what the model
/// runs; for bf16 libtorch hands it to MKL's or oneDNN's gemm) against the same product as a channels-last 1×1
/// convolution (oneDNN's brgemm convolution).
/// </summary>
public static class LinearPathsBench
{
    private static readonly (string Name, long M, long K, long N)[] Shapes =
    {
        ("64² q/k/v/out", 8192, 320, 320), ("64² ff in", 8192, 320, 2560), ("64² ff out", 8192, 1280, 320),
        ("32² q/k/v/out", 4096, 640, 640), ("32² ff in", 4096, 640, 5120), ("32² ff out", 4096, 2560, 640),
        ("16² q/k/v/out", 1024, 1280, 1280), ("16² ff in", 1024, 1280, 10240), ("16² ff out", 1024, 5120, 1280),
        ("text k/v 768->320", 154, 768, 320),
        ("b1 64² q", 4096, 320, 320), ("b1 64² ff in", 4096, 320, 2560), ("b1 64² ff out", 4096, 1280, 320),
        ("b1 32² q", 1024, 640, 640), ("b1 32² ff in", 1024, 640, 5120), ("b1 32² ff out", 1024, 2560, 640),
        ("xl 64² q", 8192, 640, 640), ("xl 64² ff in", 8192, 640, 5120), ("xl 64² ff out", 8192, 2560, 640),
        ("xl 32² q", 2048, 1280, 1280), ("xl 32² ff in", 2048, 1280, 10240), ("xl 32² ff out", 2048, 5120, 1280),
        ("xl b1 16² q", 256, 1280, 1280), ("m2048 k320", 2048, 320, 320), ("m2048 k640", 2048, 640, 640),
    };

    /// <summary>The library's own layer (<c>LoRACompatibleLinear</c>) on one shape, against <c>F.linear</c> and the conv form, interleaved.</summary>
    public static void RunLayer(ScalarType dtype, int runs, long m, long k, long n)
    {
        using var mode = torch.inference_mode();
        using var layer = new DiffusersSharp.Models.Lora.LoRACompatibleLinear(k, n);
        layer.to(dtype);
        using var x = torch.randn(2, m / 2, k).to(dtype);
        var w = layer.Weight;
        var b = layer.Bias;
        using var w4 = w.view(n, k, 1, 1);
        var t = new List<double>[3] { new(), new(), new() };
        for (int i = 0; i < runs + 2; i++)
        {
            var sw = Stopwatch.StartNew();
            using (var y = layer.forward(x)) { }
            double a = sw.Elapsed.TotalMilliseconds; sw.Restart();
            using (var y = nn.functional.linear(x, w, b)) { }
            double c = sw.Elapsed.TotalMilliseconds; sw.Restart();
            using (var xc = x.view(1, m, 1, k).permute(0, 3, 1, 2))
            using (var y = nn.functional.conv2d(xc, w4, b)) { }
            double d = sw.Elapsed.TotalMilliseconds;
            if (i >= 2) { t[0].Add(a); t[1].Add(c); t[2].Add(d); }
        }
        static double Med(List<double> v) { var s = v.Order().ToArray(); return s[s.Length / 2]; }
        Console.WriteLine($"{m}x{k}x{n} {dtype}: layer {Med(t[0]):F2} ms, F.linear {Med(t[1]):F2} ms, conv {Med(t[2]):F2} ms");
    }

    public static void Run(ScalarType dtype, int runs)
    {
        using var mode = torch.inference_mode();
        Console.WriteLine($"linear paths, {dtype}, {torch.get_num_threads()} thread(s), medians of {runs}");
        double totalLinear = 0, totalConv = 0;
        foreach (var (name, m, k, n) in Shapes)
        {
            torch.manual_seed(0);
            using var x = torch.randn(m, k).to(dtype);
            using var w = (torch.randn(n, k) / Math.Sqrt(k)).to(dtype); // nn.Linear's scale
            using var b = torch.randn(n).to(dtype);
            using var w4 = w.view(n, k, 1, 1);
            var tl = new List<double>();
            var tc = new List<double>();
            for (int i = 0; i < runs + 2; i++)
            {
                var sw = Stopwatch.StartNew();
                using (var y = nn.functional.linear(x, w, b)) { }
                double a = sw.Elapsed.TotalMilliseconds;
                sw.Restart();
                using (var xc = x.view(1, m, 1, k).permute(0, 3, 1, 2))
                using (var y = nn.functional.conv2d(xc, w4, b))
                using (var rows = y.permute(0, 2, 3, 1).reshape(m, n)) { }
                double c = sw.Elapsed.TotalMilliseconds;
                if (i >= 2) { tl.Add(a); tc.Add(c); }
            }
            static double Med(List<double> v) { var s = v.Order().ToArray(); return s[s.Length / 2]; }
            double gflop = 2.0 * m * k * n / 1e9;
            totalLinear += Med(tl); totalConv += Med(tc);
            Console.WriteLine($"  {name,-20} {m}x{k}x{n}: linear {Med(tl),8:F2} ms ({gflop / Med(tl) * 1e3,6:F0} GFLOP/s)   1x1 conv {Med(tc),8:F2} ms ({gflop / Med(tc) * 1e3,6:F0} GFLOP/s)");
        }
        Console.WriteLine($"  sum of medians: linear {totalLinear:F1} ms, 1x1 conv {totalConv:F1} ms, conv/linear {totalConv / totalLinear:F3}");
    }
}
