using System.Globalization;
using DiffusersSharp.Models;

namespace DiffusersSharp.Training;

/// <summary>
/// The files a training run writes into its output folder, found by name: <c>model_index.json</c>,
/// <c>unet/config.json</c> and <c>unet/diffusion_pytorch_model.safetensors</c>, <c>scheduler/scheduler_config.json</c>,
/// <c>loss.csv</c>, <c>loss.png</c>, <c>samples/epoch-NNNN.png</c> and the <c>checkpoint-N</c> folders. A new run
/// refuses a folder that holds any of them unless it resumes or overwrites (<see cref="CheckBeforeRun"/>);
/// <see cref="RemovePreviousRun"/> deletes exactly those and nothing else of the folder.
/// </summary>
public static class TrainingOutputFolder
{
    /// <summary>The pipeline's index file.</summary>
    public const string PipelineIndex = "model_index.json";
    /// <summary>The loss log (step, epoch, loss, learning rate per optimisation step).</summary>
    public const string LossCsv = "loss.csv";
    /// <summary>The loss curve.</summary>
    public const string LossPlot = "loss.png";
    /// <summary>The folder of sample grids (<c>epoch-NNNN.png</c>).</summary>
    public const string Samples = "samples";
    /// <summary>The pipeline's UNet folder.</summary>
    public const string Unet = "unet";
    /// <summary>The pipeline's scheduler folder.</summary>
    public const string Scheduler = "scheduler";
    private const string SchedulerConfig = "scheduler_config.json";

    /// <summary>
    /// The previous run's entries in <paramref name="dir"/> ("model_index.json", "unet/", "samples/",
    /// "checkpoint-500"; checkpoints last, by step), or none.
    /// </summary>
    public static IReadOnlyList<string> PreviousRun(string dir)
    {
        var found = new List<string>();
        if (!Directory.Exists(dir)) return found;
        foreach (var (entry, files) in Groups(dir))
            if (files.Any(File.Exists)) found.Add(entry);
        found.AddRange(CheckpointFolders(dir).Select(c => Path.GetFileName(c.Path)));
        return found;
    }

    /// <summary>
    /// Refuses to start a run in <paramref name="dir"/> when it would mix with or overwrite a previous run: one is there
    /// and neither <paramref name="resume"/> nor <paramref name="overwrite"/> is set, or <paramref name="resume"/> is
    /// set and there is no checkpoint to resume from. Returns the previous run's entries.
    /// </summary>
    public static IReadOnlyList<string> CheckBeforeRun(string dir, bool resume, bool overwrite)
    {
        CheckCanBeFolder(dir);
        var previous = PreviousRun(dir);
        if (previous.Count == 0 || overwrite) return previous;
        bool checkpoint = TrainingCheckpoint.List(dir).Count > 0;
        if (resume && checkpoint) return previous;
        string message = resume
            ? $"--resume: {dir} has no checkpoint to resume from (no checkpoint-N folder with a trainer_state.json) but holds a previous run ({Describe(previous)}); "
                + "pass --overwrite instead of --resume to delete it and start a new run, or choose another --output folder"
            : $"{dir} holds a previous training run ({Describe(previous)}); "
                + (checkpoint ? "pass --resume to continue it from its newest checkpoint, " : "")
                + "pass --overwrite to delete it and start a new run, or choose another --output folder";
        throw new DiffusersException(message) { FilePath = dir };
    }

    // A file at the output folder's place or above it would fail the run only when it first writes, after the data set
    // and the model are read (an IOException out of Directory.CreateDirectory).
    private static void CheckCanBeFolder(string dir)
    {
        if (File.Exists(dir)) throw new DiffusersException($"{dir}: --output is a file, not a folder") { FilePath = dir };
        for (string? parent = Path.GetDirectoryName(Path.GetFullPath(dir)); parent is not null; parent = Path.GetDirectoryName(parent))
            if (File.Exists(parent))
                throw new DiffusersException($"{dir}: the --output folder cannot be created: {parent} is a file") { FilePath = dir };
    }

