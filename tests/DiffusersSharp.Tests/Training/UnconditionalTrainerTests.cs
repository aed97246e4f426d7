using DiffusersSharp.Cli;
using DiffusersSharp.Imaging;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using DiffusersSharp.Training;
using TorchSharp;
using Image = DiffusersSharp.Imaging.Image;

namespace DiffusersSharp.Tests.Training;

/// <summary>Tiny training runs (16×16 cat faces, a two-level UNet) and the data set.</summary>
public class UnconditionalTrainerTests
{
    private static UnconditionalTrainingOptions Tiny(string data, string output) => TinyRuns.Options(data, output);

    private static string Cats(TempDir dir, int count) => TinyRuns.Cats(dir, count);

    [Fact]
    public void EveryTrainingStepLeavesTheThreadWithTheLiveTensorsOfTheFirst()
    {
        // nothing of a step outlives it, not even for the finalizer: TorchSharp's optimizer.zero_grad() made a tensor per
        // parameter and dropped it (its Tensor.zero_ returns a new one), 144 a step on this UNet, until the trainer ran
        // the update in a dispose scope (bench memory-pipelines, path train; docs/BENCHMARKS.md)
        using var dir = new TempDir();
        string data = Cats(dir, 24);
        var live = new List<long>();
        new UnconditionalTrainer(Tiny(data, Path.Combine(dir.Path, "out")) with { MaxSteps = 6, UseEma = true }).Train(
            new SyncProgress(null, _ => live.Add(DisposeScopeManager.Statistics.ThreadTotalLiveCount)));
        Assert.Equal(6, live.Count);
        Assert.All(live, l => Assert.Equal(live[0], l));
    }

