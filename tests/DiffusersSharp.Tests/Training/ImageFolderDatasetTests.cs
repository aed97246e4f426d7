using System.Text.Json;
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

    // datasets' imagefolder (train_unconditional's loader) leaves out hidden files and folders and __ folders: a
    // notebook's .ipynb_checkpoints copies or a zip's __MACOSX would otherwise be trained on (or warned about) too
    [Fact]
    public void HiddenFilesAndFoldersAreLeftOutAsDatasetsDoes()
    {
        using var dir = new TempDir();
        string data = dir.File("data");
        var cat = CatFaceGenerator.Generate(20, 1, 0);
        foreach (var rel in new[] { "a.png", ".hidden.png", ".ipynb_checkpoints/a-checkpoint.png", "__MACOSX/b.png",
                                    "sub/__c.png", "sub/.git/d.png", "sub/e.jpg" })
        {
            string path = Path.Combine(data, rel);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            cat.Save(path);
        }
        var ds = new ImageFolderDataset(data, 16);
        Assert.Equal(["a.png", "sub/__c.png", "sub/e.jpg"], ds.Files.Select(f => Path.GetRelativePath(data, f)));
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
    public void AFolderReachedTwiceThroughLinksIsReadOnce()
    {
        // the recursive enumeration followed a link loop until the system's limit of nested links: 41 copies of each image
        using var dir = new TempDir();
        string data = dir.File("data"), other = dir.File("other");
        Directory.CreateDirectory(data);
        Directory.CreateDirectory(other);
        CatFaceGenerator.Generate(20, 1, 0).Save(Path.Combine(data, "a.png"));
        CatFaceGenerator.Generate(20, 1, 1).Save(Path.Combine(other, "b.png"));
        Directory.CreateSymbolicLink(Path.Combine(data, "loop"), data);
        Directory.CreateSymbolicLink(Path.Combine(data, "x-other"), other);
        Directory.CreateSymbolicLink(Path.Combine(data, "y-other"), "../other"); // relative, the same folder again
        var warnings = new List<string>();
        var ds = new ImageFolderDataset(data, 16, warn: warnings.Add);
        Assert.Equal([Path.Combine(data, "a.png"), Path.Combine(data, "x-other", "b.png")], ds.Files);
        Assert.Equal([
            $"warning: skipping {Path.Combine(data, "loop")}: it is the folder {data} (through a link), whose images are already in the data set",
            $"warning: skipping {Path.Combine(data, "y-other")}: it is the folder {Path.Combine(data, "x-other")} (through a link), whose images are already in the data set",
        ], warnings);

        string file = Path.Combine(data, "a.png");
        var e = Assert.Throws<DiffusersException>(() => new ImageFolderDataset(file, 16));
        Assert.Equal($"{file}: the training data folder is a file (--data takes a folder of images)", e.Message);
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

    [Fact]
    public void ImagesAreTurnedUprightByTheirExifOrientationAsDatasets219DecodesThem()
    {
        // tests/golden/exif-orientation: files stored turned with an EXIF orientation, and PIL's exif_transpose of each
        // (photo-6-upright.png; expected.json's pixels for the 7x5 ones). datasets >= 2.19 hands train_unconditional the
        // upright image, so a folder of the turned files must train on exactly the tensors of a folder of the upright
        // ones: 6 and 8 and 5 swap the sides (photo-6.jpg is stored 32x16, 16x32 upright; png-5/jpeg-8 7x5 → 5x7), so the
        // resize, the random crop's axis and the flip all see the upright size
        var expected = Golden.Json(Path.Combine("exif-orientation", "expected.json")).RootElement.GetProperty("files");
        using var dir = new TempDir();
        string turned = dir.File("turned"), upright = dir.File("upright"), stored = dir.File("stored");
        foreach (var d in new[] { turned, upright, stored }) Directory.CreateDirectory(d);
        string[] names = ["jpeg-8.jpg", "png-3.png", "png-5.png", "png-7-exif-after-idat.png", "photo-6.jpg"];
        for (int i = 0; i < names.Length; i++)
        {
            string source = Golden.Path("exif-orientation", names[i]);
            File.Copy(source, Path.Combine(turned, $"{i}{Path.GetExtension(names[i])}"));
            Image.Load(source).Save(Path.Combine(stored, $"{i}.png"));   // the pixels as stored, without the tag
            string uprightPng = Path.Combine(upright, $"{i}.png");
            if (names[i] == "photo-6.jpg") File.Copy(Golden.Path("exif-orientation", "photo-6-upright.png"), uprightPng);
            else
            {
                var e = expected.GetProperty(names[i]);
                new Image(e.GetProperty("width").GetInt32(), e.GetProperty("height").GetInt32(), 3,
                    Convert.FromBase64String(e.GetProperty("pixels").GetString()!)).Save(uprightPng);
            }
        }
        Assert.Equal((16, 32), (Image.Load(Path.Combine(upright, "4.png")).Width, Image.Load(Path.Combine(upright, "4.png")).Height));

        var warnings = new List<string>();
        var ds = new ImageFolderDataset(turned, 4, randomFlip: true, warn: warnings.Add, skipUnreadable: false);
        var reference = new ImageFolderDataset(upright, 4, randomFlip: true);
        var asStored = new ImageFolderDataset(stored, 4, randomFlip: true);
        Assert.Equal(names.Length, ds.Count);
        Assert.Empty(warnings);
        float[] Load(ImageFolderDataset d, int index, int epoch)
        {
            var buf = new float[d.ExampleSize];
            d.Load(index, seed: 3, epoch, buf);
            return buf;
        }
        for (int i = 0; i < names.Length; i++)
            for (int epoch = 0; epoch < 4; epoch++)
            {
                Assert.Equal(Load(reference, i, epoch), Load(ds, i, epoch));
                // and the orientation matters: the stored pixels give other tensors
                Assert.NotEqual(Load(asStored, i, epoch), Load(ds, i, epoch));
            }
    }
}
