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
}
