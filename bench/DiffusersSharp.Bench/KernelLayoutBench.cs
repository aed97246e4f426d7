using DiffusersSharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Bench;

/// <summary>
/// One convolution on a channels-last input with its kernel contiguous (NCHW) or in NHWC strides: milliseconds a call,
/// interleaved (what ConvKernelLayout decides). Shapes of the SD 1.5 UNet (batch 2) and the SD VAE decoder.
/// </summary>
public static class KernelLayoutBench
{
    private static readonly (string Name, int In, int Out, int K, int Size, int Batch)[] Shapes =
    [
        ("unet 1280->1280 3x3 @8", 1280, 1280, 3, 8, 2),
        ("unet 1280->1280 3x3 @16", 1280, 1280, 3, 16, 2),
        ("unet 640->640 3x3 @32", 640, 640, 3, 32, 2),
        ("unet 320->320 3x3 @64", 320, 320, 3, 64, 2),
        ("vae 512->512 3x3 @64", 512, 512, 3, 64, 1),
        ("vae 256->256 3x3 @256", 256, 256, 3, 256, 1),
        ("unet 640->1280 1x1 @16", 640, 1280, 1, 16, 2),
        ("taesd 64->64 3x3 @128", 64, 64, 3, 128, 1),
        ("taesd 64->64 3x3 @512", 64, 64, 3, 512, 1),
        ("ddpm 128->128 3x3 @256", 128, 128, 3, 256, 1),
        ("ddpm 512->512 3x3 @16", 512, 512, 3, 16, 1),
    ];

    public static int Run(ScalarType[] dtypes, int runs)
    {
        using var noGrad = torch.no_grad();
        foreach (var dtype in dtypes)
            foreach (var s in Shapes)
            {
                using var scope = torch.NewDisposeScope();
                var x = Layers.ToChannelsLast(torch.randn(s.Batch, s.In, s.Size, s.Size).to(dtype));
                var w = torch.randn(s.Out, s.In, s.K, s.K).to(dtype);
                var wNhwc = Layers.ToChannelsLast(w);
                var b = torch.randn(s.Out).to(dtype);
                int pad = s.K / 2;
                var times = new List<double>[] { new(), new() };
                for (int r = 0; r < runs + 1; r++)
                    for (int v = 0; v < 2; v++)
                    {
                        var kernel = v == 0 ? w : wNhwc;
                        var sw = System.Diagnostics.Stopwatch.StartNew();
                        using var y = nn.functional.conv2d(x, kernel, b, padding: [pad, pad]);
                        if (r > 0) times[v].Add(sw.Elapsed.TotalMilliseconds);
                    }
                using var y0 = nn.functional.conv2d(x, w, b, padding: [pad, pad]);
                using var y1 = nn.functional.conv2d(x, wNhwc, b, padding: [pad, pad]);
                double diff = (y0 - y1).abs().max().to(ScalarType.Float32).item<float>();
                double m0 = times[0].Order().ElementAt(runs / 2), m1 = times[1].Order().ElementAt(runs / 2);
                Console.WriteLine($"{dtype,-9} {s.Name,-26} kernel NCHW {m0,8:F2} ms   NHWC {m1,8:F2} ms   NHWC/NCHW {m1 / m0:F3}   max |diff| {diff:G3}");
            }
        return 0;
    }
}