    [Fact]
    public void ATrainingRunWithSampleImagesLeavesNoSchedulerTensorBehind()
    {
        // the trainer's DDPMScheduler (add_noise, the saved scheduler/) and the one of each sample grid's pipeline are
        // disposed when they are done, and the UNet it builds makes its weights in a scope (ModuleScope): nothing stays
        using var dir = new TempDir();
        string data = Cats(dir, 8);
        var options = Tiny(data, Path.Combine(dir.Path, "out")) with
        {
            MaxSteps = 2,
            SaveImagesEveryEpochs = 1,
            EvalBatchSize = 1,
            DdpmNumInferenceSteps = 2,
        };
        new UnconditionalTrainer(options with { OutputDir = Path.Combine(dir.Path, "warm-up") }).Train();
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        new UnconditionalTrainer(options).Train();
        Assert.True(File.Exists(Path.Combine(dir.Path, "out", TrainingOutputFolder.Samples, "epoch-0002.png")));
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void LossGoesDownAndOutputsArePresent()
    {
        using var dir = new TempDir();
        string data = Cats(dir, 24);
        string output = Path.Combine(dir.Path, "out");
        var o = Tiny(data, output) with
        {
            MaxSteps = 40,
            LrScheduler = "constant",
            SaveImagesEveryEpochs = 5,
            EvalBatchSize = 4,
            DdpmNumInferenceSteps = 2,
            PredictionType = "epsilon",
            NumTrainTimesteps = 1000,
        };
        var reports = new List<TrainingProgress>();
        new UnconditionalTrainer(o).Train(new SyncProgress(reports));
        Assert.Equal(40, reports.Count);
        Assert.All(reports, r => Assert.True(double.IsFinite(r.Loss) && r.ImagesPerSecond > 0));
        double first = reports.Take(5).Average(r => r.Loss), last = reports.TakeLast(5).Average(r => r.Loss);
        Assert.True(last < 0.7 * first, $"loss did not go down: first {first}, last {last}");
        // loss.csv: header + one row per step, the reported losses
        var rows = UnconditionalTrainer.ReadCsv(Path.Combine(output, "loss.csv"));
        Assert.Equal(Enumerable.Range(1, 40).Select(i => (long)i), rows.Select(r => r.Step));
        Assert.Equal(reports.Select(r => r.Loss), rows.Select(r => r.Loss));
        Assert.Equal(1e-3, rows[0].Lr);
        Assert.Equal(13, rows[^1].Epoch); // 24 images / 8 = 3 batches per epoch: step 40 is in epoch 13
        var curve = Image.Load(Path.Combine(output, "loss.png"));
        Assert.Equal((800, 480), (curve.Width, curve.Height));
        // grids after epochs 5 and 10 and at the end (epoch 13): 4 images of 16² in 2 × 2
        foreach (var e in new[] { 5, 10, 13 })
        {
            var grid = Image.Load(Path.Combine(output, "samples", $"epoch-{e:D4}.png"));
            Assert.Equal((32, 32), (grid.Width, grid.Height));
        }
        Assert.Equal(3, Directory.GetFiles(Path.Combine(output, "samples")).Length);
        using var pipe = DDPMPipeline.FromPretrained(output);
        Assert.Equal([16], pipe.Unet.Config.SampleSize!);
        Assert.Equal(["DownBlock2D", "AttnDownBlock2D"], pipe.Unet.Config.DownBlockTypes);
        Assert.Equal(["AttnUpBlock2D", "UpBlock2D"], pipe.Unet.Config.UpBlockTypes);
    }

    [Theory]
    [InlineData("epsilon", 1)]
    [InlineData("v_prediction", 2)]
    [InlineData("sample", 1)]
    public void ResumeIsBitIdentical(string prediction, int accum)
    {
        using var dir = new TempDir();
        string data = Cats(dir, 12);
        var straight = Tiny(data, Path.Combine(dir.Path, "a")) with { PredictionType = prediction, GradientAccumulationSteps = accum };
        new UnconditionalTrainer(straight).Train();

        var split = straight with { OutputDir = Path.Combine(dir.Path, "b"), CheckpointEvery = 2, KeepCheckpoints = 1 };
        using (var cts = new CancellationTokenSource())
        {
            var stopAt4 = new SyncProgress(null, p => { if (p.Step == 4) cts.Cancel(); });
            Assert.Throws<OperationCanceledException>(() => new UnconditionalTrainer(split).Train(stopAt4, cts.Token));
        }
        Assert.Equal([Path.Combine(split.OutputDir, "checkpoint-4")], TrainingCheckpoint.List(split.OutputDir).Select(c => c.Path));
        Assert.False(File.Exists(Path.Combine(split.OutputDir, "model_index.json")));
        new UnconditionalTrainer(split with { Resume = true }).Train();

        string Weights(string o) => Path.Combine(o, "unet", "diffusion_pytorch_model.safetensors");
        Assert.Equal(File.ReadAllBytes(Weights(straight.OutputDir)), File.ReadAllBytes(Weights(split.OutputDir)));
        Assert.Equal(File.ReadAllText(Path.Combine(straight.OutputDir, "loss.csv")), File.ReadAllText(Path.Combine(split.OutputDir, "loss.csv")));
        // and without resume the second half would differ (the check can fail)
        var fresh = split with { OutputDir = Path.Combine(dir.Path, "c"), MaxSteps = 4 };
        new UnconditionalTrainer(fresh).Train();
        Assert.NotEqual(File.ReadAllBytes(Weights(straight.OutputDir)), File.ReadAllBytes(Weights(fresh.OutputDir)));
    }

    [Fact]
    public void SamplingWithoutEmaLeavesTheModelTraining()
    {
        // dropout 1 zeroes the resnets' hidden states in training mode only, the same way at every step: a model left
        // in eval mode after a sample grid gives other losses from then on
        using var dir = new TempDir();
        string init = dir.File("init");
        using (var unet = UNet2DModel.FromConfig(UnconditionalTrainer.BuildConfig(Tiny("x", "y")) with { Dropout = 1.0 }))
        {
            UnconditionalTrainer.InitWeights(unet, 5);
            unet.SavePretrained(init);
        }
        var plain = Tiny(Cats(dir, 12), dir.File("plain")) with { MaxSteps = 6, InitFrom = init, UseEma = false };
        var sampling = plain with { OutputDir = dir.File("sampling"), SaveImagesEveryEpochs = 1, EvalBatchSize = 1, DdpmNumInferenceSteps = 1 };
        new UnconditionalTrainer(plain).Train();
        new UnconditionalTrainer(sampling).Train();
        Assert.Equal(3, Directory.GetFiles(Path.Combine(sampling.OutputDir, "samples")).Length); // after steps 2, 4, 6
        Assert.Equal(File.ReadAllText(Path.Combine(plain.OutputDir, "loss.csv")), File.ReadAllText(Path.Combine(sampling.OutputDir, "loss.csv")));
        using var trained = UNet2DModel.FromPretrained(sampling.OutputDir, "unet");
        Assert.Equal(1.0, trained.Config.Dropout);
    }

    [Fact]
    public void InitFromAModelOfAnotherSampleSizeIsReported()
    {
        // the saved config keeps the init model's sample_size (16 here), which DDPMPipeline generates at
        using var dir = new TempDir();
        string init = dir.File("init");
        using (var unet = UNet2DModel.FromConfig(UnconditionalTrainer.BuildConfig(Tiny("x", "y"))))
        {
            UnconditionalTrainer.InitWeights(unet, 5);
            unet.SavePretrained(init);
        }
        var same = Tiny(Cats(dir, 4), dir.File("same")) with { MaxSteps = 1, InitFrom = init, UseEma = false };
        var other = same with { OutputDir = dir.File("other"), Resolution = 32 };
        var logSame = new List<string>();
        var logOther = new List<string>();
        new UnconditionalTrainer(same, logSame.Add).Train();
        new UnconditionalTrainer(other, logOther.Add).Train();
        Assert.DoesNotContain(logSame, l => l.Contains("sample_size"));
        Assert.Contains($"warning: {init} has sample_size 16 in its config and is trained at 32²; the saved model keeps sample_size 16, "
                        + "so DDPMPipeline will generate images of that size", logOther);
        using var trained = UNet2DModel.FromPretrained(other.OutputDir, "unet");
        Assert.Equal([16], trained.Config.SampleSize!);
    }

    [Fact]
    public void SavedPipelineReloadsWithIdenticalOutputs()
    {
        using var dir = new TempDir();
        var config = UnconditionalTrainer.BuildConfig(Tiny("x", "y"));
        using var unet = UNet2DModel.FromConfig(config);
        UnconditionalTrainer.InitWeights(unet, 5);
        using var scheduler = new DDPMScheduler(new DDPMSchedulerConfig { NumTrainTimesteps = 50, PredictionType = "v_prediction", BetaSchedule = "squaredcos_cap_v2" });
        UnconditionalTrainer.SavePipeline(unet, scheduler, dir.Path);
        Assert.Equal("DDPMPipeline", DiffusionPipeline.ReadClassName(Path.Combine(dir.Path, "model_index.json")));
        using var reloaded = DDPMPipeline.FromPretrained(dir.Path);
        var rs = Assert.IsType<DDPMScheduler>(reloaded.Scheduler);
        Assert.Equal(("v_prediction", "squaredcos_cap_v2", 50), (rs.TypedConfig.PredictionType, rs.TypedConfig.BetaSchedule, rs.TypedConfig.NumTrainTimesteps));
        using var copy = new DDPMScheduler(scheduler.TypedConfig);
        var original = new DDPMPipeline(unet, copy);
        using var a = original.Generate(2, 5, seed: 0, outputType: OutputType.Pt);
        using var b = reloaded.Generate(2, 5, seed: 0, outputType: OutputType.Pt);
        Assert.Equal(0.0, Tol.MaxAbsDiff(b.Tensor!, a.Tensor!));
    }

    [Fact]
    public void InitWeightsIsSeededAndHasPyTorchsBounds()
    {
        var config = UnconditionalTrainer.BuildConfig(Tiny("x", "y"));
        using var a = UNet2DModel.FromConfig(config);
        using var b = UNet2DModel.FromConfig(config);
        UnconditionalTrainer.InitWeights(a, 7);
        UnconditionalTrainer.InitWeights(b, 7);
        foreach (var ((name, pa), (_, pb)) in a.named_parameters().Zip(b.named_parameters()))
            Assert.True(pa.allclose(pb, 0, 0), name);
        // conv_in: 3 input channels × 3 × 3 → bound 1/sqrt(27)
        var w = a.get_parameter("conv_in.weight")!;
        Assert.InRange(w.abs().max().item<float>(), 0.9 / Math.Sqrt(27), 1 / Math.Sqrt(27));
    }

    [Fact]
    public void TheStartUpCheckSkipsASixteenBitGrayscalePngThatImageLoadRefuses()
    {
        // PIL clips its values to 0-255 (tests/golden/pil-imaging); the header check finds it before training starts,
        // not "found during the run" when the loader reaches it
        using var dir = new TempDir();
        new Image(8, 8, 3, new byte[8 * 8 * 3]).Save(Path.Combine(dir.Path, "a.png"));
        string gray16 = Path.Combine(dir.Path, "b.png");
        File.Copy(Golden.Path("pil-imaging", "gray16.png"), gray16);
        var warnings = new List<string>();
        var ds = new ImageFolderDataset(dir.Path, 8, warn: warnings.Add);
        Assert.Equal([Path.Combine(dir.Path, "a.png")], ds.Files);
        Assert.Equal([$"warning: skipping {gray16}: the image is a 16-bit grayscale PNG, which PIL (and so diffusers) reads clipped to 0-255 instead of scaled: every value above 255 turns white; save it with 8 bits per sample"], warnings);
    }

    [Fact]
    public void DatasetErrorsAndTransforms()
    {
        using var dir = new TempDir();
        string empty = Path.Combine(dir.Path, "empty");
        Directory.CreateDirectory(Path.Combine(empty, "sub"));
        File.WriteAllText(Path.Combine(empty, "notes.txt"), "x");
        var e = Assert.Throws<DiffusersException>(() => new ImageFolderDataset(empty, 16));
        Assert.Equal($"{empty}: no images found (searched recursively for the extensions of datasets' imagefolder loader: .png, .jpg, .jpeg, .webp, .bmp, .gif, …)", e.Message);

        string data = Path.Combine(dir.Path, "data");
        Directory.CreateDirectory(Path.Combine(data, "nested"));
        // a 40×20 image: left half black, right half white; resized to 32×16, centre crop keeps x 8..23
        var px = new byte[40 * 20 * 3];
        for (int y = 0; y < 20; y++) for (int x = 20; x < 40; x++) for (int c = 0; c < 3; c++) px[(y * 40 + x) * 3 + c] = 255;
        new Image(40, 20, 3, px).Save(Path.Combine(data, "nested", "a.png"));
        File.WriteAllText(Path.Combine(data, "broken.jpg"), "not a jpeg");
        var warnings = new List<string>();
        var ds = new ImageFolderDataset(data, 16, centerCrop: true, warn: warnings.Add);
        Assert.Equal([Path.Combine(data, "nested", "a.png")], ds.Files);
        Assert.Equal([$"warning: skipping {Path.Combine(data, "broken.jpg")}: not a readable image: DiffusersSharp reads PNG, JPEG, GIF, BMP, WebP, ICO, CUR and TIFF files, and PIL no other format of these first bytes"], warnings);
        var buf = new float[ds.ExampleSize];
        ds.Load(0, seed: 0, epoch: 0, buf);
        Assert.All(buf, v => Assert.InRange(v, -1f, 1f));
        Assert.Equal(-1f, buf[0]);            // row 0, x 0 (source x 8 of 32): black
        Assert.Equal(1f, buf[15]);            // row 0, x 15 (source x 23): white
        Assert.Equal(1f, buf[2 * 256 + 15]);  // blue plane too
        var strict = Assert.Throws<DiffusersException>(() => new ImageFolderDataset(data, 16, skipUnreadable: false));
        Assert.Equal($"{Path.Combine(data, "broken.jpg")}: not a readable image: DiffusersSharp reads PNG, JPEG, GIF, BMP, WebP, ICO, CUR and TIFF files, and PIL no other format of these first bytes (drop --stop-on-bad-images to skip it with a warning)", strict.Message);

        // flip: some epoch flips it (black on the right), deterministically
        var flipping = new ImageFolderDataset(data, 16, centerCrop: true, randomFlip: true);
        var seen = new HashSet<float>();
        for (int epoch = 0; epoch < 8; epoch++)
        {
            flipping.Load(0, 0, epoch, buf);
            seen.Add(buf[0]);
            var again = new float[buf.Length];
            flipping.Load(0, 0, epoch, again);
            Assert.Equal(buf, again);
        }
        Assert.Equal(new HashSet<float> { -1f, 1f }, seen);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-2)]
    public void KeepCheckpointsBelowOneIsRefused(int keep)
    {
        var e = Assert.Throws<DiffusersException>(() => new UnconditionalTrainer(Tiny("data", "out") with { KeepCheckpoints = keep }));
        Assert.Equal($"keep checkpoints must be at least 1, got {keep} (leave --keep-checkpoints out to keep every checkpoint)", e.Message);
        UnconditionalTrainer.Validate(Tiny("data", "out") with { KeepCheckpoints = 1 });
    }

