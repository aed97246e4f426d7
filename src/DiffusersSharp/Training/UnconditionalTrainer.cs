using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Runtime;
using DiffusersSharp.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Training;

/// <summary>
/// diffusers' train_unconditional.py loop in C#: for each micro-batch, <c>noise = randn</c>, <c>timesteps =
/// randint(0, num_train_timesteps)</c> (both from the trainer's own generator, seeded with the run's seed),
/// <c>noisy = scheduler.add_noise(clean, noise, t)</c>, <c>model(noisy, t).sample</c>, an MSE loss against the
/// objective's target (epsilon: the noise; v_prediction: <c>get_velocity</c>; sample: the clean image, SNR-weighted
/// as the script), backward (divided by the accumulation steps), then per optimisation step: clip the gradient
/// norm, AdamW step with the LR schedule, EMA step. Checkpoints make a resumed run end with bit-identical weights.
/// Writes to the output folder: the DDPMPipeline folder (model_index.json, unet/, scheduler/), loss.csv,
/// loss.png, samples/epoch-NNNN.png and checkpoint-N/ folders.
/// </summary>
public sealed class UnconditionalTrainer
{
    /// <summary>The prediction types the trainer accepts (<c>--prediction_type</c>).</summary>
    public static readonly IReadOnlyList<string> PredictionTypes = ["epsilon", "v_prediction", "sample"];

    private readonly UnconditionalTrainingOptions _o;
    private readonly Action<string> _log;

    /// <summary>
    /// A trainer for <paramref name="options"/> (checked by <see cref="Validate"/>); <paramref name="log"/> receives
    /// the progress lines.
    /// </summary>
    public UnconditionalTrainer(UnconditionalTrainingOptions options, Action<string>? log = null)
    {
        _o = options;
        _log = log ?? (_ => { });
        Validate(options);
    }

