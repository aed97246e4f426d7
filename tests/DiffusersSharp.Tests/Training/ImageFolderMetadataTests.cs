using System.Text.Json;
using DiffusersSharp.Tests.Support;
using DiffusersSharp.Training;

namespace DiffusersSharp.Tests.Training;

/// <summary>
/// A data folder with metadata files trains on the images their rows name, as datasets' imagefolder loader reads it
/// (train_unconditional's <c>load_dataset("imagefolder", data_dir=..., split="train")</c>); the expected images and
/// errors are what datasets 5.0.1's own builder code gives for each layout (tests/golden/datasets-metadata).
/// </summary>
public class ImageFolderMetadataTests
{
    private static readonly JsonElement Expected = Golden.Json(Path.Combine("datasets-metadata", "expected.json")).RootElement;

    private static JsonElement Layout(string name) =>
        Expected.GetProperty("layouts").EnumerateArray().Single(l => l.GetProperty("name").GetString() == name);

    private static IEnumerable<string> Layouts() => Expected.GetProperty("layouts").EnumerateArray().Select(l => l.GetProperty("name").GetString()!);

    // The layout's files under dir/data: "IMG" a small PNG (whatever the extension: PIL reads the content), else the text
    private static string Build(TempDir dir, JsonElement layout)
    {
        string data = dir.File("data");
        string png = dir.File("cat.png");
        CatFaceGenerator.Generate(12, 1, 0).Save(png);
        foreach (var file in layout.GetProperty("files").EnumerateObject())
        {
            string path = Path.Combine(data, file.Name);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            if (file.Value.GetString() == "IMG") File.Copy(png, path);
            else File.WriteAllText(path, file.Value.GetString());
        }
        return data;
    }

    private const string FileNameMissing = "datasets' imagefolder loader stops with '`file_name`, `*_file_name`, `file_names` or `*_file_names` must be present as dictionary key in metadata files'; name the images in a file_name column, with their extensions";
    private const string Converts = "datasets' imagefolder loader takes a split's column types from whichever of its metadata files it reads first " +
        "(Python's set order, another each run) and converts the other files' values to them, and ";
    private const string SameWay = "write the column the same way in every metadata file";
    private const string Traversal = "which datasets' imagefolder loader refuses ('Absolute paths and parent-directory ('..') traversal that escape the dataset directory are not allowed'); give a path relative to the metadata file's folder";

