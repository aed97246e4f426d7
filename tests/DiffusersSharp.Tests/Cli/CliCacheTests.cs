using DiffusersSharp.Tests.Support;

namespace DiffusersSharp.Tests.Cli;

/// <summary><c>diffusers cache list|rm</c> on a cache with a repo that cannot be read.</summary>
public class CliCacheTests
{
    private const string Sha = "0123456789abcdef0123456789abcdef01234567";

    /// <summary>A cache with org/good (one 5-byte file) and org/bad, whose snapshot holds a symlink loop (loop -> loop).</summary>
    private static (string Loop, string Bad) MakeCache(string cache)
    {
        string good = Path.Combine(cache, "models--org--good");
        Directory.CreateDirectory(Path.Combine(good, "snapshots", Sha));
        File.WriteAllText(Path.Combine(good, "snapshots", Sha, "a.txt"), "hello");
        Directory.CreateDirectory(Path.Combine(good, "refs"));
        File.WriteAllText(Path.Combine(good, "refs", "main"), Sha);
        string bad = Path.Combine(cache, "models--org--bad");
        Directory.CreateDirectory(Path.Combine(bad, "snapshots", Sha));
        File.WriteAllText(Path.Combine(bad, "snapshots", Sha, "b.txt"), "abc");
        string loop = Path.Combine(bad, "snapshots", Sha, "loop");
        File.CreateSymbolicLink(loop, loop);
        return (loop, bad);
    }

    [Fact]
    public void ListWarnsAboutAnUnreadableRepoAndListsTheOthers()
    {
        if (OperatingSystem.IsWindows()) return; // a symlink needs privileges there
        using var dir = new TempDir();
        string cache = dir.File("hub");
        var (loop, bad) = MakeCache(cache);
        string reason = Assert.ThrowsAny<IOException>(() => new FileInfo(loop).ResolveLinkTarget(returnFinalTarget: true)).Message;

        var (code, stdout, stderr) = CliRun.Run("cache", "list", "--cache-dir", cache);
        Assert.True(code == 0, stderr);
        Assert.Equal($"warning: Cannot read cached repo {bad}: {reason}\n", stderr.Replace("\r\n", "\n"));
        var lines = stdout.Replace("\r\n", "\n").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Matches($@"^org/good\s+model\s+5\.0B\s+1\s+\S+ \S+\s+{Sha}\s+main\s+5\.0B\s+", lines[2]);
        Assert.Equal($"1 repo(s) in {cache}, 5.0B in total.", lines[^1]);
    }

    [Fact]
    public void RmRemovesAnUnreadableRepo()
    {
        if (OperatingSystem.IsWindows()) return;
        using var dir = new TempDir();
        string cache = dir.File("hub");
        var (_, bad) = MakeCache(cache);
        var (code, stdout, stderr) = CliRun.Run("cache", "rm", "org/bad", "--cache-dir", cache);
        Assert.True(code == 0, stderr);
        Assert.Equal($"Removed org/bad (0 revision(s), 3.0B) from {bad}.\n", stdout.Replace("\r\n", "\n"));
        Assert.False(Directory.Exists(bad));
        Assert.True(Directory.Exists(Path.Combine(cache, "models--org--good")));
    }

    private const string Sha2 = "89abcdef0123456789abcdef0123456789abcdef";

    /// <summary>
    /// A repo folder as huggingface_hub writes it: <paramref name="bytes"/> in one blob, linked from the snapshots of two
    /// revisions (main and v1), and its <c>.locks</c> folder.
    /// </summary>
    private static string MakeRepo(string cache, string folder, string bytes)
    {
        string repo = Path.Combine(cache, folder);
        Directory.CreateDirectory(Path.Combine(repo, "blobs"));
        File.WriteAllText(Path.Combine(repo, "blobs", "etag"), bytes);
        Directory.CreateDirectory(Path.Combine(repo, "refs"));
        foreach (var (sha, branch) in new[] { (Sha, "main"), (Sha2, "v1") })
        {
            Directory.CreateDirectory(Path.Combine(repo, "snapshots", sha));
            File.CreateSymbolicLink(Path.Combine(repo, "snapshots", sha, "data.txt"), Path.Combine("..", "..", "blobs", "etag"));
            File.WriteAllText(Path.Combine(repo, "refs", branch), sha);
        }
        Directory.CreateDirectory(Path.Combine(cache, ".locks", folder));
        File.WriteAllText(Path.Combine(cache, ".locks", folder, "etag.lock"), "");
        return repo;
    }