    /// <summary>
    /// Checks every option's range; a bad value is a <see cref="DiffusersException"/> naming the option.
    /// </summary>
    public static void Validate(UnconditionalTrainingOptions o)
    {
        if (!PredictionTypes.Contains(o.PredictionType))
            throw new DiffusersException($"prediction type '{o.PredictionType}' is not supported; choose one of {string.Join(", ", PredictionTypes)}");
        LRSchedules.Validate(o.LrScheduler);
        if (o.MixedPrecision is "bf16" or "fp16")
            throw new DiffusersException($"mixed precision '{o.MixedPrecision}' is not available: TorchSharp 0.107 has no autocast; use --mixed-precision no");
        if (o.MixedPrecision != "no")
            throw new DiffusersException($"mixed precision '{o.MixedPrecision}' is not supported; use --mixed-precision no (diffusers' fp16 and bf16 need autocast, which TorchSharp 0.107 lacks)");
        // An output folder inside the data folder is left out of the data set; the data folder itself or the sample
        // grids' folder cannot be.
        bool sameFolder = LocalPaths.IsInside(o.DataDir, o.OutputDir) && LocalPaths.IsInside(o.OutputDir, o.DataDir);
        if (sameFolder || LocalPaths.IsInside(o.DataDir, Path.Combine(o.OutputDir, TrainingOutputFolder.Samples)))
            throw new DiffusersException($"the data folder {o.DataDir} is the output folder or its samples/: the run's sample grids and loss curve would become training images; choose another --output");
        if (o.Resume && o.Overwrite)
            throw new DiffusersException($"--resume and --overwrite exclude each other: --resume continues the run in {o.OutputDir}, --overwrite deletes it");
        if (o.BatchSize <= 0) throw new DiffusersException($"batch size must be positive, got {o.BatchSize}");
        if (o.GradientAccumulationSteps <= 0) throw new DiffusersException($"gradient accumulation steps must be positive, got {o.GradientAccumulationSteps}");
        if (o.MaxSteps is <= 0) throw new DiffusersException($"max steps must be positive, got {o.MaxSteps}");
        if (o.MaxSteps is null && o.Epochs <= 0) throw new DiffusersException($"epochs must be positive, got {o.Epochs}");
        // torch's AdamW refuses a negative or NaN learning rate with an ArgumentException; 0 trains nothing and +Inf
        // turns the weights into NaN after the first step, which the run would then save as its model.
        if (!(o.LearningRate > 0) || !double.IsFinite(o.LearningRate))
            throw new DiffusersException(string.Create(CultureInfo.InvariantCulture,
                $"learning rate (--lr) must be positive and finite, got {o.LearningRate}"));
        if (o.LrWarmupSteps < 0) throw new DiffusersException($"lr warmup steps (--lr-warmup-steps) must be 0 or more, got {o.LrWarmupSteps}");
        // 0 turns each off (diffusers fails on 0 in `step % 0`); a negative interval means nothing (Python's `%` takes -n as n).
        if (o.CheckpointEvery < 0)
            throw new DiffusersException($"checkpoint interval (--checkpoint-every) must be positive, or 0 for no checkpoints, got {o.CheckpointEvery}");
        if (o.SaveImagesEveryEpochs < 0)
            throw new DiffusersException($"sample image interval (--save-images-every-epochs) must be positive, or 0 for no sample images, got {o.SaveImagesEveryEpochs}");
        if (o.SaveModelEveryEpochs < 0)
            throw new DiffusersException($"model save interval (--save-model-every-epochs) must be positive, or 0 to save only at the end, got {o.SaveModelEveryEpochs}");
        ValidateOptimizerAndEma(o);
        if (o.KeepCheckpoints is < 1)
            throw new DiffusersException($"keep checkpoints must be at least 1, got {o.KeepCheckpoints} (leave --keep-checkpoints out to keep every checkpoint)");
        if (o.EvalBatchSize <= 0) throw new DiffusersException($"eval batch size must be positive, got {o.EvalBatchSize}");
        if (o.DdpmNumInferenceSteps <= 0) throw new DiffusersException($"ddpm num inference steps must be positive, got {o.DdpmNumInferenceSteps}");
        if (o.BlockOutChannels.Length == 0) throw new DiffusersException("block out channels must not be empty");
        if (o.Resolution <= 0) throw new DiffusersException($"resolution must be positive, got {o.Resolution}");
        if (o.InitFrom is null) CheckResolution(o.Resolution, o.BlockOutChannels.Length, "the UNet");
        if (o.AttentionLevels?.FirstOrDefault(l => l < 0 || l >= o.BlockOutChannels.Length, -1) is int bad and >= 0)
            throw new DiffusersException($"attention level {bad} is out of range for {o.BlockOutChannels.Length} block levels");
    }

    // The settings the CLI does not set: torch's AdamW refuses them with an ArgumentException (betas in [0, 1), eps and
    // weight decay at least 0); a gradient norm of at most 0 zeroes or flips the gradients; diffusers' EMAModel takes
    // any value and a decay above 1 or a power of at most 0 silently gives an average that is not one.
    private static void ValidateOptimizerAndEma(UnconditionalTrainingOptions o)
    {
        static void Check(bool ok, string name, double value, string range)
        {
            if (!ok) throw new DiffusersException(string.Create(CultureInfo.InvariantCulture, $"{name} must be {range}, got {value}"));
        }
        Check(o.AdamBeta1 is >= 0 and < 1, nameof(o.AdamBeta1), o.AdamBeta1, "in [0, 1)");
        Check(o.AdamBeta2 is >= 0 and < 1, nameof(o.AdamBeta2), o.AdamBeta2, "in [0, 1)");
        Check(o.AdamEpsilon >= 0 && double.IsFinite(o.AdamEpsilon), nameof(o.AdamEpsilon), o.AdamEpsilon, "0 or more and finite");
        Check(o.AdamWeightDecay >= 0 && double.IsFinite(o.AdamWeightDecay), nameof(o.AdamWeightDecay), o.AdamWeightDecay, "0 or more and finite");
        // +Infinity never clips (torch scales by min(1, max_norm / norm)): the usual way to turn clipping off
        Check(o.MaxGradNorm > 0, nameof(o.MaxGradNorm), o.MaxGradNorm, "positive (+Infinity: no clipping)");
        if (!o.UseEma) return;
        Check(o.EmaMaxDecay is >= 0 and <= 1, nameof(o.EmaMaxDecay), o.EmaMaxDecay, "in [0, 1]");
        Check(o.EmaPower > 0 && double.IsFinite(o.EmaPower), nameof(o.EmaPower), o.EmaPower, "positive and finite");
        Check(o.EmaInvGamma > 0 && double.IsFinite(o.EmaInvGamma), nameof(o.EmaInvGamma), o.EmaInvGamma, "positive and finite");
    }

