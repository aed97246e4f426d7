using DiffusersSharp.Cli;
using DiffusersSharp.Tests.Support;
using DiffusersSharp.Training;

namespace DiffusersSharp.Tests.Training;

/// <summary>A new run never mixes with or destroys a previous run in its output folder.</summary>
public class TrainingOutputFolderTests
{
    // Four steps (12 images, batch 8: two per epoch) with a checkpoint at step 2, sample grids after epochs 1 and 2.
    private static UnconditionalTrainingOptions PreviousRun(string data, string output) => TinyRuns.Options(data, output) with
    {
        MaxSteps = 4,
        CheckpointEvery = 2,
        SaveImagesEveryEpochs = 1,
        EvalBatchSize = 1,
        DdpmNumInferenceSteps = 1,
    };

    private const string AllEntries = "model_index.json, unet/, scheduler/, loss.csv, loss.png, samples/, checkpoint-2";

    [Fact]
    public void ANewRunRefusesAFolderWithAPreviousRunAndChangesNothing()
    {
        using var dir = new TempDir();
        string data = TinyRuns.Cats(dir, 12), output = dir.File("out");
        new UnconditionalTrainer(PreviousRun(data, output)).Train();
        var before = TinyRuns.Snapshot(output);
        Assert.Contains(Path.Combine("checkpoint-2", "trainer_state.json"), before.Keys);
        Assert.Contains(Path.Combine("samples", "epoch-0002.png"), before.Keys);

        var other = TinyRuns.Options(data, output) with { Seed = 4, MaxSteps = 2 };
        var e = Assert.Throws<DiffusersException>(() => new UnconditionalTrainer(other).Train());
        Assert.Equal($"{output} holds a previous training run ({AllEntries}); pass --resume to continue it from its newest checkpoint, "
            + "pass --overwrite to delete it and start a new run, or choose another --output folder", e.Message);
        Assert.Equal(output, e.FilePath);
        Assert.Equal(before, TinyRuns.Snapshot(output));
    }

    [Fact]
    public void AFolderWithARunButNoCheckpointIsRefusedWithAndWithoutResume()
    {
        using var dir = new TempDir();
        string data = TinyRuns.Cats(dir, 12), output = dir.File("out");
        var run = TinyRuns.Options(data, output) with { MaxSteps = 2 };
        new UnconditionalTrainer(run).Train();
        var before = TinyRuns.Snapshot(output);
        const string entries = "model_index.json, unet/, scheduler/, loss.csv, loss.png";

        var again = Assert.Throws<DiffusersException>(() => new UnconditionalTrainer(run).Train());
        Assert.Equal($"{output} holds a previous training run ({entries}); pass --overwrite to delete it and start a new run, "
            + "or choose another --output folder", again.Message);
        var resume = Assert.Throws<DiffusersException>(() => new UnconditionalTrainer(run with { Resume = true }).Train());
        Assert.Equal($"--resume: {output} has no checkpoint to resume from (no checkpoint-N folder with a trainer_state.json) "
            + $"but holds a previous run ({entries}); pass --overwrite instead of --resume to delete it and start a new run, "
            + "or choose another --output folder", resume.Message);
        Assert.Equal(before, TinyRuns.Snapshot(output));
    }

