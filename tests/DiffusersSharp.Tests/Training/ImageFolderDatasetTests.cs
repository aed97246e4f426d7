using DiffusersSharp.Tests.Support;
using DiffusersSharp.Training;
using Image = DiffusersSharp.Imaging.Image;

namespace DiffusersSharp.Tests.Training;

/// <summary>Bad image files are found when the folder is opened, or named (or replaced) when a batch needs them.</summary>
public class ImageFolderDatasetTests
{
    private static void Truncate(string path, double keep)
    {
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(int)(bytes.Length * keep)]);
    }

    [Fact]
    public void TruncatedAndOversizedImagesAreFoundWhenTheFolderIsOpened()
    {
        using var dir = new TempDir();
        string data = dir.File("data");
        Directory.CreateDirectory(data);
        var cat = CatFaceGenerator.Generate(20, 1, 0);
        cat.Save(Path.Combine(data, "a_good.png"));
        cat.Save(Path.Combine(data, "b_truncated.png"));
        Truncate(Path.Combine(data, "b_truncated.png"), 0.6);
        cat.Save(Path.Combine(data, "c_truncated.jpg"));
        Truncate(Path.Combine(data, "c_truncated.jpg"), 0.6);
        new Image(Image.MaxSide + 1, 1, 3, new byte[(Image.MaxSide + 1) * 3]).Save(Path.Combine(data, "d_wide.png"));
        // bytes after the end marker: decoded whole at open, and fine
        cat.Save(Path.Combine(data, "e_trailing.jpg"));
        File.AppendAllText(Path.Combine(data, "e_trailing.jpg"), "padding");
        new Image(Image.MaxSide, 1, 3, new byte[Image.MaxSide * 3]).Save(Path.Combine(data, "f_widest.png"));

        var warnings = new List<string>();
        var ds = new ImageFolderDataset(data, 16, warn: warnings.Add);
        Assert.Equal(["a_good.png", "e_trailing.jpg", "f_widest.png"], ds.Files.Select(Path.GetFileName));
        Assert.Equal([
            $"warning: skipping {Path.Combine(data, "b_truncated.png")}: the image data is truncated",
            $"warning: skipping {Path.Combine(data, "c_truncated.jpg")}: the image data is truncated",
            $"warning: skipping {Path.Combine(data, "d_wide.png")}: the image is 16385x1 pixels; DiffusersSharp reads images of at most 16384 pixels a side",
        ], warnings);

        var strict = Assert.Throws<DiffusersException>(() => new ImageFolderDataset(data, 16, skipUnreadable: false));
        Assert.Equal($"{Path.Combine(data, "b_truncated.png")}: the image data is truncated (drop --stop-on-bad-images to skip it with a warning)", strict.Message);
        Assert.Equal(Path.Combine(data, "b_truncated.png"), strict.FilePath);
    }

    [Fact]
    public void AFileThatFailsDuringTheRunIsReplacedByTheNextOneOrNamed()
    {
        using var dir = new TempDir();
        string data = dir.File("data");
        CatFaceGenerator.WriteDataset(data, 3, 20, seed: 1);
        var warnings = new List<string>();
        var ds = new ImageFolderDataset(data, 16, centerCrop: true, warn: warnings.Add);
        var strict = new ImageFolderDataset(data, 16, centerCrop: true, skipUnreadable: false);
        Assert.Equal(3, ds.Count);
        float[] Load(ImageFolderDataset d, int index)
        {
            var buf = new float[d.ExampleSize];
            d.Load(index, seed: 0, epoch: 0, buf);
            return buf;
        }
        var second = Load(ds, 1);
        Assert.NotEqual(Load(ds, 0), second);

        // damaged after the folder was opened (in the middle, or cut short and re-ended: what the open check cannot see)
        string first = ds.Files[0];
        Truncate(first, 0.6);
        File.AppendAllBytes(first, [(byte)'I', (byte)'E', (byte)'N', (byte)'D', 0xAE, 0x42, 0x60, 0x82]);
        Assert.Equal(second, Load(ds, 0));
        Assert.Equal(second, Load(ds, 0));
        Assert.Equal([$"warning: {first}: the image data is truncated (found during the run: the start-up check reads each file's header "
            + $"and end only); {ds.Files[1]} takes its place in this run and a resumed one"], warnings);

        var e = Assert.Throws<DiffusersException>(() => Load(strict, 0));
        Assert.Equal($"{first}: the image data is truncated (found during the run: the start-up check reads each file's header and end only); "
            + "repair or replace the file and continue with --resume, or drop --stop-on-bad-images to skip it", e.Message);
        Assert.Equal(first, e.FilePath);
    }
}