    // UNet2DModel halves the sample at every level but the last and concatenates each up block's input with the down
    // path's: a side that does not halve evenly ends in mismatched sizes (a libtorch cat error at the first step).
    private static void CheckResolution(int resolution, int levels, string model)
    {
        int factor = 1 << (levels - 1);
        if (resolution % factor != 0)
            throw new DiffusersException(
                $"resolution {resolution} is not a multiple of {factor} = 2^({levels} - 1): {model} has {levels} levels and halves the image at each but the last");
    }

    /// <summary>train_unconditional's UNet2DModel layout scaled by the options (attention at the given levels).</summary>
    public static UNet2DModelConfig BuildConfig(UnconditionalTrainingOptions o)
    {
        int n = o.BlockOutChannels.Length;
        var attn = (o.AttentionLevels ?? (n >= 2 ? [n - 2] : [])).ToHashSet();
        var down = Enumerable.Range(0, n).Select(i => attn.Contains(i) ? "AttnDownBlock2D" : "DownBlock2D").ToArray();
        var up = Enumerable.Range(0, n).Select(i => attn.Contains(n - 1 - i) ? "AttnUpBlock2D" : "UpBlock2D").ToArray();
        return new UNet2DModelConfig
        {
            SampleSize = [o.Resolution],
            InChannels = 3,
            OutChannels = 3,
            LayersPerBlock = o.LayersPerBlock,
            BlockOutChannels = o.BlockOutChannels,
            DownBlockTypes = down,
            UpBlockTypes = up,
            NormNumGroups = o.NormNumGroups ?? 32,
        };
    }

