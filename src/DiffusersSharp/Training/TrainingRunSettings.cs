using System.Globalization;
using DiffusersSharp.Models;

namespace DiffusersSharp.Training;

/// <summary>
/// The settings that determine a training run's steps (data order, noise, schedule, optimiser, EMA), as a checkpoint
/// records them in <see cref="TrainingCheckpoint.State.Settings"/>: each under the CLI option that sets it (or the
/// <see cref="UnconditionalTrainingOptions"/> property where the CLI has none), its value as invariant text. A resumed
/// run must have the same ones, or it would silently become another run (<see cref="CheckResume"/>).
/// </summary>
public static class TrainingRunSettings
{
    /// <summary>The key of the run length in optimisation steps.</summary>
    public const string TotalStepsKey = "optimisation steps (--max-steps, --epochs)";
    /// <summary>The key of the number of images in the data set.</summary>
    public const string ImageCountKey = "images in --data";

    /// <summary>
    /// The settings of a run of <paramref name="o"/> over <paramref name="imageCount"/> images, <paramref name="totalSteps"/>
    /// long, training a UNet of config <paramref name="unet"/> (the layout options' model, or <c>--init-from</c>'s): its
    /// layout is recorded too, since a checkpoint's weights fit another layout of the same shapes (other GroupNorm
    /// groups) and would silently train another model.
    /// </summary>
    public static IReadOnlyDictionary<string, string> Of(UnconditionalTrainingOptions o, int imageCount, long totalSteps, UNet2DModelConfig unet) =>
        new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["--seed"] = Text(o.Seed),
            [TotalStepsKey] = Text(totalSteps),
            [ImageCountKey] = Text(imageCount),
            ["--batch-size"] = Text(o.BatchSize),
            ["--grad-accum"] = Text(o.GradientAccumulationSteps),
            ["--lr"] = Text(o.LearningRate),
            ["--lr-scheduler"] = o.LrScheduler,
            ["--lr-warmup-steps"] = Text(o.LrWarmupSteps),
            ["--resolution"] = Text(o.Resolution),
            ["--center-crop"] = Text(o.CenterCrop),
            ["--random-flip"] = Text(o.RandomFlip),
            ["--prediction-type"] = o.PredictionType,
            ["--num-train-timesteps"] = Text(o.NumTrainTimesteps),
            ["--beta-schedule"] = o.BetaSchedule,
            ["--block-out-channels"] = string.Join(",", unet.BlockOutChannels.Select(b => Text(b))),
            ["--layers-per-block"] = Text(unet.LayersPerBlock),
            ["--attention-levels"] = AttentionLevels(unet.DownBlockTypes),
            ["--norm-num-groups"] = unet.NormNumGroups is int groups ? Text(groups) : "none",
            ["--no-ema"] = Text(!o.UseEma),
            [nameof(o.AdamBeta1)] = Text(o.AdamBeta1),
            [nameof(o.AdamBeta2)] = Text(o.AdamBeta2),
            [nameof(o.AdamWeightDecay)] = Text(o.AdamWeightDecay),
            [nameof(o.AdamEpsilon)] = Text(o.AdamEpsilon),
            [nameof(o.MaxGradNorm)] = Text(o.MaxGradNorm),
            [nameof(o.EmaInvGamma)] = Text(o.EmaInvGamma),
            [nameof(o.EmaPower)] = Text(o.EmaPower),
            [nameof(o.EmaMaxDecay)] = Text(o.EmaMaxDecay),
        };

    /// <summary>
    /// Refuses to resume from <paramref name="checkpoint"/> (whose state is <paramref name="saved"/>) with settings
    /// other than those it recorded: the message lists each differing setting, saved vs given. A checkpoint written
    /// before the settings were recorded is compared on what it has (seed, length, learning rate and its schedule).
    /// </summary>
    public static void CheckResume(string checkpoint, TrainingCheckpoint.State saved, IReadOnlyDictionary<string, string> current)
    {
        var recorded = saved.Settings ?? new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["--seed"] = Text(saved.Seed),
            [TotalStepsKey] = Text(saved.TotalSteps),
            ["--lr"] = Text(saved.LearningRate),
            ["--lr-scheduler"] = saved.LrScheduler,
            ["--lr-warmup-steps"] = Text(saved.LrWarmupSteps),
        };
        var differences = current
            .Where(kv => recorded.TryGetValue(kv.Key, out var s) && s != kv.Value)
            .Select(kv => $"{kv.Key} {recorded[kv.Key]} vs {kv.Value}")
            .ToList();
        if (differences.Count == 0) return;
        string message = $"{checkpoint} was saved by a run with other settings (saved vs given): {string.Join("; ", differences)}. "
            + "Resume with the saved values, or start a new run with --overwrite or another --output folder";
        throw new DiffusersException(message) { FilePath = checkpoint };
    }

    // "1,2" (the levels whose down block has attention) or "none", as --attention-levels takes them.
    private static string AttentionLevels(string[] downBlockTypes)
    {
        var levels = Enumerable.Range(0, downBlockTypes.Length).Where(i => downBlockTypes[i].Contains("Attn", StringComparison.Ordinal)).ToList();
        return levels.Count == 0 ? "none" : string.Join(",", levels.Select(l => Text(l)));
    }

    private static string Text(long v) => v.ToString(CultureInfo.InvariantCulture);
    private static string Text(double v) => v.ToString("R", CultureInfo.InvariantCulture);
    private static string Text(bool v) => v ? "true" : "false";
}