    public static TheoryData<UnconditionalTrainingOptions, string> BadOptions() => new()
    {
        { Tiny("d", "o") with { Resolution = 18, BlockOutChannels = [8, 16, 32], AttentionLevels = [] },
            "resolution 18 is not a multiple of 4 = 2^(3 - 1): the UNet has 3 levels and halves the image at each but the last" },
        { Tiny("d", "o") with { Resolution = 17 }, "resolution 17 is not a multiple of 2 = 2^(2 - 1): the UNet has 2 levels and halves the image at each but the last" },
        { Tiny("d", "o") with { Resolution = 0 }, "resolution must be positive, got 0" },
        { Tiny("d", "o") with { EvalBatchSize = 0 }, "eval batch size must be positive, got 0" },
        { Tiny("d", "o") with { DdpmNumInferenceSteps = -1 }, "ddpm num inference steps must be positive, got -1" },
        { Tiny("d", "o") with { MixedPrecision = "fp16" }, "mixed precision 'fp16' is not available: TorchSharp 0.107 has no autocast; use --mixed-precision no" },
        { Tiny("d", "o") with { MixedPrecision = "fp8" },
            "mixed precision 'fp8' is not supported; use --mixed-precision no (diffusers' fp16 and bf16 need autocast, which TorchSharp 0.107 lacks)" },
        // torch's AdamW failed on these with an ArgumentException (an "unexpected error" in the CLI)
        { Tiny("d", "o") with { LearningRate = -1 }, "learning rate (--lr) must be positive and finite, got -1" },
        { Tiny("d", "o") with { AdamBeta1 = 1 }, "AdamBeta1 must be in [0, 1), got 1" },
        { Tiny("d", "o") with { AdamEpsilon = -1e-8 }, "AdamEpsilon must be 0 or more and finite, got -1E-08" },
        // these ran and saved a model that was not trained (0), or not numbers (NaN, +Inf)
        { Tiny("d", "o") with { LearningRate = 0 }, "learning rate (--lr) must be positive and finite, got 0" },
        { Tiny("d", "o") with { LearningRate = double.NaN }, "learning rate (--lr) must be positive and finite, got NaN" },
        { Tiny("d", "o") with { LearningRate = double.PositiveInfinity }, "learning rate (--lr) must be positive and finite, got Infinity" },
        { Tiny("d", "o") with { MaxGradNorm = 0 }, "MaxGradNorm must be positive (+Infinity: no clipping), got 0" },
        { Tiny("d", "o") with { AdamWeightDecay = -1 }, "AdamWeightDecay must be 0 or more and finite, got -1" },
        // these ran with an EMA that is not an average
        { Tiny("d", "o") with { EmaMaxDecay = 1.5 }, "EmaMaxDecay must be in [0, 1], got 1.5" },
        { Tiny("d", "o") with { EmaPower = 0 }, "EmaPower must be positive and finite, got 0" },
        { Tiny("d", "o") with { EmaInvGamma = -1 }, "EmaInvGamma must be positive and finite, got -1" },
        // these were taken as 0 (no warm-up, no checkpoints, no sample grids, the pipeline saved only at the end)
        { Tiny("d", "o") with { LrWarmupSteps = -5 }, "lr warmup steps (--lr-warmup-steps) must be 0 or more, got -5" },
        { Tiny("d", "o") with { CheckpointEvery = -1 }, "checkpoint interval (--checkpoint-every) must be positive, or 0 for no checkpoints, got -1" },
        { Tiny("d", "o") with { SaveImagesEveryEpochs = -1 },
            "sample image interval (--save-images-every-epochs) must be positive, or 0 for no sample images, got -1" },
        { Tiny("d", "o") with { SaveModelEveryEpochs = -2 },
            "model save interval (--save-model-every-epochs) must be positive, or 0 to save only at the end, got -2" },
    };