    /// <summary>Runs (or resumes) the training; returns the pipeline folder.</summary>
    public string Train(IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        // The run's scope: what it holds lives as long as the run (each step, checkpoint and save has its own inside)
        using var runScope = torch.NewDisposeScope();
        var o = _o;
        // Before anything is read or written: a previous run in the folder is refused unless resumed or overwritten.
        var previous = TrainingOutputFolder.CheckBeforeRun(o.OutputDir, o.Resume, o.Overwrite);
        // The data set warns from the loader's thread too: its lines are written on this one, between steps.
        var warnings = new ConcurrentQueue<string>();
        void LogWarnings() { while (warnings.TryDequeue(out var w)) _log(w); }
        var data = new ImageFolderDataset(o.DataDir, o.Resolution, o.CenterCrop, o.RandomFlip, o.SkipBadImages, warnings.Enqueue, o.OutputDir);
        LogWarnings();
        if (data.Excluded > 0) _log($"{o.OutputDir} is inside the data folder: its {data.Excluded} image files are not training data");
        if (data.SplitNote is { } splits) _log(splits);
        if (data.MetadataNote is { } metadata) _log(metadata);
        using var model = CreateModel();
        if (o.InitFrom is { } init) CheckResolution(o.Resolution, model.Config.DownBlockTypes.Length, $"the UNet of {init}");
        model.train();
        using var scheduler = new DDPMScheduler(new DDPMSchedulerConfig
        {
            NumTrainTimesteps = o.NumTrainTimesteps, BetaSchedule = o.BetaSchedule, PredictionType = o.PredictionType,
        });
        var parameters = model.parameters().ToArray();
        using var optimizer = torch.optim.AdamW(parameters, o.LearningRate, o.AdamBeta1, o.AdamBeta2, o.AdamEpsilon, o.AdamWeightDecay);
        using var ema = o.UseEma ? new EMAModel(parameters, o.EmaMaxDecay, useEmaWarmup: true, invGamma: o.EmaInvGamma, power: o.EmaPower) : null;
        using var generator = new Generator((ulong)o.Seed);

        int accum = o.GradientAccumulationSteps;
        long batchesPerEpoch = (data.Count + o.BatchSize - 1) / o.BatchSize;
        long stepsPerEpoch = (batchesPerEpoch + accum - 1) / accum;
        long totalSteps = o.MaxSteps ?? o.Epochs * stepsPerEpoch;
        _log(string.Create(CultureInfo.InvariantCulture,
            $"{data.Count} images, {batchesPerEpoch} batches of {o.BatchSize} per epoch, {totalSteps} optimisation steps, {model.NumParameters():N0} parameters"));
        // As diffusers' get_scheduler, a warm-up as long as the run is taken as given; it is seldom what was meant.
        if (o.LrWarmupSteps >= totalSteps && o.LrScheduler != "constant")
            _log(string.Create(CultureInfo.InvariantCulture,
                $"warning: --lr-warmup-steps {o.LrWarmupSteps} is not less than the run's {totalSteps} optimisation steps: the learning rate rises during the whole run and never reaches --lr {o.LearningRate}"));

        if (o.Overwrite && previous.Count > 0)
        {
            TrainingOutputFolder.RemovePreviousRun(o.OutputDir);
            _log($"--overwrite: deleted the previous run in {o.OutputDir} ({TrainingOutputFolder.Describe(previous)})");
        }
        Directory.CreateDirectory(o.OutputDir);

        long step = 0;
        var losses = new List<(long Step, int Epoch, double Loss, double Lr)>();
        string csvPath = Path.Combine(o.OutputDir, TrainingOutputFolder.LossCsv);
        var settings = TrainingRunSettings.Of(o, data.Count, totalSteps, model.Config);
        if (o.Resume && TrainingCheckpoint.List(o.OutputDir) is { Count: > 0 } cps)
        {
            string path = cps[^1].Path;
            CheckResumable(path, TrainingCheckpoint.ReadState(path), settings, totalSteps, csvPath);
            var state = TrainingCheckpoint.Load(path, model, ema, optimizer, generator);
            step = state.Step;
            losses.AddRange(ReadCsv(csvPath).Where(r => r.Step <= step));
            _log($"resumed from {path} at step {step}");
        }
        else if (o.Resume) _log($"--resume: no checkpoint in {o.OutputDir}; starting a new training run");

        using var loader = new BackgroundBatchLoader(data, o.BatchSize, o.Seed, MicroBatches(step, batchesPerEpoch, accum).First);
        var sw = Stopwatch.StartNew();
        long imagesSeen = 0, startStep = step;
        var alphasCumprod = scheduler.AlphasCumprod;
        while (step < totalSteps)
        {
            cancellationToken.ThrowIfCancellationRequested();
            double lr = o.LearningRate * LRSchedules.Multiplier(o.LrScheduler, step, o.LrWarmupSteps, totalSteps);
            foreach (var g in optimizer.ParamGroups) g.LearningRate = lr;
            double lossSum = 0;
            int epoch = 0;
            int microBatches = MicroBatches(step, batchesPerEpoch, accum).Count;
            // No collection while the step's native calls run: the background loader allocates, and a
            // collection it triggers could finalize a TorchSharp Scalar still in use (see NoGcRegion).
            using (NoGcRegion.Enter())
            {
                for (int m = 0; m < microBatches; m++)
                {
                    using var scope = torch.NewDisposeScope();
                    var batch = loader.Next(cancellationToken);
                    epoch = batch.Epoch;
                    imagesSeen += batch.Count;
                    var clean = torch.tensor(batch.Data, [batch.Count, 3, o.Resolution, o.Resolution]);
                    var noise = torch.randn(clean.shape, ScalarType.Float32, generator: generator);
                    var timesteps = torch.randint(0, scheduler.NumTrainTimesteps, [batch.Count], ScalarType.Int64, generator: generator);
                    var noisy = scheduler.AddNoise(clean, noise, timesteps);
                    var output = model.Forward(noisy, timesteps).Sample;
                    Tensor loss = o.PredictionType switch
                    {
                        "epsilon" => nn.functional.mse_loss(output.to(ScalarType.Float32), noise),
                        "v_prediction" => nn.functional.mse_loss(output.to(ScalarType.Float32), scheduler.GetVelocity(clean, noise, timesteps)),
                        _ => SampleLoss(output, clean, alphasCumprod, timesteps),
                    };
                    float value = loss.item<float>();
                    // A loss that is not a number comes from weights that are not (or soon will be): the steps after it
                    // only spread them, and saving would put them over the run's last good pipeline and checkpoints.
                    if (!float.IsFinite(value))
                        throw new DiffusersException(string.Create(CultureInfo.InvariantCulture,
                            $"the loss is {value} at step {step + 1} (epoch {epoch}): the training diverged; the run stops before saving weights that are not numbers (what {o.OutputDir} holds is from the steps before); start a new run with a lower --lr (--overwrite, or another --output)"))
                        { FilePath = o.OutputDir };
                    lossSum += value;
                    // Divided by the accumulation steps even in an epoch's shorter last step, as accelerate does.
                    (accum == 1 ? loss : loss / accum).backward();
                }
                // The update in a dispose scope too: TorchSharp 0.107's optimizer.zero_grad() makes a tensor per parameter
                // and drops it (its Tensor.zero_ returns a new handle), which left the finalizer 144 tensors a step on the
                // tiny UNet (bench memory-pipelines, path train).
                using (torch.NewDisposeScope())
                {
                    nn.utils.clip_grad_norm_(parameters, o.MaxGradNorm);
                    optimizer.step();
                    optimizer.zero_grad();
                    ema?.Step(parameters);
                }
            }
            step++;
            LogWarnings();
            double meanLoss = lossSum / microBatches;
            losses.Add((step, epoch, meanLoss, lr));

            double ips = imagesSeen / Math.Max(1e-9, sw.Elapsed.TotalSeconds);
            double secPerStep = sw.Elapsed.TotalSeconds / (step - startStep);
            progress?.Report(new TrainingProgress(step, totalSteps, epoch, meanLoss, lr, ips,
                TimeSpan.FromSeconds(Math.Round(secPerStep * (totalSteps - step)))));

            if (o.CheckpointEvery > 0 && step % o.CheckpointEvery == 0 && step < totalSteps)
            {
                WriteCsv(csvPath, losses);
                var path = TrainingCheckpoint.Save(o.OutputDir, model, ema, optimizer, generator,
                    new TrainingCheckpoint.State(step, ema?.OptimizationStep ?? 0, o.Seed, o.LrScheduler, o.LrWarmupSteps, totalSteps, o.LearningRate)
                    {
                        Settings = settings,
                    });
                if (o.KeepCheckpoints is int keep) TrainingCheckpoint.Prune(o.OutputDir, keep);
                _log($"saved {path}");
            }

            long epochsBefore = (step - 1) / stepsPerEpoch, epochsDone = step / stepsPerEpoch;
            bool last = step == totalSteps;
            if (epochsDone > epochsBefore || last)
            {
                long e = Math.Max(epochsDone, 1);
                bool images = o.SaveImagesEveryEpochs > 0 && (epochsDone > epochsBefore && epochsDone % o.SaveImagesEveryEpochs == 0 || last);
                bool save = last || o.SaveModelEveryEpochs > 0 && epochsDone > epochsBefore && epochsDone % o.SaveModelEveryEpochs == 0;
                if (save || images)
                    WithSavedWeights(model, ema, () =>
                    {
                        if (save) SavePipeline(model, scheduler, o.OutputDir);
                        if (images) SaveSampleGrid(model, scheduler.TypedConfig, Path.Combine(o.OutputDir, TrainingOutputFolder.Samples, $"epoch-{e:D4}.png"));
                    });
                WriteCsv(csvPath, losses);
                LossCurvePlot.Save(Path.Combine(o.OutputDir, TrainingOutputFolder.LossPlot), losses.Select(l => (l.Step, l.Loss)).ToList());
            }
        }
        return o.OutputDir;
    }