    // Our message for each layout datasets stops on ({0}: the data folder), and the part of datasets' message (or of the
    // script's failure) that it quotes
    private static readonly Dictionary<string, (string Message, string Datasets)> Errors = new()
    {
        ["csv-and-jsonl"] = ("{0}: metadata files of two formats, a/metadata.csv and b/metadata.jsonl: datasets' imagefolder loader stops with " +
            "'Found metadata files with different extensions'; write them all as metadata.csv or all as metadata.jsonl", "Found metadata files with different extensions"),
        ["no-file-name-column"] = ("{0}/metadata.csv: it has no file_name column (its columns: image, text): " + FileNameMissing, "must be present as dictionary key in metadata files"),
        ["numeric-file-names"] = ("{0}/metadata.csv: its file_name column holds numbers (a name without an extension reads as one), not text: " + FileNameMissing, "must be present as dictionary key in metadata files"),
        ["jsonl-numeric-file-name"] = ("{0}/metadata.jsonl: its file_name column holds numbers (a name without an extension reads as one), not text: " + FileNameMissing, "must be present as dictionary key in metadata files"),
        ["jsonl-file-name-changes-type"] = ("{0}/metadata.jsonl line 2: 'file_name' is int64 where earlier lines have string: pyarrow stops with " +
            "'JSON parse error: Column(/file_name) changed from string to int64'", "JSON parse error: Column(/file_name) changed from string to int64"),
        ["another-file-name-column"] = ("{0}/metadata.csv: its images are in the column photo_file_name, which datasets' imagefolder loader names 'photo', " +
            "and train_unconditional reads the column 'image' (KeyError: 'image'); name the column file_name", "KeyError: 'image'"),
        ["a-row-leaves-the-folder"] = ("{0}/metadata.csv row 2: file_name '../a.png' is outside the metadata file's folder, " + Traversal, "parent-directory ('..') traversal"),
        ["an-absolute-path"] = ("{0}/metadata.csv row 1: file_name '/etc/passwd' is an absolute path, " + Traversal, "Absolute paths"),
        ["a-url"] = ("{0}/metadata.csv row 1: file_name 'file://a.png' has a URL scheme, which datasets' imagefolder loader refuses " +
            "('URL schemes (e.g. 'file://', 'local://') are not allowed'); give a path relative to the metadata file's folder", "URL schemes (e.g. 'file://', 'local://') are not allowed"),
        ["a-test-split-row-leaves-its-folder"] = ("{0}/test/metadata.csv row 1: file_name '../train/a.png' is outside the metadata file's folder, " + Traversal, "parent-directory ('..') traversal"),
        ["an-empty-file-name"] = ("{0}/metadata.csv row 2: no file name: datasets' imagefolder loader gives the example no image, and train_unconditional fails on it", "without an image"),
        ["splits-with-different-columns"] = ("{0}/test/metadata.csv and {0}/train/metadata.csv have different columns (file_name, label / file_name, text): " +
            "datasets' imagefolder loader stops with 'Metadata files ... have different features'", "have different features"),
        ["splits-int-and-string-column"] = ("{0}/test/metadata.csv and {0}/train/metadata.csv have the column 'label' as string and as int64: datasets' imagefolder loader " +
            "compares the features (names and types) of its splits' metadata files and stops with 'Metadata files ... have different features'; write the column the same way in both",
            "have different features"),
        // a split's files: the column types of the one datasets reads first (a set: either), the other's values converted
        ["split-files-int-and-string-column"] = ("{0}/b/metadata.csv row 1: label 'cat' (string), which {0}/a/metadata.csv has as int64: " + Converts +
            "int() fails on it ('ValueError: invalid literal for int() with base 10: 'cat''), so it stops in the runs that read a/metadata.csv first; " + SameWay,
            "invalid literal for int() with base 10: 'cat'"),
        ["split-files-int-and-infinity"] = ("{0}/b/metadata.csv row 1: label 'inf' (double), which {0}/a/metadata.csv has as int64: " + Converts +
            "int() fails on it ('OverflowError: cannot convert float infinity to integer'), so it stops in the runs that read a/metadata.csv first; " + SameWay,
            "cannot convert float infinity to integer"),
        ["split-files-empty-and-string-column"] = ("{0}/b/metadata.csv row 1: text 'cat' (string), which {0}/a/metadata.csv has as double: " + Converts +
            "float() fails on it ('ValueError: could not convert string to float: 'cat''), so it stops in the runs that read a/metadata.csv first; " + SameWay,
            "could not convert string to float: 'cat'"),
        ["split-files-jsonl-null-and-string"] = ("{0}/b/metadata.jsonl line 1: text 't' (string), which {0}/a/metadata.jsonl has as null: " + Converts +
            "pyarrow fails on a value in a column of type null ('Invalid null value'), so it stops in the runs that read a/metadata.jsonl first; " + SameWay,
            "Invalid null value"),
        ["a-row-names-a-missing-file"] = ("{0}/metadata.csv row 2: 'missing.png' names no file ({0}/missing.png): datasets' imagefolder loader lists it, " +
            "and PIL fails to open it when train_unconditional reads its batch", "missing.png"),
        ["a-metadata-file-alone-names-the-split"] = ("{0}: no train split: datasets' imagefolder loader, which train_unconditional reads with split=\"train\", finds " +
            "split names in folder names here: test (test/metadata.csv), and stops with 'Unknown split \"train\". Should be one of ['test'].'; name the training " +
            "images' folder or files train (docs/Training.md), or give --data the folder of the training images", "Unknown split \"train\". Should be one of ['test']."),
    };

    [Fact]
    public void EveryLayoutTrainsOnTheImagesDatasetsGivesTheTrainSplitOrStopsWhereItStops()
    {
        Assert.Equal(39, Layouts().Count());
        var wrong = new List<string>();
        foreach (var name in Layouts())
        {
            try { Check(name); }
            catch (Exception e) { wrong.Add($"{name}: {e.Message}"); }
        }
        Assert.Empty(wrong);
    }

