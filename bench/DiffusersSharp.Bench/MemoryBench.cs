using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Bench;

/// <summary>
/// A long sampling loop at reduced size: the RSS between step 100 and the last step must grow < 5%
/// (no leaked tensors). UNet2DModel (small config) + DDPMScheduler, like the DDPM pipeline.
/// </summary>
public static class MemoryBench
{
    /// <summary>One line of where the process's memory is: RSS, the managed heap, glibc's heap (in use / free).</summary>
    private static void Trace(int step)
    {
        GC.Collect();
        var gc = GC.GetGCMemoryInfo();
        var (inUse, free) = Harness.NativeHeap();
        string malloc = inUse < 0 ? "malloc n/a" : $"malloc in use {inUse / 1e6,7:F1} MB free {free / 1e6,6:F1} MB";
        Console.WriteLine($"  step {step,5}: RSS {Harness.RssBytes() / 1e6,7:F1} MB  managed heap {GC.GetTotalMemory(false) / 1e6,6:F1} MB (committed {gc.TotalCommittedBytes / 1e6,6:F1} MB)  {malloc}");
    }

    public static void Run(int steps)
    {
        var config = ConfigJson.Parse<UNet2DModelConfig>("""
            { "block_out_channels": [32, 64], "down_block_types": ["DownBlock2D", "AttnDownBlock2D"],
              "up_block_types": ["AttnUpBlock2D", "UpBlock2D"], "layers_per_block": 1, "norm_num_groups": 8, "sample_size": 32 }
            """, "memory bench config");
        using var model = UNet2DModel.FromConfig(config);
        model.eval();
        var scheduler = new DiffusersSharp.Schedulers.DDPMScheduler(new DiffusersSharp.Schedulers.DDPMSchedulerConfig { NumTrainTimesteps = steps });
        scheduler.SetTimesteps(steps);
        var gen = new Generator(0);
        var sample = torch.randn(new long[] { 1, 3, 32, 32 }, generator: gen);
        long rss100 = 0;
        int i = 0;
        using (torch.inference_mode())
        {
            foreach (double tv in scheduler.TimestepValues)
            {
                using var scope = torch.NewDisposeScope();
                long t = (long)tv;
                var output = model.Forward(sample, t).Sample;
                var next = scheduler.Step(output, t, sample, gen).PrevSample.MoveToOuterDisposeScope();
                sample.Dispose();
                sample = next;
                i++;
                if (i == 100) { GC.Collect(); rss100 = Harness.RssBytes(); }
                if (i % 100 == 0 && Environment.GetEnvironmentVariable("NOTRACE") == null) Trace(i);
            }
        }
        GC.Collect();
        long rssEnd = Harness.RssBytes();
        Console.WriteLine($"{steps} steps: RSS at step 100 {rss100 / 1e6:F1} MB, at step {steps} {rssEnd / 1e6:F1} MB, growth {(rssEnd - rss100) * 100.0 / rss100:F2}%");
    }
}