    [Fact]
    public void RmRemovesADatasetOrASpaceByTheTypeListShows()
    {
        if (OperatingSystem.IsWindows()) return; // symlinks need privileges there
        using var dir = new TempDir();
        string cache = dir.File("hub");
        string model = MakeRepo(cache, "models--org--name", "model"), dataset = MakeRepo(cache, "datasets--org--name", "dataset!");
        string space = MakeRepo(cache, "spaces--org--name", "space"), onlyData = MakeRepo(cache, "datasets--org--data", "data");

        var (code, stdout, stderr) = CliRun.Run("cache", "list", "--cache-dir", cache);
        Assert.True(code == 0, stderr);
        var lines = stdout.Replace("\r\n", "\n").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Matches(@"^org/data\s+dataset\s+4\.0B\s+1\s", lines[2]);
        Assert.Matches(@"^org/name\s+dataset\s+8\.0B\s+1\s", lines[4]);
        Assert.Matches(@"^org/name\s+model\s+5\.0B\s+1\s", lines[6]);
        Assert.Matches(@"^org/name\s+space\s+5\.0B\s+1\s", lines[8]);

        // the dataset: its folder and locks, nothing else (the blob both revisions link counted once)
        (code, stdout, stderr) = CliRun.Run("cache", "rm", "org/name", "--repo-type", "dataset", "--cache-dir", cache);
        Assert.True(code == 0, stderr);
        Assert.Equal($"Removed dataset org/name (2 revision(s), 8.0B) from {dataset}.\n", stdout.Replace("\r\n", "\n"));
        Assert.False(Directory.Exists(dataset));
        Assert.False(Directory.Exists(Path.Combine(cache, ".locks", "datasets--org--name")));
        Assert.Equal("model", File.ReadAllText(Path.Combine(model, "snapshots", Sha, "data.txt")));
        Assert.Equal("space", File.ReadAllText(Path.Combine(space, "snapshots", Sha2, "data.txt")));
        Assert.True(Directory.Exists(Path.Combine(cache, ".locks", "models--org--name")));

        (code, stdout, stderr) = CliRun.Run("cache", "rm", "org/name", "--repo-type", "space", "--cache-dir", cache);
        Assert.True(code == 0, stderr);
        Assert.Equal($"Removed space org/name (2 revision(s), 5.0B) from {space}.\n", stdout.Replace("\r\n", "\n"));
        Assert.Equal(["datasets--org--data", "models--org--name", ".locks"],
            Directory.GetDirectories(cache).Select(d => Path.GetFileName(d)!).OrderBy(n => n.StartsWith('.')).ThenBy(n => n, StringComparer.Ordinal));

        // a model by default: an id cached only as a dataset is an error that names the option
        (code, stdout, stderr) = CliRun.Run("cache", "rm", "org/data", "--cache-dir", cache);
        Assert.Equal(1, code);
        Assert.Equal($"error: org/data is not in the cache {cache}. The cache holds the dataset org/data (--repo-type dataset).\n", stderr.Replace("\r\n", "\n"));
        Assert.True(Directory.Exists(onlyData));
        (code, _, stderr) = CliRun.Run("cache", "rm", "org/name", "--repo-type", "datasets", "--cache-dir", cache);
        Assert.Equal(1, code);
        Assert.Contains("--repo-type", stderr);
        Assert.True(Directory.Exists(model));
    }
}