    /// <summary>
    /// The micro-batches of optimisation step <paramref name="step"/> (0-based) in the loader's stream of batches: an
    /// epoch is exactly <paramref name="batchesPerEpoch"/> batches in ceil(batches / <paramref name="accum"/>) steps of
    /// <paramref name="accum"/> batches, the last one shorter when they do not divide (accelerate's gradient
    /// accumulation syncs at the end of the data loader).
    /// </summary>
    public static (long First, int Count) MicroBatches(long step, long batchesPerEpoch, int accum)
    {
        long stepsPerEpoch = (batchesPerEpoch + accum - 1) / accum;
        long epoch = step / stepsPerEpoch, inEpoch = step % stepsPerEpoch;
        long first = inEpoch * accum;
        return (epoch * batchesPerEpoch + first, (int)Math.Min(accum, batchesPerEpoch - first));
    }

    // A resume must continue the same run, and there must be something left of it to train.
    private void CheckResumable(string checkpoint, TrainingCheckpoint.State saved, IReadOnlyDictionary<string, string> settings,
        long totalSteps, string csvPath)
    {
        TrainingRunSettings.CheckResume(checkpoint, saved, settings);
        string? problem = null;
        if (saved.Step >= totalSteps)
            problem = $"{checkpoint}: the checkpoint is at step {saved.Step}, the end of the run ({totalSteps} optimisation steps): nothing left to train";
        // Checkpoints stop before the last step; the run finished if the log reaches it (the pipeline is written first).
        else if (File.Exists(Path.Combine(_o.OutputDir, TrainingOutputFolder.PipelineIndex)) && ReadCsv(csvPath).Any(r => r.Step >= totalSteps))
            problem = $"{_o.OutputDir}: the run already finished (loss.csv reaches step {totalSteps} of {totalSteps} and the pipeline is saved): nothing to resume";
        if (problem is not null)
            throw new DiffusersException(problem + "; pass --overwrite to train again from the start") { FilePath = checkpoint };
    }