    [Theory]
    [MemberData(nameof(BadOptions))]
    public void ValidateRefusesOptionsThatWouldFailLater(UnconditionalTrainingOptions options, string message)
    {
        var e = Assert.Throws<DiffusersException>(() => UnconditionalTrainer.Validate(options));
        Assert.Equal(message, e.Message);
    }

    [Fact]
    public void AResolutionTheInitModelCannotHalveIsRefusedBeforeTraining()
    {
        using var dir = new TempDir();
        string init = dir.File("init");
        using (var unet = UNet2DModel.FromConfig(UnconditionalTrainer.BuildConfig(Tiny("x", "y"))))
            unet.SavePretrained(init);
        var o = Tiny(Cats(dir, 8), dir.File("out")) with { InitFrom = init, Resolution = 17, BlockOutChannels = [8, 16, 32, 64] };
        UnconditionalTrainer.Validate(o); // the layout options do not apply to --init-from's model
        var e = Assert.Throws<DiffusersException>(() => new UnconditionalTrainer(o).Train());
        Assert.Equal($"resolution 17 is not a multiple of 2 = 2^(2 - 1): the UNet of {init} has 2 levels and halves the image at each but the last", e.Message);
        Assert.False(Directory.Exists(o.OutputDir));
    }

    [Fact]
    public void ADivergingRunStopsBeforeSavingWeightsThatAreNotNumbers()
    {
        // a learning rate of 1e30 is finite: the first step moves every weight by about 1e30, and the second step's
        // loss is NaN; the run saved the NaN weights as its pipeline (and the next checkpoints) and returned
        using var dir = new TempDir();
        var o = Tiny(Cats(dir, 8), dir.File("out")) with
        {
            LearningRate = 1e30,
            LrScheduler = "constant",
            MaxSteps = 4,
            CheckpointEvery = 1,
            SaveModelEveryEpochs = 1,
            UseEma = false,
        };
        var e = Assert.Throws<DiffusersException>(() => new UnconditionalTrainer(o).Train());
        Assert.Equal($"the loss is NaN at step 2 (epoch 1): the training diverged; the run stops before saving weights that are not numbers "
            + $"(what {o.OutputDir} holds is from the steps before); start a new run with a lower --lr (--overwrite, or another --output)", e.Message);
        Assert.Equal(o.OutputDir, e.FilePath);
        Assert.Equal(["checkpoint-1", "loss.csv", "loss.png", "model_index.json", "scheduler", "unet"],
            Directory.EnumerateFileSystemEntries(o.OutputDir).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        // the pipeline of epoch 1 (one batch per epoch) stays: its weights are numbers
        using var unet = UNet2DModel.FromPretrained(Path.Combine(o.OutputDir, "unet"));
        Assert.All(unet.parameters(), p => Assert.True(p.isfinite().all().item<bool>()));
    }

    [Fact]
    public void AnInfiniteMaxGradNormTrainsWithoutClipping()
    {
        // torch's clip_grad_norm_ scales by min(1, max_norm / norm): +Infinity never clips (the usual way to turn clipping
        // off), so the run is the one of a bound no gradient reaches
        using var dir = new TempDir();
        string data = Cats(dir, 8);
        var o = Tiny(data, dir.File("inf")) with { MaxGradNorm = double.PositiveInfinity, MaxSteps = 2, LearningRate = 0.5, UseEma = false };
        new UnconditionalTrainer(o).Train();
        var unbounded = o with { OutputDir = dir.File("huge"), MaxGradNorm = 1e30 };
        new UnconditionalTrainer(unbounded).Train();
        var clipped = o with { OutputDir = dir.File("clipped"), MaxGradNorm = 1e-3 };
        new UnconditionalTrainer(clipped).Train();
        Assert.Equal(TinyRuns.Weights(unbounded.OutputDir), TinyRuns.Weights(o.OutputDir));
        Assert.NotEqual(TinyRuns.Weights(clipped.OutputDir), TinyRuns.Weights(o.OutputDir));
        Assert.Equal(UnconditionalTrainer.ReadCsv(dir.File("huge/loss.csv")).Select(r => r.Loss),
            UnconditionalTrainer.ReadCsv(dir.File("inf/loss.csv")).Select(r => r.Loss));
        Assert.Equal("MaxGradNorm must be positive (+Infinity: no clipping), got NaN",
            Assert.Throws<DiffusersException>(() => UnconditionalTrainer.Validate(o with { MaxGradNorm = double.NaN })).Message);
    }

    [Fact]
    public void AWarmUpAsLongAsTheRunIsReported()
    {
        using var dir = new TempDir();
        var log = new List<string>();
        var o = Tiny(Cats(dir, 8), dir.File("out")) with { MaxSteps = 2, LrWarmupSteps = 2 };
        new UnconditionalTrainer(o, log.Add).Train();
        Assert.Contains("warning: --lr-warmup-steps 2 is not less than the run's 2 optimisation steps: the learning rate rises during the whole run "
            + "and never reaches --lr 0.001", log);
        log.Clear();
        new UnconditionalTrainer(o with { OutputDir = dir.File("constant"), LrScheduler = "constant" }, log.Add).Train();
        Assert.DoesNotContain(log, l => l.StartsWith("warning", StringComparison.Ordinal));
    }

    [Fact]
    public void CliDatasetAndTrainErrors()
    {
        using var dir = new TempDir();
        var o = new StringWriter();
        var err = new StringWriter();
        Assert.Equal(0, CliApp.Run(["dataset", "cats", "--count", "3", "--out", dir.File("cats"), "--size", "32", "--seed", "2"], o, err));
        var files = Directory.GetFiles(dir.File("cats")).Select(f => Path.GetFileName(f)!).Order().ToArray();
        Assert.Equal(["cat_00000.png", "cat_00001.png", "cat_00002.png"], files);
        var img = Image.Load(dir.File("cats/cat_00001.png"));
        Assert.Equal((32, 32, 3), (img.Width, img.Height, img.Channels));
        Assert.Equal(CatFaceGenerator.Generate(32, 2, 1).Pixels, img.Pixels);
        Assert.NotEqual(CatFaceGenerator.Generate(32, 2, 0).Pixels, img.Pixels);

        err = new StringWriter();
        Assert.Equal(1, CliApp.Run(["dataset", "cats", "--count", "3", "--out", dir.File("x"), "--size", "48"], o, err));
        Assert.Equal("error: --size must be 32 or 64, got 48", err.ToString().Trim());

        err = new StringWriter();
        Assert.Equal(1, CliApp.Run(["train", "unconditional", "--data", dir.File("cats"), "--output", dir.File("o"), "--prediction-type", "x0"], o, err));
        Assert.Equal("error: prediction type 'x0' is not supported; choose one of epsilon, v_prediction, sample", err.ToString().Trim());

        err = new StringWriter();
        Assert.Equal(1, CliApp.Run(["train", "unconditional", "--data", dir.File("cats"), "--output", dir.File("o"), "--mixed-precision", "bf16"], o, err));
        Assert.Equal("error: mixed precision 'bf16' is not available: TorchSharp 0.107 has no autocast; use --mixed-precision no", err.ToString().Trim());

        err = new StringWriter();
        Assert.Equal(1, CliApp.Run(["train", "unconditional", "--data", dir.File("nothing"), "--output", dir.File("o")], o, err));
        Assert.Equal($"error: {dir.File("nothing")}: the training data folder does not exist", err.ToString().Trim());

        // torch's AdamW refused it with an ArgumentException: exit code 2 and a stack trace
        err = new StringWriter();
        Assert.Equal(1, CliApp.Run(["train", "unconditional", "--data", dir.File("cats"), "--output", dir.File("o"), "--lr", "-1"], o, err));
        Assert.Equal("error: learning rate (--lr) must be positive and finite, got -1", err.ToString().Trim());
    }
}
