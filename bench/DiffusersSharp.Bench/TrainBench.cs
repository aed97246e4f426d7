using System.Diagnostics;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Bench;

/// <summary>
/// Training throughput (images/s), batch 64, at 32² and 64², for two layouts: the offline cat model's
/// (32,64,64, one layer per block, attention at level 2) and train_unconditional's default
/// (128,128,256,256,512,512, two layers per block, attention at level 4).
/// fp32 runs the real <see cref="UnconditionalTrainer"/> on a generated cat folder (loader, AdamW, clipping,
/// EMA included) and times each optimisation step. TorchSharp 0.107 has no autocast, so the CLI refuses
/// bf16 mixed precision; "bf16-pure" is the same step with the model, the optimiser state and the batch all
/// in bf16 (what training without autocast would cost), for comparison only.
/// </summary>
public static class TrainBench
{
    private sealed class StepClock : IProgress<TrainingProgress>
    {
        public readonly List<double> Times = [];
        private readonly Stopwatch _sw = Stopwatch.StartNew();
        public void Report(TrainingProgress value) => Times.Add(_sw.Elapsed.TotalSeconds);
    }

    private static readonly (string Name, int[] Channels, int Layers, int[] Attention)[] Layouts =
    [
        ("cats", [32, 64, 64], 1, [2]),
        ("default", [128, 128, 256, 256, 512, 512], 2, [4]),
    ];

    public static void Run(int[] sizes, string[] layouts, string[] modes, int steps, int batch)
    {
        foreach (var layout in Layouts.Where(l => layouts.Contains(l.Name)))
            foreach (int size in sizes)
            {
                string data = Path.Combine(Path.GetTempPath(), $"diffusers-bench-cats{size}");
                if (!Directory.Exists(data) || Directory.GetFiles(data).Length < batch * 2)
                    CatFaceGenerator.WriteDataset(data, batch * 2, size, seed: 0);
                foreach (string mode in modes)
                {
                    double[] perStep = mode == "fp32"
                        ? RunTrainer(data, layout, size, steps, batch)
                        : RunPureBf16(layout, size, steps, batch);
                    var sorted = perStep.Order().ToArray();
                    double median = sorted[sorted.Length / 2];
                    Console.WriteLine($"train {layout.Name,-8} {size,3}² batch {batch} {mode,-9} median {median,7:F2} s/step  {batch / median,7:F1} img/s  (best {batch / sorted[0]:F1} img/s, {perStep.Length} timed steps)");
                }
            }
    }

    private static UnconditionalTrainingOptions Options(string data, string output, (string Name, int[] Channels, int Layers, int[] Attention) l, int size, int steps, int batch) => new()
    {
        DataDir = data, OutputDir = output, Resolution = size, BatchSize = batch, MaxSteps = steps + 1,
        BlockOutChannels = l.Channels, LayersPerBlock = l.Layers, AttentionLevels = l.Attention, RandomFlip = true,
        LearningRate = 2e-4, LrWarmupSteps = 500, CheckpointEvery = 0, SaveImagesEveryEpochs = 0, SaveModelEveryEpochs = 0,
        DdpmNumInferenceSteps = 1,
    };

    private static double[] RunTrainer(string data, (string Name, int[] Channels, int Layers, int[] Attention) l, int size, int steps, int batch)
    {
        string output = Directory.CreateTempSubdirectory("diffusers-bench-train").FullName;
        try
        {
            var clock = new StepClock();
            new UnconditionalTrainer(Options(data, output, l, size, steps, batch), _ => { }).Train(clock);
            // The first step (warm-up) is not timed; step k's time is report k minus report k-1.
            return Enumerable.Range(1, clock.Times.Count - 1).Select(i => clock.Times[i] - clock.Times[i - 1]).ToArray();
        }
        finally { Directory.Delete(output, recursive: true); }
    }

    private static double[] RunPureBf16((string Name, int[] Channels, int Layers, int[] Attention) l, int size, int steps, int batch)
    {
        var o = Options("unused", "unused", l, size, steps, batch);
        using var model = UNet2DModel.FromConfig(UnconditionalTrainer.BuildConfig(o));
        UnconditionalTrainer.InitWeights(model, 0);
        model.to(ScalarType.BFloat16);
        model.train();
        using var scheduler = new DDPMScheduler(new DDPMSchedulerConfig());
        var parameters = model.parameters().ToArray();
        using var optimizer = optim.AdamW(parameters, o.LearningRate, o.AdamBeta1, o.AdamBeta2, o.AdamEpsilon, o.AdamWeightDecay);
        using var gen = new Generator(0);
        var times = new List<double>();
        for (int s = 0; s <= steps; s++)
        {
            var sw = Stopwatch.StartNew();
            using (var scope = NewDisposeScope())
            {
                var clean = rand(new long[] { batch, 3, size, size }, generator: gen) * 2 - 1;
                var noise = randn(clean.shape, generator: gen);
                var t = randint(0, 1000, new long[] { batch }, ScalarType.Int64, generator: gen);
                var noisy = scheduler.AddNoise(clean, noise, t).to(ScalarType.BFloat16);
                var output = model.Forward(noisy, t).Sample;
                var loss = nn.functional.mse_loss(output.to(ScalarType.Float32), noise);
                loss.backward();
                nn.utils.clip_grad_norm_(parameters, o.MaxGradNorm);
                optimizer.step();
                optimizer.zero_grad();
            }
            if (s > 0) times.Add(sw.Elapsed.TotalSeconds);
        }
        return times.ToArray();
    }
}