    private static Tensor SampleLoss(Tensor output, Tensor clean, Tensor alphasCumprod, Tensor timesteps)
    {
        // train_unconditional: alpha_t = alphas_cumprod[t]; snr = alpha_t / (1 - alpha_t); mean(snr * mse(reduction none)).
        var alphaT = alphasCumprod.to(ScalarType.Float32).index_select(0, timesteps).view(-1, 1, 1, 1);
        var snr = alphaT / (1 - alphaT);
        return (snr * nn.functional.mse_loss(output.to(ScalarType.Float32), clean, nn.Reduction.None)).mean();
    }

    private UNet2DModel CreateModel()
    {
        if (_o.InitFrom is { } init)
        {
            bool pipelineFolder = !Directory.Exists(init) || File.Exists(Path.Combine(init, "model_index.json"));
            var loaded = UNet2DModel.FromPretrained(init, pipelineFolder ? "unet" : null);
            // the saved config keeps the model's sample_size, as diffusers' save_pretrained does: DDPMPipeline draws
            // images of that size, not of the resolution trained at
            if (loaded.Config.SampleSize is { Length: > 0 } size && size.Any(x => x != _o.Resolution))
                _log($"warning: {init} has sample_size {string.Join("x", size)} in its config and is trained at {_o.Resolution}²; the saved " +
                     $"model keeps sample_size {string.Join("x", size)}, so DDPMPipeline will generate images of that size");
            return loaded;
        }
        var model = UNet2DModel.FromConfig(BuildConfig(_o));
        InitWeights(model, _o.Seed);
        return model;
    }

    /// <summary>
    /// PyTorch's default Conv2d / Linear initialisation (weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), what
    /// kaiming_uniform(a = sqrt 5) gives) redrawn from a generator seeded with <paramref name="seed"/>, so the initial
    /// weights do not depend on the global generator (which other threads may be using). Norm layers keep 1 / 0.
    /// </summary>
    public static void InitWeights(nn.Module model, long seed)
    {
        using var gen = new Generator((ulong)seed);
        using var _ = torch.no_grad();
        foreach (var (_, m) in model.named_modules())
        {
            (Tensor? w, Tensor? b) = m switch
            {
                TorchSharp.Modules.Conv2d c => (c.weight, c.bias),
                TorchSharp.Modules.Linear l => (l.weight, l.bias),
                Models.Lora.LoRACompatibleLayer l => (l.Weight, l.Bias),
                _ => (null, null),
            };
            if (w is null) continue;
            long fanIn = w.shape.Skip(1).Aggregate(1L, (a, x) => a * x);
            double bound = 1.0 / Math.Sqrt(fanIn);
            w.uniform_(-bound, bound, gen);
            b?.uniform_(-bound, bound, gen);
        }
    }

