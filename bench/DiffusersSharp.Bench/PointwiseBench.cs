using System.Diagnostics;
using DiffusersSharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Bench;

/// <summary>
/// Issue 11's avoidance, op by op: the channels-last 1×1 convolutions of ddpm-cat-256 that <see cref="Layers.Pointwise"/>
/// runs as addmm (1024→512 at 8² and 16², batch 1), against the oneDNN convolution itself, interleaved call by call.
/// (Run it on a CPU where the convolution does not fault.)
/// </summary>
public static class PointwiseBench
{
    public static void Run(int[] threads, ScalarType[] dtypes, int runs)
    {
        foreach (var dtype in dtypes)
            foreach (int n in threads)
                foreach (int size in new[] { 8, 16 })
                {
                    torch.set_num_threads(n);
                    torch.manual_seed(0);
                    using var conv = nn.Conv2d(1024, 512, 1);
                    conv.to(dtype);
                    using var x = Layers.ToChannelsLast(torch.randn(1, 1024, size, size).to(dtype));
                    using var mode = torch.inference_mode();
                    var tConv = new List<double>();
                    var tMm = new List<double>();
                    for (int i = 0; i < runs + 2; i++)
                    {
                        var sw = Stopwatch.StartNew();
                        using (var y = conv.forward(x)) { }
                        double a = sw.Elapsed.TotalMilliseconds;
                        sw.Restart();
                        using (var y = Layers.Pointwise(conv, x)) { }
                        double b = sw.Elapsed.TotalMilliseconds;
                        if (i >= 2) { tConv.Add(a); tMm.Add(b); }
                    }
                    Console.WriteLine($"1x1 1024->512 {size}x{size} {dtype} {n} thread(s): oneDNN conv median {Harness.Median(tConv):F3} ms (min {tConv.Min():F3}), " +
                        $"addmm median {Harness.Median(tMm):F3} ms (min {tMm.Min():F3})");
                }
    }
}