    /// <summary>
    /// Deletes the previous run's files in <paramref name="dir"/> (those <see cref="PreviousRun"/> lists: the
    /// trainer's own file names, the checkpoint folders whole) and the <c>unet/</c>, <c>scheduler/</c> and
    /// <c>samples/</c> folders when that leaves them empty; every other file stays.
    /// </summary>
    public static void RemovePreviousRun(string dir)
    {
        if (!Directory.Exists(dir)) return;
        foreach (var (_, files) in Groups(dir))
            foreach (var f in files)
                if (File.Exists(f)) File.Delete(f);
        foreach (var sub in new[] { Unet, Scheduler, Samples })
        {
            string path = Path.Combine(dir, sub);
            if (Directory.Exists(path) && !Directory.EnumerateFileSystemEntries(path).Any()) Directory.Delete(path);
        }
        foreach (var (_, path) in CheckpointFolders(dir)) Directory.Delete(path, recursive: true);
    }

    /// <summary>
    /// The entries for a message: "model_index.json, unet/, loss.csv, checkpoint-2, checkpoint-4"; more than three
    /// checkpoints as "8 checkpoints (checkpoint-500 to checkpoint-4000)".
    /// </summary>
    public static string Describe(IReadOnlyList<string> entries)
    {
        var checkpoints = entries.Where(e => e.StartsWith(TrainingCheckpoint.Prefix, StringComparison.Ordinal)).ToList();
        var rest = entries.Where(e => !e.StartsWith(TrainingCheckpoint.Prefix, StringComparison.Ordinal)).ToList();
        if (checkpoints.Count > 3)
            rest.Add(string.Create(CultureInfo.InvariantCulture, $"{checkpoints.Count} checkpoints ({checkpoints[0]} to {checkpoints[^1]})"));
        else rest.AddRange(checkpoints);
        return string.Join(", ", rest);
    }

    // Each entry of a message with the files of it the trainer writes.
    private static IEnumerable<(string Entry, IEnumerable<string> Files)> Groups(string dir)
    {
        yield return (PipelineIndex, [Path.Combine(dir, PipelineIndex)]);
        yield return (Unet + "/", [Path.Combine(dir, Unet, UNet2DModel.ConfigName), Path.Combine(dir, Unet, UNet2DModel.WeightsName + ".safetensors")]);
        yield return (Scheduler + "/", [Path.Combine(dir, Scheduler, SchedulerConfig)]);
        yield return (LossCsv, [Path.Combine(dir, LossCsv), Path.Combine(dir, LossCsv + ".tmp")]);
        yield return (LossPlot, [Path.Combine(dir, LossPlot)]);
        string samples = Path.Combine(dir, Samples);
        yield return (Samples + "/", Directory.Exists(samples)
            ? Directory.EnumerateFiles(samples, "epoch-*.png").Where(f => IsDigits(Path.GetFileNameWithoutExtension(f)["epoch-".Length..])).Order(StringComparer.Ordinal).ToList()
            : []);
    }

    // checkpoint-N and checkpoint-N.tmp folders (complete or not), by step.
    private static List<(long Step, string Path)> CheckpointFolders(string dir)
    {
        var result = new List<(long, string)>();
        foreach (var d in Directory.EnumerateDirectories(dir, TrainingCheckpoint.Prefix + "*"))
        {
            string tail = Path.GetFileName(d)[TrainingCheckpoint.Prefix.Length..];
            if (tail.EndsWith(".tmp", StringComparison.Ordinal)) tail = tail[..^4];
            if (IsDigits(tail) && long.TryParse(tail, NumberStyles.None, CultureInfo.InvariantCulture, out long step)) result.Add((step, d));
        }
        return result.OrderBy(c => c.Item1).ThenBy(c => c.Item2, StringComparer.Ordinal).ToList();
    }

    private static bool IsDigits(string s) => s.Length > 0 && s.All(char.IsAsciiDigit);
}
