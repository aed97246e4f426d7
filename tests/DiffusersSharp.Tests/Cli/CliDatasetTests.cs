using DiffusersSharp.Tests.Support;

namespace DiffusersSharp.Tests.Cli;

/// <summary><c>diffusers dataset cats</c>: where it writes, and what it refuses.</summary>
public class CliDatasetTests
{
    [Fact]
    public void CatsRefusesANonEmptyOutFolderAndKeepsItsFiles()
    {
        using var dir = new TempDir();
        string cats = dir.File("cats");
        Directory.CreateDirectory(cats);
        File.WriteAllText(Path.Combine(cats, "cat_00009.png"), "stale");
        var (code, stdout, stderr) = CliRun.Run("dataset", "cats", "--count", "2", "--out", cats);
        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        Assert.Equal($"error: --out '{cats}' already exists and is not empty; give a new or empty folder\n", stderr.Replace("\r\n", "\n"));
        Assert.Equal(["cat_00009.png"], Directory.GetFiles(cats).Select(Path.GetFileName));

        // an empty folder is fine
        string empty = dir.File("empty");
        Directory.CreateDirectory(empty);
        (code, stdout, stderr) = CliRun.Run("dataset", "cats", "--count", "2", "--out", empty);
        Assert.True(code == 0, stderr);
        Assert.Equal($"wrote 2 cat faces (32x32) to {empty}\n", stdout.Replace("\r\n", "\n"));
        Assert.Equal(["cat_00000.png", "cat_00001.png"], Directory.GetFiles(empty).Select(Path.GetFileName).Order());
    }

    [Fact]
    public void CatsWithABadOutIsAOneLineError()
    {
        using var dir = new TempDir();
        string file = dir.File("file.txt");
        File.WriteAllText(file, "keep");
        var (code, _, stderr) = CliRun.Run("dataset", "cats", "--count", "2", "-o", file);
        Assert.Equal(1, code);
        Assert.Equal($"error: --out '{file}' is a file; give a new or empty folder to write the images into\n", stderr.Replace("\r\n", "\n"));
        Assert.Equal("keep", File.ReadAllText(file));

        (code, _, stderr) = CliRun.Run("dataset", "cats", "--count", "2", "-o", "");
        Assert.Equal(1, code);
        Assert.Equal("error: --out: empty path; give the folder to write the images into\n", stderr.Replace("\r\n", "\n"));

        string under = Path.Combine(file, "sub");
        (code, _, stderr) = CliRun.Run("dataset", "cats", "--count", "2", "-o", under);
        Assert.Equal(1, code);
        Assert.StartsWith($"error: --out '{under}': cannot create the folder: ", stderr);
        Assert.Single(stderr.Trim().Split('\n'));
        Assert.Equal("keep", File.ReadAllText(file));
    }

    [Fact]
    public void CatsStopsAtCtrlCAndLeavesNothing()
    {
        using var dir = new TempDir();
        string cats = dir.File("cats"), empty = dir.File("empty");
        Directory.CreateDirectory(empty);
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        foreach (var output in new[] { cats, empty })
        {
            using var o = new StringWriter();
            using var e = new StringWriter();
            int code = DiffusersSharp.Cli.CliApp.Run(["dataset", "cats", "--count", "3", "--out", output], o, e, plainProgress: true, cts.Token);
            Assert.Equal(1, code);
            Assert.Equal("", o.ToString());
            Assert.Equal("cancelled\n", e.ToString().Replace("\r\n", "\n"));
        }
        Assert.False(Directory.Exists(cats)); // created by the run, removed
        Assert.Empty(Directory.EnumerateFileSystemEntries(empty)); // there before, kept, empty
    }
}
