using DiffusersSharp.Runtime;
using DiffusersSharp.Tests.Support;

namespace DiffusersSharp.Tests.Runtime;

/// <summary>
/// <see cref="HugePages"/>: the relaunch with glibc's huge-page switch keeps the process, its arguments, its
/// environment and its exit code, and makes malloc's memory huge pages; its opt-out and its parsing.
/// Each test runs the test assembly's <see cref="TestProgram"/> in a child process.
/// </summary>
public class HugePagesTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    /// <summary>Whether this machine can have them (Linux with transparent huge pages not "never"; glibc 2.35+ on Debian 12).</summary>
    private static bool MachineAllows =>
        OperatingSystem.IsLinux() && File.Exists("/sys/kernel/mm/transparent_hugepage/enabled") &&
        !File.ReadAllText("/sys/kernel/mm/transparent_hugepage/enabled").Contains("[never]", StringComparison.Ordinal);

    private static Dictionary<string, string?> Env(string? tunables = null, string? optOut = null) => new()
    {
        ["GLIBC_TUNABLES"] = tunables,
        ["DIFFUSERS_SHARP_NO_HUGEPAGES"] = optOut,
        ["DIFFUSERS_SHARP_RELAUNCHED"] = null,
    };

    private static string Line(ChildProcess.Result r, string prefix) =>
        r.Stdout.Split('\n').Select(l => l.TrimEnd('\r')).Single(l => l.StartsWith(prefix, StringComparison.Ordinal))[prefix.Length..];

    [Fact]
    public void RelaunchKeepsProcessArgumentsAndExitCodeAndGivesMallocHugePages()
    {
        Assert.True(OperatingSystem.IsLinux(), "the project's machines are Linux");
        string[] odd = ["two words", "", "é✓ 日本", "--flag=\"quoted\"", "trailing\\"];
        var r = ChildProcess.Run(Timeout, Env(), [TestProgram.HugePagesVerb, .. odd]);
        Assert.True(r.ExitCode == TestProgram.HugePagesExitCode, r.Describe());
        var args = r.Stdout.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.StartsWith("arg [", StringComparison.Ordinal))
            .Select(l => l["arg [".Length..^1]).ToArray();
        Assert.Equal(odd, args);
        string pid = Line(r, "pid ");
        var befores = r.Stdout.Split('\n').Where(l => l.StartsWith("before pid ", StringComparison.Ordinal)).Select(l => l.Trim()["before pid ".Length..]).ToArray();
        if (!MachineAllows)
        {
            Assert.Single(befores);
            Assert.StartsWith("huge pages: off (", Line(r, "status ["));
            return;
        }
        // execve keeps the process id: the program ran twice in one process, the second time with the switch
        Assert.Equal([pid, pid], befores);
        Assert.Equal("glibc.malloc.hugetlb=1:glibc.malloc.tcache_count=0]", Line(r, "tunables ["));
        Assert.Equal("huge pages: on (glibc.malloc.hugetlb); malloc thread cache: off]", Line(r, "status ["));
        long hugeKb = long.Parse(Line(r, "anon-huge-kb "), System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(hugeKb >= 32 * 1024, $"64 MB of touched malloc memory, {hugeKb} KB of it in huge pages\n{r.Stdout}");
        // without the thread cache the next aligned block of a size takes the place of the one freed
        Assert.True(int.Parse(Line(r, "aligned-block-places ")) <= 2, r.Stdout);
    }

    [Fact]
    public void RelaunchKeepsTheOtherTunables()
    {
        var r = ChildProcess.Run(Timeout, Env(tunables: "glibc.malloc.tcache_count=0"), TestProgram.HugePagesVerb);
        Assert.True(r.ExitCode == TestProgram.HugePagesExitCode, r.Describe());
        if (!MachineAllows)
        {
            Assert.Equal("glibc.malloc.tcache_count=0]", Line(r, "tunables ["));
            Assert.StartsWith("huge pages: off (", Line(r, "status ["));
            return;
        }
        // the user's own thread-cache setting stands (not added a second time)
        Assert.Equal("glibc.malloc.tcache_count=0:glibc.malloc.hugetlb=1]", Line(r, "tunables ["));
        Assert.Equal("huge pages: on (glibc.malloc.hugetlb); malloc thread cache: off]", Line(r, "status ["));
        var kept = ChildProcess.Run(Timeout, Env(tunables: "glibc.malloc.tcache_count=7"), TestProgram.HugePagesVerb);
        Assert.Equal("glibc.malloc.tcache_count=7:glibc.malloc.hugetlb=1]", Line(kept, "tunables ["));
        Assert.Equal("huge pages: on (glibc.malloc.hugetlb)]", Line(kept, "status ["));
    }

    [Fact]
    public void OptOutRunsOnceWithoutHugePages()
    {
        var r = ChildProcess.Run(Timeout, Env(optOut: "1"), TestProgram.HugePagesVerb, "x");
        Assert.True(r.ExitCode == TestProgram.HugePagesExitCode, r.Describe());
        Assert.Single(r.Stdout.Split('\n'), l => l.StartsWith("before pid ", StringComparison.Ordinal));
        Assert.Equal("]", Line(r, "tunables ["));
        Assert.Equal("huge pages: off (DIFFUSERS_SHARP_NO_HUGEPAGES is set)]", Line(r, "status ["));
    }

    [Fact]
    public void AnExplicitZeroIsRespected()
    {
        var r = ChildProcess.Run(Timeout, Env(tunables: "glibc.malloc.hugetlb=0"), TestProgram.HugePagesVerb);
        Assert.True(r.ExitCode == TestProgram.HugePagesExitCode, r.Describe());
        Assert.Single(r.Stdout.Split('\n'), l => l.StartsWith("before pid ", StringComparison.Ordinal));
        Assert.Equal("glibc.malloc.hugetlb=0]", Line(r, "tunables ["));
        Assert.StartsWith("huge pages: off (", Line(r, "status ["));
    }

    [Theory]
    [InlineData(null, null)]
    [InlineData("", null)]
    [InlineData("glibc.malloc.hugetlb=1", "1")]
    [InlineData("glibc.malloc.tcache_count=0:glibc.malloc.hugetlb=2", "2")]
    [InlineData("glibc.malloc.hugetlb=1:glibc.malloc.hugetlb=0", "0")]
    [InlineData("glibc.malloc.hugetlbx=1", null)]
    [InlineData("xglibc.malloc.hugetlb=1", null)]
    public void TunableValueReadsGlibcsList(string? tunables, string? expected) =>
        Assert.Equal(expected, HugePages.TunableValue(tunables));

    [Theory]
    [InlineData("glibc.malloc.hugetlb=1", null)]
    [InlineData("glibc.malloc.hugetlb=1:glibc.malloc.tcache_count=0", "0")]
    [InlineData("glibc.malloc.tcache_count=3:glibc.malloc.hugetlb=1", "3")]
    public void TunableValueReadsOtherNames(string tunables, string? expected) =>
        Assert.Equal(expected, HugePages.TunableValue(tunables, "glibc.malloc.tcache_count"));
}