    [Fact]
    public void OverwriteDeletesOnlyThePreviousRunsFiles()
    {
        using var dir = new TempDir();
        string data = TinyRuns.Cats(dir, 12), output = dir.File("out");
        new UnconditionalTrainer(PreviousRun(data, output)).Train();
        string[] userFiles = ["notes.txt", Path.Combine("unet", "README.md"), Path.Combine("samples", "mine.png"),
            Path.Combine("checkpoint-best", "a.txt"), "checkpoint-9.txt"];
        foreach (var f in userFiles)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(output, f))!);
            File.WriteAllText(Path.Combine(output, f), "user: " + f);
        }

        var log = new List<string>();
        var next = TinyRuns.Options(data, output) with { MaxSteps = 2, Overwrite = true };
        new UnconditionalTrainer(next, log.Add).Train();

        Assert.Contains($"--overwrite: deleted the previous run in {output} ({AllEntries})", log);
        var after = TinyRuns.Snapshot(output);
        string[] written = ["model_index.json", Path.Combine("unet", "config.json"), Path.Combine("unet", "diffusion_pytorch_model.safetensors"),
            Path.Combine("scheduler", "scheduler_config.json"), "loss.csv", "loss.png"];
        Assert.Equal(userFiles.Concat(written).Order(StringComparer.Ordinal), after.Keys);
        foreach (var f in userFiles) Assert.Equal("user: " + f, File.ReadAllText(Path.Combine(output, f)));
        // nothing of the old run mixed in: the same files as the run in an empty folder
        var fresh = next with { OutputDir = dir.File("fresh"), Overwrite = false };
        new UnconditionalTrainer(fresh).Train();
        Assert.Equal(TinyRuns.Weights(fresh.OutputDir), TinyRuns.Weights(output));
        Assert.Equal(File.ReadAllText(Path.Combine(fresh.OutputDir, "loss.csv")), File.ReadAllText(Path.Combine(output, "loss.csv")));
    }

    [Fact]
    public void ResumeInAFolderWithoutARunStartsANewRun()
    {
        using var dir = new TempDir();
        string data = TinyRuns.Cats(dir, 12), output = dir.File("out");
        Directory.CreateDirectory(output);
        File.WriteAllText(Path.Combine(output, "notes.txt"), "mine");
        var log = new List<string>();
        var run = TinyRuns.Options(data, output) with { MaxSteps = 2, Resume = true };
        new UnconditionalTrainer(run, log.Add).Train();
        Assert.Contains($"--resume: no checkpoint in {output}; starting a new training run", log);
        var plain = run with { OutputDir = dir.File("plain"), Resume = false };
        new UnconditionalTrainer(plain).Train();
        Assert.Equal(TinyRuns.Weights(plain.OutputDir), TinyRuns.Weights(output));
        Assert.Equal("mine", File.ReadAllText(Path.Combine(output, "notes.txt")));
    }

    [Fact]
    public void ACheckpointFolderThatIsNotTheRunsIsNotReplaced()
    {
        using var dir = new TempDir();
        string data = TinyRuns.Cats(dir, 12), output = dir.File("out");
        var run = TinyRuns.Options(data, output) with { MaxSteps = 6, CheckpointEvery = 2 };
        using (var cts = new CancellationTokenSource())
        {
            var stopAt2 = new SyncProgress(null, p => { if (p.Step == 2) cts.Cancel(); });
            Assert.Throws<OperationCanceledException>(() => new UnconditionalTrainer(run).Train(stopAt2, cts.Token));
        }
        // a checkpoint-4 folder without trainer_state.json: not a checkpoint to resume from, and not this run's
        string stale = Path.Combine(output, "checkpoint-4");
        Directory.CreateDirectory(stale);
        File.WriteAllText(Path.Combine(stale, "mine.txt"), "keep");
        var e = Assert.Throws<DiffusersException>(() => new UnconditionalTrainer(run with { Resume = true }).Train());
        Assert.Equal($"{stale} already exists: not replacing it with this run's checkpoint", e.Message);
        Assert.Equal(["mine.txt"], Directory.GetFiles(stale).Select(Path.GetFileName));
        Assert.False(Directory.Exists(stale + ".tmp"));
    }

    [Fact]
    public void ResumeAndOverwriteExcludeEachOther()
    {
        var o = TinyRuns.Options("data", "out") with { Resume = true, Overwrite = true };
        var e = Assert.Throws<DiffusersException>(() => UnconditionalTrainer.Validate(o));
        Assert.Equal("--resume and --overwrite exclude each other: --resume continues the run in out, --overwrite deletes it", e.Message);
    }

    [Fact]
    public void AnOutputFolderInsideTheDataFolderIsNotTrainingData()
    {
        using var dir = new TempDir();
        string data = TinyRuns.Cats(dir, 12), output = Path.Combine(data, "run");
        // a sibling whose name starts like the output folder's is data
        Directory.CreateDirectory(Path.Combine(data, "run2"));
        File.Copy(Path.Combine(data, "cat_00000.png"), Path.Combine(data, "run2", "extra.png"));
        var straight = TinyRuns.Options(data, dir.File("straight")) with { MaxSteps = 6 };
        new UnconditionalTrainer(straight).Train();

        // the run writes sample grids and loss.png into the data folder, is stopped and resumed: the same run
        var inside = straight with { OutputDir = output, CheckpointEvery = 2, SaveImagesEveryEpochs = 1, EvalBatchSize = 1, DdpmNumInferenceSteps = 1 };
        using (var cts = new CancellationTokenSource())
        {
            var stopAt4 = new SyncProgress(null, p => { if (p.Step == 4) cts.Cancel(); });
            Assert.Throws<OperationCanceledException>(() => new UnconditionalTrainer(inside).Train(stopAt4, cts.Token));
        }
        var log = new List<string>();
        new UnconditionalTrainer(inside with { Resume = true }, log.Add).Train();
        Assert.Contains(log, l => l.StartsWith("13 images, 2 batches of 8 per epoch, 6 optimisation steps,", StringComparison.Ordinal));
        Assert.Contains($"{output} is inside the data folder: its 3 image files are not training data", log); // 2 grids, loss.png
        Assert.Equal(File.ReadAllText(Path.Combine(straight.OutputDir, "loss.csv")), File.ReadAllText(Path.Combine(output, "loss.csv")));
        Assert.Equal(TinyRuns.Weights(straight.OutputDir), TinyRuns.Weights(output));
    }

    [Fact]
    public void TheDataFolderCannotBeTheOutputFolderOrItsSamples()
    {
        using var dir = new TempDir();
        string data = dir.File("data");
        foreach (var output in new[] { data, data + "/", Path.Combine(data, "..", "data") })
        {
            var e = Assert.Throws<DiffusersException>(() => UnconditionalTrainer.Validate(TinyRuns.Options(data, output)));
            Assert.Equal($"the data folder {data} is the output folder or its samples/: the run's sample grids and loss curve would become training images; choose another --output", e.Message);
        }
        var samples = Assert.Throws<DiffusersException>(() => UnconditionalTrainer.Validate(TinyRuns.Options(Path.Combine(data, "samples"), data)));
        Assert.StartsWith($"the data folder {Path.Combine(data, "samples")} is the output folder or its samples/", samples.Message);
        UnconditionalTrainer.Validate(TinyRuns.Options(Path.Combine(data, "cats"), data)); // a project folder holding its data is fine
        UnconditionalTrainer.Validate(TinyRuns.Options(data, Path.Combine(data, "run")));
    }

    [Fact]
    public void AnOutputPathThatIsAFileIsRefusedBeforeAnythingIsRead()
    {
        // it failed when the run first wrote, after the data set and the model were read, with an IOException out of
        // Directory.CreateDirectory ("unexpected error" in the CLI)
        using var dir = new TempDir();
        string file = dir.File("notes.txt");
        File.WriteAllText(file, "mine");
        var e = Assert.Throws<DiffusersException>(() => new UnconditionalTrainer(TinyRuns.Options(dir.File("no-data"), file)).Train());
        Assert.Equal($"{file}: --output is a file, not a folder", e.Message);
        Assert.Equal(file, e.FilePath);
        string below = Path.Combine(file, "run");
        e = Assert.Throws<DiffusersException>(() => new UnconditionalTrainer(TinyRuns.Options(dir.File("no-data"), below)).Train());
        Assert.Equal($"{below}: the --output folder cannot be created: {file} is a file", e.Message);
        Assert.Equal("mine", File.ReadAllText(file));
    }

    [Fact]
    public void ManyCheckpointsAreSummarised()
    {
        Assert.Equal("loss.csv, 4 checkpoints (checkpoint-500 to checkpoint-2000)",
            TrainingOutputFolder.Describe(["loss.csv", "checkpoint-500", "checkpoint-1000", "checkpoint-1500", "checkpoint-2000"]));
        Assert.Equal("unet/, checkpoint-5, checkpoint-10", TrainingOutputFolder.Describe(["unet/", "checkpoint-5", "checkpoint-10"]));
    }

    [Fact]
    public void TheCliRefusesASecondRunUnlessOverwrite()
    {
        using var dir = new TempDir();
        string data = TinyRuns.Cats(dir, 8), output = dir.File("out");
        string[] args = ["train", "unconditional", "--data", data, "--output", output, "--resolution", "16", "--batch-size", "8",
            "--max-steps", "1", "--block-out-channels", "8,16", "--layers-per-block", "1", "--norm-num-groups", "4",
            "--attention-levels", "none", "--num-train-timesteps", "100", "--checkpoint-every", "0",
            "--save-images-every-epochs", "0", "--save-model-every-epochs", "0"];
        var o = new StringWriter();
        var err = new StringWriter();
        Assert.Equal(0, CliApp.Run(args, o, err));
        Assert.Equal(0, CliApp.Run([.. args, "--overwrite"], o, err));
        Assert.Contains($"--overwrite: deleted the previous run in {output} (model_index.json, unet/, scheduler/, loss.csv, loss.png)", o.ToString());
        Assert.Equal("", err.ToString());
        Assert.Equal(1, CliApp.Run(args, o, err));
        Assert.Equal($"error: {output} holds a previous training run (model_index.json, unet/, scheduler/, loss.csv, loss.png); "
            + "pass --overwrite to delete it and start a new run, or choose another --output folder", err.ToString().Trim());
    }
}