    /// <summary>
    /// Runs <paramref name="action"/> with the EMA weights in the model (if the run saves EMA weights), then restores
    /// them; either way the model is back in training mode afterwards (a pipeline puts it in eval mode).
    /// </summary>
    private void WithSavedWeights(UNet2DModel model, EMAModel? ema, Action action)
    {
        if (ema is null || !_o.SaveEmaWeights)
        {
            try { action(); }
            finally { model.train(); }
            return;
        }
        var stored = model.parameters().Select(p => TorchUtils.Scoped(() => p.detach().clone())).ToArray();
        try
        {
            ema.CopyTo(model.parameters());
            action();
        }
        finally
        {
            using (torch.no_grad())
            {
                int i = 0;
                foreach (var p in model.parameters()) p.copy_(stored[i++]);
            }
            foreach (var t in stored) t.Dispose();
            model.train();
        }
    }

    /// <summary>Writes the DDPMPipeline folder: model_index.json, unet/, scheduler/.</summary>
    public static void SavePipeline(UNet2DModel model, DDPMScheduler scheduler, string dir)
    {
        Directory.CreateDirectory(dir);
        model.SavePretrained(Path.Combine(dir, TrainingOutputFolder.Unet));
        scheduler.SavePretrained(Path.Combine(dir, TrainingOutputFolder.Scheduler));
        // through a temporary file, as every other file the run writes: a kill mid-write leaves the previous index whole
        AtomicFile.WriteAllBytes(Path.Combine(dir, TrainingOutputFolder.PipelineIndex), System.Text.Encoding.UTF8.GetBytes(
            "{\n  \"_class_name\": \"DDPMPipeline\",\n  \"_diffusers_version\": \"" + ModelLoading.DiffusersVersion + "\",\n" +
            "  \"scheduler\": [\n    \"diffusers\",\n    \"DDPMScheduler\"\n  ],\n  \"unet\": [\n    \"diffusers\",\n    \"UNet2DModel\"\n  ]\n}\n"));
    }

    private void SaveSampleGrid(UNet2DModel model, DDPMSchedulerConfig config, string path)
    {
        // a pipeline around the model being trained, not disposed (that would dispose the model): its scheduler is freed here
        using var scheduler = new DDPMScheduler(config);
        var pipe = new DDPMPipeline(model, scheduler);
        using var result = pipe.Generate(_o.EvalBatchSize, Math.Min(_o.DdpmNumInferenceSteps, config.NumTrainTimesteps), seed: 0);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        ImageGrid.Make(result.Images).Save(path);
        _log($"saved {path}");
    }

    private static void WriteCsv(string path, List<(long Step, int Epoch, double Loss, double Lr)> rows)
    {
        using var w = new StreamWriter(path + ".tmp");
        w.WriteLine("step,epoch,loss,lr");
        foreach (var r in rows)
            w.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{r.Step},{r.Epoch},{r.Loss:R},{r.Lr:R}"));
        w.Close();
        File.Move(path + ".tmp", path, true);
    }

    /// <summary>
    /// Reads the loss log (<c>loss.csv</c>) a run writes: step, epoch, loss and learning rate per line.
    /// </summary>
    public static List<(long Step, int Epoch, double Loss, double Lr)> ReadCsv(string path)
    {
        var rows = new List<(long, int, double, double)>();
        if (!File.Exists(path)) return rows;
        int number = 1;
        foreach (var line in File.ReadLines(path).Skip(1))
        {
            number++;
            if (line.Length == 0) continue;
            var f = line.Split(',');
            var inv = CultureInfo.InvariantCulture;
            if (f.Length != 4 || !long.TryParse(f[0], NumberStyles.Integer, inv, out long step) || !int.TryParse(f[1], NumberStyles.Integer, inv, out int epoch)
                || !double.TryParse(f[2], NumberStyles.Float, inv, out double loss) || !double.TryParse(f[3], NumberStyles.Float, inv, out double lr))
                throw new DiffusersException($"{path}: line {number} is not a step,epoch,loss,lr row: '{line}'; repair the line, or delete the file (the loss log: a resume then logs from its checkpoint's step on)")
                { FilePath = path };
            rows.Add((step, epoch, loss, lr));
        }
        return rows;
    }
}
