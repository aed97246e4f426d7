using DiffusersSharp.Tests.Support;
using DiffusersSharp.Training;

namespace DiffusersSharp.Tests.Training;

/// <summary>With gradient accumulation an epoch is still exactly the data set, as with accelerate.</summary>
public class GradientAccumulationTests
{
    [Fact]
    public void MicroBatchesSplitEachEpochExactly()
    {
        // 3 batches per epoch, 2 per step: steps of 2 and 1 batches
        Assert.Equal([(0L, 2), (2L, 1), (3L, 2), (5L, 1), (6L, 2)], Enumerable.Range(0, 5).Select(s => UnconditionalTrainer.MicroBatches(s, 3, 2)));
        Assert.Equal([(0L, 2), (2L, 2), (4L, 2)], Enumerable.Range(0, 3).Select(s => UnconditionalTrainer.MicroBatches(s, 4, 2)));
        Assert.Equal([(0L, 3), (3L, 3), (6L, 1), (7L, 3)], Enumerable.Range(0, 4).Select(s => UnconditionalTrainer.MicroBatches(s, 7, 3)));
        Assert.Equal([(0L, 1), (1L, 1), (2L, 1)], Enumerable.Range(0, 3).Select(s => UnconditionalTrainer.MicroBatches(s, 2, 1)));
        Assert.Equal([(0L, 2), (2L, 2)], Enumerable.Range(0, 2).Select(s => UnconditionalTrainer.MicroBatches(s, 2, 5)));
        for (int batches = 1; batches <= 7; batches++)
            for (int accum = 1; accum <= 5; accum++)
            {
                int stepsPerEpoch = (batches + accum - 1) / accum;
                long next = 0;
                for (int s = 0; s < 3 * stepsPerEpoch; s++)
                {
                    var (first, count) = UnconditionalTrainer.MicroBatches(s, batches, accum);
                    Assert.Equal(next, first); // one contiguous stream
                    Assert.InRange(count, 1, accum);
                    Assert.Equal(first / batches, (first + count - 1) / batches); // never across an epoch's end
                    next = first + count;
                }
                Assert.Equal(3L * batches, next);
            }
    }

    [Fact]
    public void EpochsWithAccumulationAreExactlyTheDataSet()
    {
        using var dir = new TempDir();
        // 24 images in batches of 8: 3 batches per epoch, 2 per step: 2 steps per epoch (2 + 1 batches)
        var o = TinyRuns.Options(TinyRuns.Cats(dir, 24), dir.File("out")) with
        {
            MaxSteps = null,
            Epochs = 2,
            GradientAccumulationSteps = 2,
            SaveImagesEveryEpochs = 1,
            EvalBatchSize = 1,
            DdpmNumInferenceSteps = 1,
        };
        var log = new List<string>();
        var reports = new List<TrainingProgress>();
        new UnconditionalTrainer(o, log.Add).Train(new SyncProgress(reports));
        Assert.Contains(log, l => l.StartsWith("24 images, 3 batches of 8 per epoch, 4 optimisation steps,", StringComparison.Ordinal));
        var rows = UnconditionalTrainer.ReadCsv(Path.Combine(o.OutputDir, "loss.csv"));
        Assert.Equal([(1L, 0), (2L, 0), (3L, 1), (4L, 1)], rows.Select(r => (r.Step, r.Epoch)));
        Assert.Equal([0, 0, 1, 1], reports.Select(r => r.Epoch));
        Assert.Equal(["epoch-0001.png", "epoch-0002.png"],
            Directory.GetFiles(Path.Combine(o.OutputDir, "samples")).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void ResumeAfterAShortStepIsBitIdentical()
    {
        using var dir = new TempDir();
        var straight = TinyRuns.Options(TinyRuns.Cats(dir, 24), dir.File("a")) with { MaxSteps = 6, GradientAccumulationSteps = 2 };
        new UnconditionalTrainer(straight).Train();

        // checkpoint-3: after epoch 1's first step; the resumed step 4 is epoch 1's short one (batch 5 alone)
        var split = straight with { OutputDir = dir.File("b"), CheckpointEvery = 3 };
        using (var cts = new CancellationTokenSource())
        {
            var stopAt4 = new SyncProgress(null, p => { if (p.Step == 4) cts.Cancel(); });
            Assert.Throws<OperationCanceledException>(() => new UnconditionalTrainer(split).Train(stopAt4, cts.Token));
        }
        Assert.Equal([3L], TrainingCheckpoint.List(split.OutputDir).Select(c => c.Step));
        new UnconditionalTrainer(split with { Resume = true }).Train();
        Assert.Equal(TinyRuns.Weights(straight.OutputDir), TinyRuns.Weights(split.OutputDir));
        Assert.Equal(File.ReadAllText(Path.Combine(straight.OutputDir, "loss.csv")), File.ReadAllText(Path.Combine(split.OutputDir, "loss.csv")));
    }
}
