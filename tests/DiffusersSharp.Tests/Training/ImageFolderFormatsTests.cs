using System.Text.Json;
using DiffusersSharp.Tests.Support;
using DiffusersSharp.Training;
using Image = DiffusersSharp.Imaging.Image;

namespace DiffusersSharp.Tests.Training;

/// <summary>
/// The data set reads every file datasets' imagefolder loader takes for an image (its extension list, datasets 5.0.1):
/// the formats DiffusersSharp decodes to PIL's pixels (tests/golden/image-formats), and it refuses, naming the file and
/// the format, those PIL reads and DiffusersSharp does not, which the script would train on.
/// </summary>
public class ImageFolderFormatsTests
{
    private static readonly JsonElement Formats = Golden.Json(Path.Combine("image-formats", "expected.json")).RootElement.GetProperty("files");

    [Fact]
    public void TheExtensionsAreThoseOfDatasetsImagefolderLoader()
    {
        var datasets = Golden.Json(Path.Combine("datasets-metadata", "expected.json")).RootElement.GetProperty("image_extensions")
            .EnumerateArray().Select(e => e.GetString()!);
        Assert.Equal(datasets.Order(StringComparer.Ordinal), ImageFolderExtensions.All.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void EveryDecodedFormatTrainsOnPilsPixels()
    {
        // the golden files in a data folder, and the same pixels as PNGs in another: the same examples
        using var dir = new TempDir();
        string data = dir.File("data"), pngs = dir.File("pngs");
        Directory.CreateDirectory(data);
        Directory.CreateDirectory(pngs);
        var decoded = Formats.EnumerateObject().Where(p => p.Value.TryGetProperty("pixels", out _)).Select(p => p.Name).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(114, decoded.Count); // 50 of them TIFF
        for (int i = 0; i < decoded.Count; i++)
        {
            var e = Formats.GetProperty(decoded[i]);
            File.Copy(Golden.Path("image-formats", decoded[i]), Path.Combine(data, $"{i:D2}-{decoded[i]}"));
            new Image(e.GetProperty("width").GetInt32(), e.GetProperty("height").GetInt32(), 3,
                Convert.FromBase64String(e.GetProperty("pixels").GetString()!)).Save(Path.Combine(pngs, $"{i:D2}.png"));
        }
        var warnings = new List<string>();
        var ds = new ImageFolderDataset(data, 4, randomFlip: true, warn: warnings.Add, skipUnreadable: false);
        var reference = new ImageFolderDataset(pngs, 4, randomFlip: true);
        Assert.Empty(warnings);
        Assert.Equal(decoded.Count, ds.Count);
        for (int i = 0; i < decoded.Count; i++)
        {
            var a = new float[ds.ExampleSize];
            var b = new float[ds.ExampleSize];
            ds.Load(i, seed: 1, epoch: 0, a);
            reference.Load(i, seed: 1, epoch: 0, b);
            Assert.True(a.SequenceEqual(b), decoded[i]);
        }
    }

    [Fact]
    public void AFormatPilReadsAndDiffusersSharpDoesNotIsRefusedNotSkipped()
    {
        using var dir = new TempDir();
        string data = dir.File("data");
        Directory.CreateDirectory(data);
        CatFaceGenerator.Generate(12, 1, 0).Save(Path.Combine(data, "a.png"));
        // by its content (kinds of TIFF DiffusersSharp does not read), and, for TGA, which has no signature, by its extension
        foreach (var (file, message) in new[]
        {
            ("tiff-float.tif", "a TIFF image of a kind PIL (and so diffusers) reads and DiffusersSharp does not: SampleFormat 3 (floating point); convert it to PNG"),
            ("tiff-jpeg.tif", "a TIFF image of a kind PIL (and so diffusers) reads and DiffusersSharp does not: JPEG-compressed (Compression 7); convert it to PNG"),
            ("jpeg2000-codestream.j2k", "the image is in the JPEG 2000 format, which PIL (and so diffusers) reads and DiffusersSharp does not (it reads PNG, JPEG, GIF, BMP, WebP, ICO, CUR and TIFF); convert it to PNG"),
            ("jpeg2000.jp2", "the image is in the JPEG 2000 format, which PIL (and so diffusers) reads and DiffusersSharp does not (it reads PNG, JPEG, GIF, BMP, WebP, ICO, CUR and TIFF); convert it to PNG"),
            ("tga.tga", "a .tga file, which datasets' imagefolder loader hands to PIL as a TGA image; DiffusersSharp does not read that format (it reads PNG, JPEG, GIF, BMP, WebP, ICO, CUR and TIFF): " +
                "convert it to PNG (this file: the cursor file holds no cursor)"),
        })
        {
            string path = Path.Combine(data, "b-" + file);
            File.Copy(Golden.Path("image-formats", file), path);
            var e = Assert.Throws<DiffusersException>(() => new ImageFolderDataset(data, 8)); // skipping unreadable files, the default
            Assert.Equal($"{path}: {message}", e.Message);
            Assert.Equal(path, e.FilePath);
            File.Delete(path);
        }
        // a PNG under a TIFF's name is a PNG, as PIL reads it
        File.Copy(Golden.Path("image-formats", "png-named-tif.tif"), Path.Combine(data, "c.tif"));
        Assert.Equal(["a.png", "c.tif"], new ImageFolderDataset(data, 8).Files.Select(Path.GetFileName));
    }

    [Fact]
    public void FilesOfDatasetsExtensionsThatDoNotDecodeAreSkippedWithAWarning()
    {
        using var dir = new TempDir();
        string data = dir.File("data");
        Directory.CreateDirectory(data);
        var cat = CatFaceGenerator.Generate(12, 1, 0);
        cat.Save(Path.Combine(data, "a.png"));
        File.WriteAllBytes(Path.Combine(data, "b.png.txt"), cat.ToPng()); // datasets takes x.png.txt for an image too
        File.WriteAllText(Path.Combine(data, "c.jpg.txt"), "notes"); // and so fails on this one, as on a damaged image
        File.WriteAllText(Path.Combine(data, "d.gif"), "GIF89a");    // a GIF header and nothing more
        File.Copy(Golden.Path("image-formats", "bmp-palette2.bmp"), Path.Combine(data, "e.bmp")); // PIL refuses 2-bit BMPs
        File.WriteAllText(Path.Combine(data, "f.txt"), "not an image file: not listed");
        var warnings = new List<string>();
        var ds = new ImageFolderDataset(data, 8, warn: warnings.Add);
        Assert.Equal(["a.png", "b.png.txt"], ds.Files.Select(Path.GetFileName));
        Assert.Equal([
            $"warning: skipping {Path.Combine(data, "c.jpg.txt")}: not a readable image: DiffusersSharp reads PNG, JPEG, GIF, BMP, WebP, ICO, CUR and TIFF files, and PIL no other format of these first bytes",
            $"warning: skipping {Path.Combine(data, "d.gif")}: the image data is truncated",
            $"warning: skipping {Path.Combine(data, "e.bmp")}: not a BMP image PIL reads: 2 bits per pixel",
        ], warnings);
    }

    [Fact]
    public void AZipArchiveInTheTrainSplitIsRefused()
    {
        using var dir = new TempDir();
        string data = dir.File("data");
        CatFaceGenerator.WriteDataset(Path.Combine(data, "train"), 2, 12, seed: 1);
        File.WriteAllBytes(Path.Combine(data, "train", "more.zip"), [(byte)'P', (byte)'K', 5, 6, .. new byte[18]]);
        var e = Assert.Throws<DiffusersException>(() => new ImageFolderDataset(data, 8));
        string zip = Path.Combine(data, "train", "more.zip");
        Assert.Equal($"{zip}: a zip archive in the train split: datasets' imagefolder loader extracts it and trains on the images inside; " +
            "DiffusersSharp does not read archives: extract it into the data folder (or move it out)", e.Message);
        Assert.Equal(zip, e.FilePath);
        // one in another split is not read
        Directory.CreateDirectory(Path.Combine(data, "test"));
        File.Move(zip, Path.Combine(data, "test", "more.zip"));
        Assert.Equal(2, new ImageFolderDataset(data, 8).Count);
    }
}
