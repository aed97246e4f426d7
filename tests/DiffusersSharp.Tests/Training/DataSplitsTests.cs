using System.Text.Json;
using DiffusersSharp.Tests.Support;
using DiffusersSharp.Training;

namespace DiffusersSharp.Tests.Training;

/// <summary>
/// The images a data folder trains on are those of the train split that datasets' imagefolder loader finds there
/// (train_unconditional's <c>load_dataset("imagefolder", data_dir=..., split="train")</c>); the expected files are
/// what datasets' own code gives for each layout (tests/golden/datasets-splits).
/// </summary>
public class DataSplitsTests
{
    private static readonly JsonElement Expected = Golden.Json(Path.Combine("datasets-splits", "expected.json")).RootElement;
    private static readonly string Chosen = Expected.GetProperty("chosen").GetString()!;

    private static JsonElement Layout(string name) =>
        Expected.GetProperty("layouts").EnumerateArray().Single(l => l.GetProperty("name").GetString() == name);

    public static TheoryData<string> Layouts() =>
        [.. Expected.GetProperty("layouts").EnumerateArray().Select(l => l.GetProperty("name").GetString()!)];

    // The layout's files under dir/data: a small PNG or JPEG for an image, a line of text for any other file.
    private static string Build(TempDir dir, JsonElement layout)
    {
        string data = dir.File("data");
        var cat = CatFaceGenerator.Generate(12, 1, 0);
        cat.Save(dir.File("cat.png"));
        cat.Save(dir.File("cat.jpg"));
        foreach (var file in layout.GetProperty("files").EnumerateArray().Select(f => f.GetString()!))
        {
            string path = Path.Combine(data, file);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            switch (Path.GetExtension(file).ToLowerInvariant())
            {
                case ".png": File.Copy(dir.File("cat.png"), path); break;
                case ".jpg" or ".jpeg": File.Copy(dir.File("cat.jpg"), path); break;
                default: File.WriteAllText(path, "not an image\n"); break;
            }
        }
        return data;
    }

    private static string[] Strings(JsonElement array) => [.. array.EnumerateArray().Select(e => e.GetString()!)];

    [Theory]
    [MemberData(nameof(Layouts))]
    public void EachLayoutTrainsOnTheImagesOfDatasetsTrainSplit(string name)
    {
        var layout = Layout(name);
        var expected = layout.GetProperty(Chosen);
        using var dir = new TempDir();
        string data = Build(dir, layout);
        if (expected.TryGetProperty("error", out var error))
        {
            var e = Assert.Throws<DiffusersException>(() => new ImageFolderDataset(data, 8));
            Assert.StartsWith($"{data}: ", e.Message, StringComparison.Ordinal);
            // datasets' own message, for a folder without a train split; else a split name it refuses
            Assert.Contains(expected.TryGetProperty("splits", out _) ? error.GetString()! : "is no split name datasets takes", e.Message, StringComparison.Ordinal);
            return;
        }
        var ds = new ImageFolderDataset(data, 8);
        // datasets' order is by pattern, then by path; ours by path (the shuffle is our own), a file listed twice twice
        Assert.Equal(Strings(expected.GetProperty("train_images")).Order(StringComparer.Ordinal),
            ds.Files.Select(f => Path.GetRelativePath(data, f)));
    }

    [Fact]
    public void AFolderWithoutATrainSplitIsRefusedNamingTheSplitsFoundAndTheirFiles()
    {
        using var dir = new TempDir();
        string data = Build(dir, Layout("a-text-file-names-a-split")); // a.png, b.png, results_test.txt
        var e = Assert.Throws<DiffusersException>(() => new ImageFolderDataset(data, 8));
        Assert.Equal($"{data}: no train split: datasets' imagefolder loader, which train_unconditional reads with split=\"train\", " +
            "finds split names in file names here: test (results_test.txt), and stops with 'Unknown split \"train\". Should be one of ['test'].'; " +
            "name the training images' folder or files train (docs/Training.md), or give --data the folder of the training images", e.Message);
        Assert.Equal(data, e.FilePath);

        using var dir2 = new TempDir();
        data = Build(dir2, Layout("only-a-test-folder")); // test/a.png, test/b.png
        e = Assert.Throws<DiffusersException>(() => new ImageFolderDataset(data, 8));
        Assert.Contains("finds split names in folder names here: test (test/a.png and 1 more), and stops with", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AShardWhoseSplitNameDatasetsRefusesIsRefusedNamingTheFile()
    {
        using var dir = new TempDir();
        string data = Build(dir, Layout("shard-with-a-bad-split-name")); // data/train-00000-of-00001.png, data/my-cats-00000-of-00001.png
        var e = Assert.Throws<DiffusersException>(() => new ImageFolderDataset(data, 8));
        Assert.Equal($"{data}: data/my-cats-00000-of-00001.png: 'my-cats' is no split name datasets takes (letters, digits and _, in parts joined by '.'), " +
            "and shards named data/{split}-NNNNN-of-NNNNN give the splits, so train_unconditional's loader fails on it; rename the file", e.Message);
        Assert.Equal(Path.Combine(data, "data/my-cats-00000-of-00001.png"), e.FilePath);
    }

    [Fact]
    public void TheTrainerTrainsOnTheTrainFolderAndSaysWhatItLeftOut()
    {
        using var dir = new TempDir();
        string data = dir.File("data");
        CatFaceGenerator.WriteDataset(Path.Combine(data, "train"), 8, 20, seed: 1);
        CatFaceGenerator.WriteDataset(Path.Combine(data, "test"), 4, 20, seed: 2);
        File.WriteAllText(Path.Combine(data, "notes.txt"), "a file of no split");
        var log = new List<string>();
        new UnconditionalTrainer(TinyRuns.Options(data, dir.File("out")) with { MaxSteps = 1 }, log.Add).Train();
        Assert.Contains($"{data}: split names in folder names (datasets' imagefolder splits; image files: train 8, test 4): " +
            "training on the train split, 4 of 12 images left out", log);
        Assert.Contains(log, l => l.StartsWith("8 images, 1 batches of 8 per epoch, 1 optimisation steps,", StringComparison.Ordinal));
    }

    [Fact]
    public void ATrainFolderOfTextFilesHasNoImagesToTrainOn()
    {
        using var dir = new TempDir();
        string data = dir.File("data");
        foreach (var rel in new[] { "train/notes.txt", "test/a.png" })
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(data, rel))!);
            if (rel.EndsWith(".png", StringComparison.Ordinal)) CatFaceGenerator.Generate(12, 1, 0).Save(Path.Combine(data, rel));
            else File.WriteAllText(Path.Combine(data, rel), "x");
        }
        var e = Assert.Throws<DiffusersException>(() => new ImageFolderDataset(data, 8));
        Assert.Equal($"{data}: no images found (searched recursively for the extensions of datasets' imagefolder loader: .png, .jpg, .jpeg, .webp, .bmp, .gif, …; " +
            "in the train split of split names in folder names)", e.Message);
    }
}
