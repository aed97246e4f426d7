using DiffusersSharp.Models;
using DiffusersSharp.Runtime;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Runtime;

/// <summary>
/// Our fused GEGLU gate (build/native/geglu.c) against libtorch's <c>h * gelu(gate)</c>: fp32 to fp32 rounding, bf16 no
/// further from the fp32 result than libtorch's bf16 ops, every tail (rows, lanes), large and tiny gates, and libtorch's
/// ops wherever the kernel does not apply; and the GEGLU module with and without it.
/// </summary>
public class FusedGegluTests
{
    private static bool CpuHas(params string[] flags) => flags.All(CpuFeatures.CurrentFlags.Contains);

    private static Tensor Reference(Tensor projected)
    {
        var halves = projected.chunk(2, dim: -1);
        return halves[0] * nn.functional.gelu(halves[1]);
    }

    [Theory]
    [InlineData(new long[] { 2, 64, 2560 })]   // SD 1.x's 64² feed-forward at its width (1280 a half)
    [InlineData(new long[] { 1, 37, 40 })]     // 20 a half: a 4-lane tail; 37 rows: past two 16-row items
    [InlineData(new long[] { 3, 2 })]          // one value a half
    [InlineData(new long[] { 2, 3, 5, 34 })]   // four dimensions, 17 a half
    public void Fp32MatchesLibTorch(long[] shape)
    {
        if (!CpuHas("avx512f")) return; // the fallback is libtorch itself
        using var scope = torch.NewDisposeScope();
        using var g = new Generator(21);
        var projected = torch.randn(shape, generator: g) * 4;   // gates out to ±16: erf's saturation and both signs
        var got = FusedGeglu.TryRun(projected);
        Assert.NotNull(got);
        var expected = Reference(projected);
        Assert.Equal(expected.shape, got.shape);
        Assert.True(got.is_contiguous());
        double diff = Tol.MaxAbsDiff(got, expected);
        Assert.True(diff < 1e-5, $"max |diff| {diff}");
    }

    [Fact]
    public void Bf16IsAsCloseToFp32AsLibTorchsBf16()
    {
        if (!CpuHas("avx512f", "avx512_bf16")) return;
        using var scope = torch.NewDisposeScope();
        using var g = new Generator(22);
        var projected = (torch.randn([2, 77, 1000], generator: g) * 3).to(ScalarType.BFloat16);
        var reference = Reference(projected.to(ScalarType.Float32));
        var libtorch = Reference(projected);
        var got = FusedGeglu.TryRun(projected);
        Assert.NotNull(got);
        Assert.Equal(ScalarType.BFloat16, got.dtype);
        double ours = Tol.MaxAbsDiff(got.to(ScalarType.Float32), reference), theirs = Tol.MaxAbsDiff(libtorch.to(ScalarType.Float32), reference);
        Assert.True(ours <= theirs, $"fused {ours} vs libtorch {theirs}");
    }

    [Fact]
    public void WhereItDoesNotApplyNothingRuns()
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.randn(4, 6);
        Assert.Null(FusedGeglu.TryRun(x.to(ScalarType.Float16)));
        Assert.Null(FusedGeglu.TryRun(x.to(ScalarType.Float64)));
        Assert.Null(FusedGeglu.TryRun(torch.randn(4, 5)));                 // an odd last dimension
        Assert.Null(FusedGeglu.TryRun(torch.randn(6, 4).t()));             // not contiguous
        var trained = x.clone().requires_grad_(true);
        Assert.Null(FusedGeglu.TryRun(trained));                          // autograd keeps libtorch
        using (torch.no_grad()) Assert.Equal(CpuHas("avx512f"), FusedGeglu.TryRun(trained) is not null);
    }

    [Fact]
    public void TheGegluModuleGivesLibTorchsValuesWithTheKernel()
    {
        if (!CpuHas("avx512f")) return;
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(23);
        var module = new GEGLU(32, 48);
        var x = torch.randn(2, 10, 32);
        Tensor fused;
        using (torch.no_grad()) fused = module.Forward(x);
        var ops = module.Forward(x).detach();   // autograd on: libtorch's ops
        Assert.Equal(new long[] { 2, 10, 48 }, fused.shape);
        Assert.True(Tol.MaxAbsDiff(fused, ops) < 1e-5);
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        using (torch.no_grad())
        using (var once = module.Forward(x))
            Assert.Equal(before + 1, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }
}
