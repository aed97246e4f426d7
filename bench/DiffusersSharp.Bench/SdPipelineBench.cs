using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Bench;

/// <summary>
/// A full 512² txt2img run with SD-1.5-sized random weights (text encoder, UNet, VAE; the real CLIP
/// vocabulary from tests/golden/clip-tokenizer): peak RSS against the weights' size (issue 4 target ≤ 1.3×).
/// Peak memory does not depend on the step count, so a few steps suffice.
/// </summary>
public static class SdPipelineBench
{
    /// <summary>Reports synchronously on the pipeline's thread (System.Progress would post to the thread pool).</summary>
    private sealed class Progress(Action<PipelineProgress> report) : IProgress<PipelineProgress>
    {
        public void Report(PipelineProgress value) => report(value);
    }

    // runwayml/stable-diffusion-v1-5 text_encoder/config.json (the keys that shape the model)
    private const string Sd15TextConfig = """
    { "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
      "max_position_embeddings": 77, "vocab_size": 49408, "hidden_act": "quick_gelu", "projection_dim": 768 }
    """;

    // runwayml/stable-diffusion-v1-5 scheduler/scheduler_config.json
    private const string Sd15SchedulerConfig = """
    { "_class_name": "PNDMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
      "num_train_timesteps": 1000, "set_alpha_to_one": false, "skip_prk_steps": true, "steps_offset": 1,
      "clip_sample": false }
    """;

    public static void Run(int steps, string tokenizerFolder)
    {
        torch.manual_seed(0);
        var text = new CLIPTextModel(ConfigJson.Parse<CLIPTextConfig>(Sd15TextConfig, "sd15 text encoder"));
        var unet = UNet2DConditionModel.FromConfig(ConfigJson.Parse<UNet2DConditionModelConfig>(SdBench.Sd15UNetConfig, "sd15 unet"));
        var vae = AutoencoderKL.FromConfig(ConfigJson.Parse<AutoencoderKLConfig>(SdBench.Sd15VaeConfig, "sd15 vae"));
        text.eval(); unet.eval(); vae.eval();
        var tokenizer = CLIPTokenizer.FromPretrained(tokenizerFolder);
        var scheduler = SchedulerFactory.FromConfig(ConfigJson.Parse<PNDMSchedulerConfig>(Sd15SchedulerConfig, "sd15 scheduler"));
        long weightBytes = new nn.Module[] { text, unet, vae }
            .Sum(m => m.parameters().Sum(p => p.numel() * p.element_size()));
        GC.Collect();
        long rssLoaded = Harness.RssBytes();
        using var pipe = new StableDiffusionPipeline(vae, text, tokenizer, unet, scheduler);
        Console.WriteLine($"SD 1.5-sized txt2img 512x512, {steps} steps, CFG 7.5; weights {weightBytes / 1e9:F2} GB, RSS after building {rssLoaded / 1e9:F2} GB");
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var afterSteps = new List<string>();
        var stepPeaks = new Progress(p =>
            afterSteps.Add($"step {p.Step}: RSS {Harness.RssBytes() / 1e9:F2} GB, peak so far {Harness.PeakRssBytes() / 1e9:F2} GB, {p.SecondsPerStep:F2} s/step"));
        using (var result = pipe.Generate("a photo of a cat", height: 512, width: 512, numInferenceSteps: steps, seed: 0, progress: stepPeaks))
            Console.WriteLine($"  {sw.Elapsed.TotalSeconds:F1} s; image {result.Images[0].Width}x{result.Images[0].Height}");
        foreach (var line in afterSteps) Console.WriteLine("  " + line);
        long peak = Harness.PeakRssBytes();
        Console.WriteLine($"  peak RSS {peak / 1e9:F2} GB = {peak / (double)weightBytes:F2} x the weights (target <= 1.3)");
    }
}
