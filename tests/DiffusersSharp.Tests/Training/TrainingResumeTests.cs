using System.Text.Json.Nodes;
using DiffusersSharp.Tests.Support;
using DiffusersSharp.Training;

namespace DiffusersSharp.Tests.Training;

/// <summary>A resume continues the run its checkpoint recorded, or is refused.</summary>
public class TrainingResumeTests
{
    // Six steps (12 images, batch 8: two per epoch), a checkpoint every two; stopped after step 2.
    private static UnconditionalTrainingOptions Interrupted(TempDir dir, out string checkpoint)
    {
        var run = TinyRuns.Options(TinyRuns.Cats(dir, 12), dir.File("out")) with { MaxSteps = 6, CheckpointEvery = 2 };
        using var cts = new CancellationTokenSource();
        var stopAt2 = new SyncProgress(null, p => { if (p.Step == 2) cts.Cancel(); });
        Assert.Throws<OperationCanceledException>(() => new UnconditionalTrainer(run).Train(stopAt2, cts.Token));
        checkpoint = Path.Combine(run.OutputDir, "checkpoint-2");
        Assert.True(File.Exists(Path.Combine(checkpoint, "trainer_state.json")));
        return run with { Resume = true };
    }

    private static void EditState(string checkpoint, Action<JsonObject> edit)
    {
        string path = Path.Combine(checkpoint, "trainer_state.json");
        var state = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(state);
        File.WriteAllText(path, state.ToJsonString());
    }

    private const string Advice = "Resume with the saved values, or start a new run with --overwrite or another --output folder";

    [Fact]
    public void ResumeRefusesChangedSettingsAndListsEach()
    {
        using var dir = new TempDir();
        var resume = Interrupted(dir, out string checkpoint);
        var before = TinyRuns.Snapshot(resume.OutputDir);

        var changed = resume with { Seed = 4, MaxSteps = 8, BatchSize = 4, GradientAccumulationSteps = 2, LearningRate = 2e-3, LrScheduler = "linear" };
        var e = Assert.Throws<DiffusersException>(() => new UnconditionalTrainer(changed).Train());
        Assert.Equal($"{checkpoint} was saved by a run with other settings (saved vs given): --seed 3 vs 4; "
            + "optimisation steps (--max-steps, --epochs) 6 vs 8; --batch-size 8 vs 4; --grad-accum 1 vs 2; --lr 0.001 vs 0.002; "
            + $"--lr-scheduler cosine vs linear. {Advice}", e.Message);
        Assert.Equal(checkpoint, e.FilePath);

        var noEma = resume with { UseEma = false, RandomFlip = false, Resolution = 32 };
        e = Assert.Throws<DiffusersException>(() => new UnconditionalTrainer(noEma).Train());
        Assert.Equal($"{checkpoint} was saved by a run with other settings (saved vs given): --resolution 16 vs 32; "
            + $"--random-flip true vs false; --no-ema false vs true. {Advice}", e.Message);

        // epochs instead of max steps: the same length (12 images in 2 batches: 3 epochs = 6 steps) is the same run
        Assert.Equal(before, TinyRuns.Snapshot(resume.OutputDir));
        var byEpochs = resume with { MaxSteps = null, Epochs = 3 };
        new UnconditionalTrainer(byEpochs).Train();
        Assert.Equal(6, UnconditionalTrainer.ReadCsv(Path.Combine(resume.OutputDir, "loss.csv")).Count);
    }

    [Fact]
    public void ResumeRefusesAnotherModelLayout()
    {
        using var dir = new TempDir();
        var resume = Interrupted(dir, out string checkpoint);
        // other GroupNorm groups fit the checkpoint's weights: the run resumed and trained another model
        var e = Assert.Throws<DiffusersException>(() => new UnconditionalTrainer(resume with { NormNumGroups = 8 }).Train());
        Assert.Equal($"{checkpoint} was saved by a run with other settings (saved vs given): --norm-num-groups 4 vs 8. {Advice}", e.Message);
        // other shapes failed on the weights, naming no option
        var layout = resume with { BlockOutChannels = [8, 16, 16], LayersPerBlock = 2, AttentionLevels = [] };
        e = Assert.Throws<DiffusersException>(() => new UnconditionalTrainer(layout).Train());
        Assert.Equal($"{checkpoint} was saved by a run with other settings (saved vs given): --block-out-channels 8,16 vs 8,16,16; "
            + $"--layers-per-block 1 vs 2; --attention-levels 1 vs none. {Advice}", e.Message);
    }

