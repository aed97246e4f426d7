using System.CommandLine;
using System.Globalization;
using DiffusersSharp.Training;
using Spectre.Console;

namespace DiffusersSharp.Cli;

/// <summary>
/// <c>diffusers train unconditional --data DIR --output DIR ...</c>: diffusers' train_unconditional.py
/// (<see cref="UnconditionalTrainer"/>), with a progress bar (loss, lr, images/s, ETA) or plain lines when redirected.
/// </summary>
public static class TrainCommand
{
    /// <summary>Builds the command (options, arguments and handler) around <paramref name="ctx"/>.</summary>
    public static Command Create(CliContext ctx)
    {
        var data = new Option<string>("--data") { Description = "Folder of training images, as datasets' imagefolder reads it (recursive; PNG, JPEG, WebP, GIF, BMP, ICO, TIFF; where its folder or file names name splits, as train/ and test/, its train split; where a metadata.csv/.jsonl is, the images its file_name column names; JPEG 2000 and other formats PIL reads and DiffusersSharp does not are refused: convert them to PNG)", Required = true };
        var output = new Option<string>("--output", "-o") { Description = "Output folder (pipeline, checkpoints, loss.csv, samples)", Required = true };
        var resolution = new Option<int>("--resolution") { DefaultValueFactory = _ => 64, Description = "Image size" };
        var centerCrop = new Option<bool>("--center-crop") { Description = "Centre crop (default: random crop)" };
        var randomFlip = new Option<bool>("--random-flip") { Description = "Random horizontal flip" };
        var stopOnBad = new Option<bool>("--stop-on-bad-images") { Description = "Fail on an unreadable image instead of skipping it" };
        var batch = new Option<int>("--batch-size") { DefaultValueFactory = _ => 16 };
        var epochs = new Option<int>("--epochs") { DefaultValueFactory = _ => 100 };
        var maxSteps = new Option<long?>("--max-steps") { Description = "Optimisation steps (overrides --epochs)" };
        var lr = new Option<double>("--lr") { DefaultValueFactory = _ => 1e-4 };
        var lrScheduler = new Option<string>("--lr-scheduler") { DefaultValueFactory = _ => "cosine", Description = "constant, constant_with_warmup, linear, cosine" };
        var warmup = new Option<int>("--lr-warmup-steps") { DefaultValueFactory = _ => 500 };
        var accum = new Option<int>("--grad-accum") { DefaultValueFactory = _ => 1 };
        var prediction = new Option<string>("--prediction-type") { DefaultValueFactory = _ => "epsilon", Description = "epsilon, v_prediction, sample" };
        var timesteps = new Option<int>("--num-train-timesteps") { DefaultValueFactory = _ => 1000 };
        var beta = new Option<string>("--beta-schedule") { DefaultValueFactory = _ => "linear" };
        var channels = new Option<string>("--block-out-channels") { DefaultValueFactory = _ => "128,128,256,256,512,512" };
        var layers = new Option<int>("--layers-per-block") { DefaultValueFactory = _ => 2 };
        var attention = new Option<string?>("--attention-levels") { Description = "Comma-separated 0-based levels with attention (default: second to last; 'none')" };
        var groups = new Option<int?>("--norm-num-groups") { Description = "GroupNorm groups (default 32)" };
        var initFrom = new Option<string?>("--init-from") { Description = "Pipeline/UNet folder or Hub id to fine-tune" };
        var ckEvery = new Option<int>("--checkpoint-every") { DefaultValueFactory = _ => 500, Description = "A checkpoint every N optimisation steps (0: none)" };
        var keep = new Option<int?>("--keep-checkpoints") { Description = "Keep only the newest K checkpoints" };
        var resume = new Option<bool>("--resume") { Description = "Resume from the newest checkpoint in --output (same settings)" };
        var overwrite = new Option<bool>("--overwrite") { Description = "Delete a previous run's files in --output and start a new run" };
        var imagesEvery = new Option<int>("--save-images-every-epochs") { DefaultValueFactory = _ => 10, Description = "A sample grid every N epochs and at the end (0: none)" };
        var modelEvery = new Option<int>("--save-model-every-epochs") { DefaultValueFactory = _ => 10, Description = "Save the pipeline every N epochs (0: only at the end)" };
        var evalBatch = new Option<int>("--eval-batch-size") { DefaultValueFactory = _ => 16 };
        var inferenceSteps = new Option<int>("--ddpm-num-inference-steps") { DefaultValueFactory = _ => 1000 };
        var mixed = new Option<string>("--mixed-precision") { DefaultValueFactory = _ => "no", Description = "no (fp16 and bf16 need autocast, which TorchSharp 0.107 lacks)" };
        var noEma = new Option<bool>("--no-ema") { Description = "Do not keep an EMA of the weights" };
        var seed = new Option<long>("--seed") { DefaultValueFactory = _ => 0 };
        var unconditional = new Command("unconditional", "Train a UNet2DModel DDPM on a folder of images (diffusers' train_unconditional.py)")
        {
            data, output, resolution, centerCrop, randomFlip, stopOnBad, batch, epochs, maxSteps, lr, lrScheduler, warmup, accum,
            prediction, timesteps, beta, channels, layers, attention, groups, initFrom, ckEvery, keep, resume, overwrite,
            imagesEvery, modelEvery, evalBatch, inferenceSteps, mixed, noEma, seed,
        };
        unconditional.SetAction(pr =>
        {
            var options = new UnconditionalTrainingOptions
            {
                DataDir = pr.GetValue(data)!, OutputDir = pr.GetValue(output)!, Resolution = pr.GetValue(resolution),
                CenterCrop = pr.GetValue(centerCrop), RandomFlip = pr.GetValue(randomFlip), SkipBadImages = !pr.GetValue(stopOnBad),
                BatchSize = pr.GetValue(batch), Epochs = pr.GetValue(epochs), MaxSteps = pr.GetValue(maxSteps),
                LearningRate = pr.GetValue(lr), LrScheduler = pr.GetValue(lrScheduler)!, LrWarmupSteps = pr.GetValue(warmup),
                GradientAccumulationSteps = pr.GetValue(accum), PredictionType = pr.GetValue(prediction)!,
                NumTrainTimesteps = pr.GetValue(timesteps), BetaSchedule = pr.GetValue(beta)!,
                BlockOutChannels = ParseInts(pr.GetValue(channels)!, "--block-out-channels"), LayersPerBlock = pr.GetValue(layers),
                AttentionLevels = pr.GetValue(attention) is { } a ? (a == "none" ? [] : ParseInts(a, "--attention-levels")) : null,
                NormNumGroups = pr.GetValue(groups), InitFrom = pr.GetValue(initFrom), CheckpointEvery = pr.GetValue(ckEvery),
                KeepCheckpoints = pr.GetValue(keep), Resume = pr.GetValue(resume), Overwrite = pr.GetValue(overwrite),
                SaveImagesEveryEpochs = pr.GetValue(imagesEvery), SaveModelEveryEpochs = pr.GetValue(modelEvery), EvalBatchSize = pr.GetValue(evalBatch),
                DdpmNumInferenceSteps = pr.GetValue(inferenceSteps), MixedPrecision = pr.GetValue(mixed)!,
                UseEma = !pr.GetValue(noEma), Seed = pr.GetValue(seed),
            };
            var trainer = new UnconditionalTrainer(options, ctx.Out.WriteLine);
            string dir = Run(ctx, trainer);
            ctx.Out.WriteLine($"saved the DDPMPipeline to {dir}");
            return CliApp.Ok;
        });
        return new Command("train", "Train diffusion models") { unconditional };
    }

    private static int[] ParseInts(string s, string option)
    {
        try
        {
            return s.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(x => int.Parse(x, NumberStyles.None, CultureInfo.InvariantCulture)).ToArray();
        }
        catch (FormatException)
        {
            throw new UserException($"{option}: expected comma-separated integers, got '{s}'");
        }
    }

    /// <summary>"step 3/10  epoch 0  loss 0.1234  lr 1.00e-04  52.1 img/s  ETA 0:00:01".</summary>
    public static string Line(TrainingProgress p) => string.Create(CultureInfo.InvariantCulture,
        $"step {p.Step}/{p.TotalSteps}  epoch {p.Epoch}  loss {p.Loss:0.0000}  lr {p.LearningRate:0.00e+00}  {p.ImagesPerSecond:0.0} img/s  ETA {p.Remaining:h\\:mm\\:ss}");

    // Redrawn on the training thread at each step, no refresh thread (see ProgressDisplay).
    private static string Run(CliContext ctx, UnconditionalTrainer trainer) =>
        ProgressDisplay.Run<TrainingProgress, string>(ctx, "training", 100, progress => trainer.Train(progress, ctx.CancellationToken),
            p => (p.Step, p.TotalSteps, Markup.Escape(Line(p)), Line(p)));
}
