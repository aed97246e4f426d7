using DiffusersSharp.Runtime;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Runtime;

/// <summary><see cref="CpuFeatures"/>: which CPUs count as computing bf16 natively (what <c>--dtype auto</c> reads).</summary>
public class CpuFeaturesTests
{
    private const string Header = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Some CPU\n";

    [Fact]
    public void Avx512Bf16OrAmxMeansNativeBf16()
    {
        var sapphire = CpuFeatures.ParseCpuInfo(Header + "flags\t\t: fpu sse2 avx2 avx512f amx_bf16 amx_tile\nbugs\t\t: none\n");
        Assert.Equal("amx_bf16", CpuFeatures.NativeBFloat16Flag(sapphire));
        var zen4 = CpuFeatures.ParseCpuInfo(Header + "flags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n");
        Assert.Equal("avx512_bf16", CpuFeatures.NativeBFloat16Flag(zen4));
    }

    [Fact]
    public void Avx512WithoutBf16IsNotNativeBf16()
    {
        var skylake = CpuFeatures.ParseCpuInfo(Header + "flags\t\t: fpu avx2 avx512f avx512bw avx512_vnni\n");
        Assert.Contains("avx512f", skylake);
        Assert.Null(CpuFeatures.NativeBFloat16Flag(skylake));
        Assert.Empty(CpuFeatures.ParseCpuInfo("no flags here\n"));
    }

    [Fact]
    public void OnlyTheFirstProcessorsFlagsAreRead()
    {
        var flags = CpuFeatures.ParseCpuInfo(Header + "flags\t\t: fpu avx2\n\nprocessor\t: 1\nflags\t\t: fpu avx512_bf16\n");
        Assert.Equal(new HashSet<string> { "fpu", "avx2" }, flags);
    }

    [Fact]
    public void AutoDtypeFollowsThisMachinesCpuinfo()
    {
        string text = File.Exists("/proc/cpuinfo") ? File.ReadAllText("/proc/cpuinfo") : "";
        string firstFlags = text.Split('\n').FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal)) ?? "";
        bool native = $"{firstFlags} ".Contains(" avx512_bf16 ", StringComparison.Ordinal) || $"{firstFlags} ".Contains(" amx_bf16 ", StringComparison.Ordinal);
        Assert.Equal(native ? ScalarType.BFloat16 : ScalarType.Float32, CpuFeatures.AutoDtype());
    }
}
