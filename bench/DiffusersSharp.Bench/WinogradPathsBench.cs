using DiffusersSharp.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Bench;

/// <summary>
/// <c>bench -- winograd-paths [--dtypes fp32,bf16] [--runs 5] [--layouts nchw,cl] [--band-mb 16] [--only sd|sd1|ddpm|vae|taesd]</c>: the
/// 3×3 convolutions of SD 1.5's UNet (batch 2, and batch 1 as "sd1"), ddpm-cat-256's UNet (batch 1) and SD's VAE decoder (batch 1), interleaved
/// call by call: libtorch's <c>conv2d</c> (oneDNN's direct convolution) against <see cref="WinogradConvolution"/> in
/// bands of the given size and <see cref="Im2ColConvolution"/> (one matrix product). Error: max |Δ| against a float64 convolution of the same (rounded) values.
/// </summary>
public static class WinogradPathsBench
{
    private static readonly (string Model, long N, long Cin, long Cout, long Size)[] Shapes =
    {
        ("sd", 2, 320, 320, 64), ("sd", 2, 640, 320, 64), ("sd", 2, 640, 640, 64), ("sd", 2, 640, 640, 32),
        ("sd", 2, 1280, 640, 32), ("sd", 2, 1280, 1280, 32), ("sd", 2, 1280, 1280, 16), ("sd", 2, 2560, 1280, 16),
        ("sd", 2, 1280, 1280, 8),
        // batch 1, as the few-step pipelines run (no classifier-free guidance: SD-Turbo, LCM)
        ("sd1", 1, 320, 320, 64), ("sd1", 1, 640, 640, 32), ("sd1", 1, 1280, 1280, 32), ("sd1", 1, 1280, 1280, 16),
        ("sd1", 1, 2560, 1280, 16), ("sd1", 1, 1920, 1280, 16), ("sd1", 1, 1280, 1280, 8),
        ("ddpm", 1, 128, 128, 256), ("ddpm", 1, 128, 128, 128), ("ddpm", 1, 256, 256, 64), ("ddpm", 1, 512, 512, 16),
        ("vae", 1, 512, 512, 64), ("vae", 1, 512, 512, 128), ("vae", 1, 512, 512, 256), ("vae", 1, 256, 256, 256),
        ("vae", 1, 256, 256, 512), ("vae", 1, 128, 128, 512),
        ("taesd", 1, 64, 64, 64), ("taesd", 1, 64, 64, 128), ("taesd", 1, 64, 64, 256), ("taesd", 1, 64, 64, 512),
    };

    public static int Run(ScalarType[] dtypes, int runs, string[] layouts, long bandMb, string? only)
    {
        using var mode = torch.inference_mode();
        Console.WriteLine($"3×3 convolution paths (Winograd: {WinogradConvolution.Status}; im2col: {Im2ColConvolution.Status}), {torch.get_num_threads()} thread(s), bands of {bandMb} MB, medians of {runs}");
        foreach (var dtype in dtypes)
            foreach (var layout in layouts)
                foreach (var (model, n, cin, cout, size) in Shapes)
                {
                    if (only is not null && only != model) continue;
                    torch.manual_seed(0);
                    using var xf = torch.randn(n, cin, size, size);
                    using var wf = torch.randn(cout, cin, 3, 3) * (1.0 / Math.Sqrt(9 * cin));
                    using var bf = torch.randn(cout);
                    using var x0 = xf.to(dtype);
                    using var x = layout == "cl" ? DiffusersSharp.Models.Layers.ToChannelsLast(x0) : x0.alias();
                    using var w0 = wf.to(dtype);
                    using var w = layout == "cl" ? DiffusersSharp.Models.Layers.ToChannelsLast(w0) : w0.alias();
                    using var b = bf.to(dtype);
                    using var reference = nn.functional.conv2d(x.to(ScalarType.Float64), w.to(ScalarType.Float64), b.to(ScalarType.Float64), padding: [1, 1]).to(ScalarType.Float32);
                    var r = InterleavedPaths.Run(runs, reference,
                        () => nn.functional.conv2d(x, w, b, padding: [1, 1]),
                        () => WinogradConvolution.Run(x, w, b, bandMb << 20),
                        () => Im2ColConvolution.Run(x, w, b, 1),
                        () => WinogradConvolution.TileApplies(4, x.dtype, size, size) ? WinogradConvolution.Run(x, w, b, bandMb << 20, 4) : nn.functional.conv2d(x, w, b, padding: [1, 1]));
                    double gflop = 2.0 * n * size * size * 9 * cin * cout / 1e9;
                    Console.WriteLine($"  {dtype,-8} {layout,-4} {model,-4} {n}x{cin,4}->{cout,4} {size,3}²  {InterleavedPaths.Line(r)}   im2col {r.MedianMs[2],7:F2} ms (max|Δ| {r.MaxError[2]:E1})   F(4×4) {r.MedianMs[3],7:F2} ms (max|Δ| {r.MaxError[3]:E1}, ratio {r.MedianMs[3] / r.MedianMs[0]:F2})   direct {gflop / r.MedianMs[0] * 1e3,5:F0} GFLOP/s");
                }
        return 0;
    }
}
