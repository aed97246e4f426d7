using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Bench;

/// <summary>
/// The SD 1.5 / SD 2.1 / SDXL UNets' linear layers (batch 2 and 1), interleaved call by call: <c>F.linear</c> on a
/// [B, L, in] input (what the model runs; libtorch hands it to oneDNN's or MKL's gemm) against the same product as a
/// channels-last 1×1 convolution (oneDNN's brgemm convolution), with weights at nn.Linear's scale.
/// Measured 2026-12-04 (2 threads, Zen 5): F.linear seemed to vary from run to run and process to process (fp32 64²
/// ff-in 65-215 ms against the convolution's 67-70 ms). That was this bench: its convolution path left two views
/// undisposed, which kept the convolution's output alive until the GC ran, so F.linear's output was memory never
/// touched before on most calls. With every intermediate disposed (2026-12-05), F.linear fp32 runs at 323-395
/// GFLOP/s on every shape, the convolution at 143-336, and the sum of the medians is 1.91-1.93× longer by the
/// convolution. The model keeps F.linear (routed through 1×1 convolutions, the SD 1.5 UNet step did not gain either).
/// </summary>
public static class LinearPathsBench
{
    private static readonly (string Name, long M, long K, long N)[] Shapes =
    {
        ("64² q/k/v/out", 8192, 320, 320), ("64² ff in", 8192, 320, 2560), ("64² ff out", 8192, 1280, 320),
        ("32² q/k/v/out", 4096, 640, 640), ("32² ff in", 4096, 640, 5120), ("32² ff out", 4096, 2560, 640),
        ("16² q/k/v/out", 1024, 1280, 1280), ("16² ff in", 1024, 1280, 10240), ("16² ff out", 1024, 5120, 1280),
        ("b1 64² ff in", 4096, 320, 2560), ("b1 32² q", 1024, 640, 640),
        ("xl 64² q", 8192, 640, 640), ("xl 32² ff in", 2048, 1280, 10240),
    };

    public static void Run(ScalarType dtype, int runs)
    {
        using var mode = torch.inference_mode();
        Console.WriteLine($"linear paths, {dtype}, {torch.get_num_threads()} thread(s), medians of {runs}");
        double totalLinear = 0, totalConv = 0;
        foreach (var (name, m, k, n) in Shapes)
        {
            torch.manual_seed(0);
            using var scope = torch.NewDisposeScope();
            var x = torch.randn(2, m / 2, k).to(dtype);
            var w = (torch.randn(n, k) / Math.Sqrt(k)).to(dtype);
            var b = (torch.randn(n) / Math.Sqrt(k)).to(dtype);
            var w4 = w.view(n, k, 1, 1);
            var tl = new List<double>();
            var tc = new List<double>();
            for (int i = 0; i < runs + 2; i++)
            {
                // every intermediate in a scope: an undisposed view (x.view, y.permute) keeps its tensor's memory until
                // the GC finalises it, and the next call then gets memory never touched before (before 2026-12-05 the
                // convolution's output stayed alive so, and F.linear's output was fresh memory on every call: 70-160 ms
                // instead of 19-40 for the 64² ff-in shapes)
                var sw = Stopwatch.StartNew();
                using (torch.NewDisposeScope()) nn.functional.linear(x, w, b);
                double a = sw.Elapsed.TotalMilliseconds;
                sw.Restart();
                using (torch.NewDisposeScope())
                    nn.functional.conv2d(x.view(1, m, 1, k).permute(0, 3, 1, 2), w4, b).permute(0, 2, 3, 1).reshape(2, m / 2, n);
                double c = sw.Elapsed.TotalMilliseconds;
                if (i >= 2) { tl.Add(a); tc.Add(c); }
            }
            double gflop = 2.0 * m * k * n / 1e9;
            totalLinear += Harness.Median(tl); totalConv += Harness.Median(tc);
            Console.WriteLine($"  {name,-16} {m}x{k}x{n}: F.linear {Harness.Median(tl),8:F2} ms ({gflop / Harness.Median(tl) * 1e3,4:F0} GFLOP/s)   1x1 conv {Harness.Median(tc),8:F2} ms ({gflop / Harness.Median(tc) * 1e3,4:F0} GFLOP/s)");
        }
        Console.WriteLine($"  sum of medians: F.linear {totalLinear:F1} ms, 1x1 conv {totalConv:F1} ms, conv/linear {totalConv / totalLinear:F3}");
    }
}