    private static void Check(string name)
    {
        var layout = Layout(name);
        using var dir = new TempDir();
        string data = Build(dir, layout);
        // an error in any order of a split's metadata files (datasets' set order changes from run to run) is one here
        bool fails = layout.TryGetProperty("error", out var error) || layout.TryGetProperty("missing", out _) || layout.TryGetProperty("order_dependent", out _);
        Assert.Equal(fails, Errors.ContainsKey(name));
        if (fails)
        {
            var (message, datasets) = Errors[name];
            var e = Assert.Throws<DiffusersException>(() => new ImageFolderDataset(data, 8));
            Assert.Equal(string.Format(message, data), e.Message);
            string said = error.ValueKind == JsonValueKind.String ? error.GetString()!
                : layout.TryGetProperty("order_dependent", out var outcomes) ? string.Join(" | ", outcomes.EnumerateArray())
                : string.Join(",", layout.GetProperty("missing").EnumerateArray());
            Assert.Contains(datasets, said, StringComparison.Ordinal);
            return;
        }
        var warnings = new List<string>();
        var ds = new ImageFolderDataset(data, 8, warn: warnings.Add);
        // datasets' order is by metadata file (a set: any order) and row; ours by path (the shuffle is our own); a file
        // named by two rows is read twice. The text files rows or extensions name are skipped with a warning, as every file
        // that does not decode
        var expected = layout.GetProperty("train_images").EnumerateArray().Select(e => e.GetString()!).ToList();
        var text = expected.Where(f => layout.GetProperty("files").GetProperty(f).GetString() != "IMG").ToList();
        Assert.Equal(expected.Where(f => !text.Contains(f)).Order(StringComparer.Ordinal), ds.Files.Select(f => Path.GetRelativePath(data, f)));
        Assert.Equal(text.Select(f => $"warning: skipping {Path.Combine(data, f)}: not a readable image: DiffusersSharp reads PNG, JPEG, GIF, BMP, WebP, ICO, CUR and TIFF files, " +
            "and PIL no other format of these first bytes").Order(), warnings.Order());
        Assert.Equal(layout.GetProperty("metadata").GetBoolean(), ds.MetadataNote is not null);
    }

    [Fact]
    public void TheTrainerSaysWhichMetadataFileChoseTheImagesAndHowManyItLeftOut()
    {
        using var dir = new TempDir();
        string data = dir.File("data");
        CatFaceGenerator.WriteDataset(data, 4, 20, seed: 1);
        var names = Directory.GetFiles(data).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        File.WriteAllText(Path.Combine(data, "metadata.csv"), $"file_name,text\n{names[0]},a cat\n{names[2]},\"another, cat\"\n{names[2]},again\n");
        var log = new List<string>();
        new UnconditionalTrainer(TinyRuns.Options(data, dir.File("out")) with { MaxSteps = 1 }, log.Add).Train();
        Assert.Contains($"{data}: metadata.csv (datasets' imagefolder metadata): training on the images of its 3 rows; 2 images of the split without a row left out", log);
        Assert.Contains(log, l => l.StartsWith("3 images, ", StringComparison.Ordinal));
    }

    [Fact]
    public void ParquetMetadataIsRefusedAsDiffusersSharpCannotReadIt()
    {
        using var dir = new TempDir();
        string data = dir.File("data");
        CatFaceGenerator.WriteDataset(data, 2, 12, seed: 1);
        File.WriteAllBytes(Path.Combine(data, "metadata.parquet"), "PAR1"u8.ToArray());
        var e = Assert.Throws<DiffusersException>(() => new ImageFolderDataset(data, 8));
        Assert.Equal($"{data}/metadata.parquet: DiffusersSharp does not read Parquet metadata (datasets' imagefolder loader does); " +
            "write it as metadata.csv or metadata.jsonl with a file_name column", e.Message);
        Assert.Equal(Path.Combine(data, "metadata.parquet"), e.FilePath);
    }

    [Fact]
    public void ACsvRowWithMoreFieldsThanTheHeaderIsRefusedAsPandasRefusesIt()
    {
        using var dir = new TempDir();
        string data = dir.File("data");
        CatFaceGenerator.WriteDataset(data, 1, 12, seed: 1);
        string name = Path.GetFileName(Directory.GetFiles(data)[0]);
        File.WriteAllText(Path.Combine(data, "metadata.csv"), $"file_name,text\n{name},a, cat\n");
        var e = Assert.Throws<DiffusersException>(() => new ImageFolderDataset(data, 8));
        Assert.Equal($"{data}/metadata.csv line 2: 3 fields where the header has 2: pandas stops with 'Expected 2 fields in line 2, saw 3' (quote a field that holds a comma)", e.Message);
    }
}