    [Fact]
    public void ABrokenCheckpointOrLossLogIsNamed()
    {
        using var dir = new TempDir();
        var resume = Interrupted(dir, out string checkpoint);
        string optimizer = Path.Combine(checkpoint, "optimizer.bin"), state = Path.Combine(checkpoint, "trainer_state.json");
        var bytes = File.ReadAllBytes(optimizer);
        // a truncated or missing AdamW state failed with TorchSharp's EndOfStreamException / FileNotFoundException
        File.WriteAllBytes(optimizer, bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<DiffusersException>(() => new UnconditionalTrainer(resume).Train());
        Assert.StartsWith($"{optimizer}: not the AdamW state of this model: ", e.Message);
        Assert.Equal(optimizer, e.FilePath);
        File.Delete(optimizer);
        e = Assert.Throws<DiffusersException>(() => new UnconditionalTrainer(resume).Train());
        Assert.Equal($"{optimizer}: missing (the checkpoint's AdamW state)", e.Message);
        File.WriteAllBytes(optimizer, bytes);

        // a state without its fields was read with defaults and compared as a run of 0 steps at learning rate 0
        string saved = File.ReadAllText(state);
        File.WriteAllText(state, "{}");
        e = Assert.Throws<DiffusersException>(() => new UnconditionalTrainer(resume).Train());
        Assert.StartsWith($"{state}: not a trainer state: ", e.Message);
        Assert.Contains("'Step'", e.Message);
        File.WriteAllText(state, saved);

        // a damaged loss log failed with a FormatException out of double.Parse
        string csv = Path.Combine(resume.OutputDir, "loss.csv");
        File.WriteAllText(csv, "step,epoch,loss,lr\n1,0,0.5,0.001\n2,0,abc,0.001\n");
        e = Assert.Throws<DiffusersException>(() => new UnconditionalTrainer(resume).Train());
        Assert.Equal($"{csv}: line 3 is not a step,epoch,loss,lr row: '2,0,abc,0.001'; repair the line, or delete the file "
            + "(the loss log: a resume then logs from its checkpoint's step on)", e.Message);
        File.Delete(csv);
        new UnconditionalTrainer(resume).Train();
        Assert.Equal([3L, 4, 5, 6], UnconditionalTrainer.ReadCsv(csv).Select(r => r.Step));
    }

    [Fact]
    public void ResumeRefusesADataSetWithAnotherImageCount()
    {
        using var dir = new TempDir();
        var resume = Interrupted(dir, out string checkpoint);
        File.Copy(Path.Combine(resume.DataDir, "cat_00000.png"), Path.Combine(resume.DataDir, "extra.png"));
        var e = Assert.Throws<DiffusersException>(() => new UnconditionalTrainer(resume).Train());
        Assert.Equal($"{checkpoint} was saved by a run with other settings (saved vs given): images in --data 12 vs 13. {Advice}", e.Message);
    }

    [Fact]
    public void ACheckpointWithoutRecordedSettingsIsComparedOnItsSchedule()
    {
        using var dir = new TempDir();
        var resume = Interrupted(dir, out string checkpoint);
        EditState(checkpoint, state => Assert.True(state.Remove("Settings")));
        Assert.Null(TrainingCheckpoint.ReadState(checkpoint).Settings);
        var e = Assert.Throws<DiffusersException>(() => new UnconditionalTrainer(resume with { MaxSteps = 10, LrWarmupSteps = 3 }).Train());
        Assert.Equal($"{checkpoint} was saved by a run with other settings (saved vs given): optimisation steps (--max-steps, --epochs) 6 vs 10; "
            + $"--lr-warmup-steps 2 vs 3. {Advice}", e.Message);
    }

    [Fact]
    public void ResumingAFinishedRunIsRefused()
    {
        using var dir = new TempDir();
        var run = TinyRuns.Options(TinyRuns.Cats(dir, 12), dir.File("out")) with { MaxSteps = 4, CheckpointEvery = 2 };
        new UnconditionalTrainer(run).Train();
        var before = TinyRuns.Snapshot(run.OutputDir);
        var e = Assert.Throws<DiffusersException>(() => new UnconditionalTrainer(run with { Resume = true }).Train());
        Assert.Equal($"{run.OutputDir}: the run already finished (loss.csv reaches step 4 of 4 and the pipeline is saved): nothing to resume; "
            + "pass --overwrite to train again from the start", e.Message);
        Assert.Equal(before, TinyRuns.Snapshot(run.OutputDir));
    }

    [Fact]
    public void ACheckpointAtTheEndOfTheRunIsRefused()
    {
        using var dir = new TempDir();
        var resume = Interrupted(dir, out string checkpoint);
        EditState(checkpoint, state => state["Step"] = 6);
        var e = Assert.Throws<DiffusersException>(() => new UnconditionalTrainer(resume).Train());
        Assert.Equal($"{checkpoint}: the checkpoint is at step 6, the end of the run (6 optimisation steps): nothing left to train; "
            + "pass --overwrite to train again from the start", e.Message);
        Assert.False(File.Exists(Path.Combine(resume.OutputDir, "model_index.json")));
    }
}
