using System.Globalization;
using DiffusersSharp.Runtime;
using DiffusersSharp.Tests.Support;

namespace DiffusersSharp.Tests.Runtime;

/// <summary>
/// <see cref="OneDnnConvolutions"/>: the check, the switch at the first pass at risk (in a fresh child process), the
/// results after it, and which kernels count as at risk.
/// </summary>
public class OneDnnConvolutionsTests
{
    private static ChildProcess.Result RunChild((string, string?)[] env, params string[] args)
    {
        var r = ChildProcess.Run(TimeSpan.FromSeconds(120), env.ToDictionary(e => e.Item1, e => e.Item2), [TestProgram.OneDnnVerb, .. args]);
        Assert.True(r.ExitCode == 0, r.Describe());
        return r;
    }

    private static string[] Lines(ChildProcess.Result r, string prefix) =>
        r.Stdout.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.StartsWith(prefix, StringComparison.Ordinal)).ToArray();

    /// <summary>Whether Xbyak reads this CPU's caches as 1 byte (AMD with an empty CPUID leaf 0x8000001D): what the repair is for.</summary>
    private static bool CpuidDescribesNoCaches =>
        System.Runtime.Intrinsics.X86.X86Base.IsSupported && System.Runtime.Intrinsics.X86.X86Base.CpuId(0, 0).Ebx == 0x68747541
        && OneDnnCaches.LeafSize(unchecked((int)0x8000001D), 0) < 1024;

    private static void AssertEveryCaseRight(ChildProcess.Result r)
    {
        var cases = Lines(r, "case ");
        Assert.Equal(OneDnnConvolutions.Cases.Length, cases.Length);
        foreach (var line in cases)
        {
            double error = double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
            Assert.True(error < (line.Contains("bf16", StringComparison.Ordinal) ? 0.02 : 1e-3), line + "\n" + r.Stdout);
        }
    }

    [Fact]
    public void TheCacheRepairMakesOneDnnRightAndNothingIsSwitchedOff()
    {
        var r = RunChild([("DIFFUSERS_SHARP_TRUST_ONEDNN", null), ("DIFFUSERS_SHARP_NO_CACHE_REPAIR", null)]);
        string caches = Lines(r, "caches [")[0];
        if (CpuidDescribesNoCaches)
            Assert.Matches(@"^caches \[oneDNN caches: CPUID describes none \(oneDNN read 1-byte caches\); set to L1 \d+ KB, L2 \d+ KB, L3 1024 KB per core\]$", caches);
        else
            Assert.DoesNotContain("set to", caches);
        Assert.Equal("failures []", Lines(r, "failures [")[0]);
        Assert.Equal("after passes at risk: off False, mkldnn True, warnings 0", Lines(r, "after passes at risk")[0]);
        Assert.Equal("status [oneDNN: checked, correct]", Lines(r, "status [")[0]);
        AssertEveryCaseRight(r);
    }

    [Theory]
    [InlineData("32,512,2048", "set to L1 32 KB, L2 512 KB, L3 2048 KB per core")]
    [InlineData("32,512", "DIFFUSERS_SHARP_ONEDNN_CACHES must be three sizes in KB (L1,L2,L3 per core), got '32,512'; left alone")]
    [InlineData("32,x,2048", "DIFFUSERS_SHARP_ONEDNN_CACHES must be three sizes in KB (L1,L2,L3 per core), got '32,x,2048'; left alone")]
    public void TheRepairTakesGivenSizesAndRejectsMalformedOnes(string given, string expected)
    {
        var r = RunChild([("DIFFUSERS_SHARP_TRUST_ONEDNN", "1"), ("DIFFUSERS_SHARP_ONEDNN_CACHES", given)], "--repair-only");
        string caches = Lines(r, "caches [")[0];
        if (CpuidDescribesNoCaches) Assert.EndsWith(expected + "]", caches);
        else Assert.DoesNotContain("set to", caches);   // CPUID describes the caches: nothing to repair, nothing read
    }

    [Fact]
    public void WithoutTheRepairAFailingCheckSwitchesOneDnnOffAtTheFirstPassAtRiskAndEveryCaseIsThenRight()
    {
        // oneDNN given 1-byte caches (as Xbyak reads an empty CPUID leaf) and the repair opted out: the second line acts
        var r = RunChild([("DIFFUSERS_SHARP_TRUST_ONEDNN", null), ("DIFFUSERS_SHARP_NO_CACHE_REPAIR", "1")], "--shrink-caches");
        string failures = Lines(r, "failures [")[0]["failures [".Length..^1];
        Assert.False(failures.Length == 0, "oneDNN with 1-byte caches got every probe case right\n" + r.Stdout);
        // a pass without risk never switches; passes at risk do, once, with one warning
        Assert.Equal("after a pass without risk: off False, mkldnn True", Lines(r, "after a pass without risk")[0]);
        Assert.Equal("after passes at risk: off True, mkldnn False, warnings 1", Lines(r, "after passes at risk")[0]);
        Assert.StartsWith($"warning [libtorch's oneDNN computes some convolutions wrongly on this CPU ({failures}); a model with such convolutions ran", Lines(r, "warning [")[0]);
        Assert.Equal($"status [oneDNN: off (wrong on this CPU: {failures})]", Lines(r, "status [")[0]);
        AssertEveryCaseRight(r);
    }

    [Fact]
    public void TrustingOneDnnSkipsTheCheckAndNeverSwitches()
    {
        var r = RunChild([("DIFFUSERS_SHARP_TRUST_ONEDNN", "1")]);
        Assert.Equal("failures []", Lines(r, "failures [")[0]);
        Assert.Equal("after passes at risk: off False, mkldnn True, warnings 0", Lines(r, "after passes at risk")[0]);
    }

    [Fact]
    public void InThisTestRunOneDnnIsOffExactlyWhereTheCheckFails()
    {
        // Support/TestAssemblySetup switched at start where needed; the process then computes every case right
        Assert.Equal(!OneDnnConvolutions.Correct, OneDnnConvolutions.SwitchedOff);
        foreach (var c in OneDnnConvolutions.Cases)
            Assert.True(OneDnnConvolutions.Error(c) < (c.DType == TorchSharp.torch.ScalarType.BFloat16 ? 0.02 : 1e-3), OneDnnConvolutions.Describe(c));
    }

    [Theory]
    [InlineData(new long[] { 8, 24, 3, 3 }, false, true)]     // 16 + 8 concatenated channels
    [InlineData(new long[] { 320, 40, 1, 1 }, false, true)]
    [InlineData(new long[] { 320, 320, 3, 3 }, false, false)]
    [InlineData(new long[] { 320, 4, 3, 3 }, false, false)]    // a first layer: oneDNN handles < 16 channels apart
    [InlineData(new long[] { 8, 12, 3, 3 }, false, false)]
    [InlineData(new long[] { 320, 320, 3, 3 }, true, true)]    // bf16 NCHW
    [InlineData(new long[] { 320, 320, 1, 1 }, true, false)]
    [InlineData(new long[] { 320, 1280 }, true, false)]         // not a kernel
    public void AtRiskFollowsTheKernelShapes(long[] shape, bool bf16Nchw, bool expected) =>
        Assert.Equal(expected, OneDnnConvolutions.AtRisk([shape], bf16Nchw));
}
