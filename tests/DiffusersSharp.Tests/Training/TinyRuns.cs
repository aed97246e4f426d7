using DiffusersSharp.Tests.Support;
using DiffusersSharp.Training;

namespace DiffusersSharp.Tests.Training;

/// <summary>The tiny training runs the trainer tests share: 16×16 cat faces, a two-level UNet.</summary>
internal static class TinyRuns
{
    /// <summary>Eight steps of batch 8 on a two-level UNet, nothing saved before the end.</summary>
    public static UnconditionalTrainingOptions Options(string data, string output) => new()
    {
        DataDir = data, OutputDir = output, Resolution = 16, BatchSize = 8, MaxSteps = 8,
        BlockOutChannels = [8, 16], LayersPerBlock = 1, NormNumGroups = 4, AttentionLevels = [1],
        LearningRate = 1e-3, LrScheduler = "cosine", LrWarmupSteps = 2, NumTrainTimesteps = 100,
        SaveImagesEveryEpochs = 0, SaveModelEveryEpochs = 0, CheckpointEvery = 0, RandomFlip = true, Seed = 3,
    };

    /// <summary><paramref name="count"/> generated 20×20 cat faces in <c>data/</c> of <paramref name="dir"/>.</summary>
    public static string Cats(TempDir dir, int count)
    {
        string data = Path.Combine(dir.Path, "data");
        CatFaceGenerator.WriteDataset(data, count, 20, seed: 1);
        return data;
    }

    /// <summary>Every file under <paramref name="dir"/> (relative path → bytes).</summary>
    public static SortedDictionary<string, byte[]> Snapshot(string dir) =>
        new(Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(dir, f), File.ReadAllBytes), StringComparer.Ordinal);

    /// <summary>The saved pipeline's UNet weights.</summary>
    public static byte[] Weights(string output) => File.ReadAllBytes(Path.Combine(output, "unet", "diffusion_pytorch_model.safetensors"));
}

/// <summary>A synchronous IProgress (System.Progress posts to the thread pool).</summary>
internal sealed class SyncProgress(List<TrainingProgress>? into, Action<TrainingProgress>? also = null) : IProgress<TrainingProgress>
{
    public void Report(TrainingProgress value)
    {
        into?.Add(value);
        also?.Invoke(value);
    }
}
