using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Bench;

/// <summary>
/// An SD 1.5 ControlNet (FromUnet of the SD 1.5 UNet config, random weights), batch 2, 64² latents, 512² control image:
/// one forward per layout, interleaved (NCHW vs channels-last), in each dtype.
/// </summary>
public static class ControlNetBench
{
    public static int Run(ScalarType[] dtypes, int runs)
    {
        using var noGrad = torch.no_grad();
        // one model per layout (a switch re-lays the kernels out, which the timing should not include)
        var models = new ControlNetModel[2];
        using (var unet = UNet2DConditionModel.FromConfig(ConfigJson.Parse<UNet2DConditionModelConfig>(SdBench.Sd15UNetConfig, "sd15 unet")))
            for (int v = 0; v < 2; v++) models[v] = ControlNetModel.FromUnet(unet, loadWeightsFromUnet: false);
        Console.WriteLine($"ControlNet: {models[0].NumParameters() / 1e6:F1}M parameters");
        foreach (var dtype in dtypes)
        {
            for (int v = 0; v < 2; v++)
            {
                models[v].eval();
                models[v].to(dtype);
                models[v].ChannelsLast = v == 1;
            }
            using var x = torch.randn(new long[] { 2, 4, 64, 64 }, generator: new Generator(1)).to(dtype);
            using var ehs = torch.randn(new long[] { 2, 77, 768 }, generator: new Generator(2)).to(dtype);
            using var cond = torch.rand(new long[] { 2, 3, 512, 512 }, generator: new Generator(3)).to(dtype);
            var times = new List<double>[] { new(), new() };
            for (int r = 0; r < runs + 1; r++)
                for (int v = 0; v < 2; v++)
                {
                    var sw = System.Diagnostics.Stopwatch.StartNew();
                    using var o = models[v].Forward(x, 500L, ehs, cond);
                    if (r > 0) times[v].Add(sw.Elapsed.TotalSeconds);
                }
            double m0 = times[0].Order().ElementAt(runs / 2), m1 = times[1].Order().ElementAt(runs / 2);
            Console.WriteLine($"ControlNet forward {dtype,-9} NCHW median {m0:F3} s   channels-last median {m1:F3} s   ratio {m1 / m0:F3}   (runs {runs}, threads {torch.get_num_threads()})");
        }
        foreach (var m in models) m.Dispose();
        return 0;
    }
}
