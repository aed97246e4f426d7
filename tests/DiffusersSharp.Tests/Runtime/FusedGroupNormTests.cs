using DiffusersSharp.Models;
using DiffusersSharp.Runtime;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Runtime;

/// <summary>
/// Our fused GroupNorm + SiLU kernel (build/native/group_norm.c) against libtorch's ops (<c>x + add</c>,
/// <c>group_norm</c>, <c>silu</c>): fp32 to fp32 rounding, bf16 no further from the fp32 result than libtorch's bf16 ops,
/// both layouts, every channel and pixel tail, the add's batch broadcast, no affine parameters, and libtorch's ops
/// wherever the kernel does not apply; and a ResNet block with and without it.
/// </summary>
public class FusedGroupNormTests
{
    private static bool CpuHas(params string[] flags) => flags.All(CpuFeatures.CurrentFlags.Contains);

    private static Tensor Reference(Tensor x, Tensor? add, long groups, Tensor? w, Tensor? b, double eps, bool silu)
    {
        var h = add is null ? x : x + add;
        var y = nn.functional.group_norm(h, groups, w, b, eps);
        return silu ? nn.functional.silu(y) : y;
    }

    [Theory]
    // n, c, h, w, groups, channels-last, add rows (0: none, 1: one row for all, n: one a sample), affine, silu
    [InlineData(2, 320, 16, 16, 32, false, 2, true, true)]    // an SD ResNet's norm2 (+ temb), NCHW
    [InlineData(2, 320, 16, 16, 32, true, 2, true, true)]     // the same channels-last (the bf16 UNets' layout)
    [InlineData(1, 40, 7, 9, 8, true, 0, true, true)]         // 40 channels (a 16-lane tail), 63 pixels (a 64-pixel tail)
    [InlineData(1, 40, 7, 9, 8, false, 1, true, true)]        // 63 values a row (a 16-lane tail), one add row for all
    [InlineData(3, 24, 11, 13, 6, true, 3, false, true)]      // no affine parameters, three samples
    [InlineData(2, 160, 5, 30, 32, true, 1, true, false)]     // GroupNorm alone; 150 pixels: three 64-pixel items
    [InlineData(1, 272, 3, 3, 1, true, 0, true, true)]        // one group; 272 channels: a second block of 128 + tail
    [InlineData(1, 64, 40, 40, 32, false, 0, true, true)]     // 1600 values a row: past a 1024-value fp32 run
    public void Fp32MatchesLibTorch(int n, int c, int h, int w, int groups, bool channelsLast, int addRows, bool affine, bool silu)
    {
        if (!CpuHas("avx512f")) return; // the fallback is libtorch itself
        using var scope = torch.NewDisposeScope();
        using var g = new Generator(11);
        var x = torch.randn([n, c, h, w], generator: g) * 3 + 1.5;   // an offset mean: the variance must not cancel
        if (channelsLast) x = Layers.ToChannelsLast(x);
        var add = addRows == 0 ? null : torch.randn([addRows, c, 1, 1], generator: g);
        var weight = affine ? torch.rand([c], generator: g) + 0.5 : null;
        var bias = affine ? torch.randn([c], generator: g) : null;
        Assert.True(FusedGroupNorm.Applies(x, add, weight, bias));
        var got = FusedGroupNorm.Run(x, add, groups, weight, bias, 1e-6, silu);
        var expected = Reference(x, add, groups, weight, bias, 1e-6, silu);
        Assert.Equal(expected.shape, got.shape);
        Assert.Equal(channelsLast, Layers.IsChannelsLast(got) && !got.is_contiguous());
        double diff = Tol.MaxAbsDiff(got, expected);
        Assert.True(diff < 2e-5, $"max |diff| {diff}");
    }

    [Theory]
    [InlineData(2, 320, 16, 16, 32, true, 2)]
    [InlineData(2, 320, 16, 16, 32, false, 1)]
    [InlineData(1, 40, 7, 9, 8, true, 0)]
    [InlineData(1, 1280, 8, 8, 32, true, 1)]
    public void Bf16IsAsCloseToFp32AsLibTorchsBf16(int n, int c, int h, int w, int groups, bool channelsLast, int addRows)
    {
        if (!CpuHas("avx512f", "avx512_bf16")) return;
        using var scope = torch.NewDisposeScope();
        using var g = new Generator(12);
        var x = (torch.randn([n, c, h, w], generator: g) * 3 + 1.5).to(ScalarType.BFloat16);
        if (channelsLast) x = Layers.ToChannelsLast(x);
        var add = addRows == 0 ? null : torch.randn([addRows, c], generator: g).to(ScalarType.BFloat16);
        var weight = (torch.rand([c], generator: g) + 0.5).to(ScalarType.BFloat16);
        var bias = torch.randn([c], generator: g).to(ScalarType.BFloat16);
        Tensor? add4 = add?.unsqueeze(-1).unsqueeze(-1);
        var f = ScalarType.Float32;
        var reference = Reference(x.to(f), add4?.to(f), groups, weight.to(f), bias.to(f), 1e-6, silu: true);
        var libtorch = Reference(x, add4, groups, weight, bias, 1e-6, silu: true);
        var got = FusedGroupNorm.Run(x, add, groups, weight, bias, 1e-6, silu: true);
        Assert.Equal(ScalarType.BFloat16, got.dtype);
        double ours = Tol.MaxAbsDiff(got.to(f), reference), theirs = Tol.MaxAbsDiff(libtorch.to(f), reference);
        // one bf16 rounding (ours) against two or three (libtorch's ops); a step near 4 is 0.03
        Assert.True(ours <= theirs, $"fused {ours} vs libtorch {theirs}");
    }

    [Theory]
    [InlineData(false, ScalarType.Float32)]
    [InlineData(true, ScalarType.Float32)]
    [InlineData(true, ScalarType.BFloat16)]
    public void InPlaceOverwritesTheInputWithTheSameValues(bool channelsLast, ScalarType dtype)
    {
        if (!CpuHas("avx512f") || (dtype == ScalarType.BFloat16 && !CpuHas("avx512_bf16"))) return;
        using var scope = torch.NewDisposeScope();
        using var g = new Generator(13);
        var x = (torch.randn([2, 40, 7, 9], generator: g) * 3 + 1.5).to(dtype);
        if (channelsLast) x = Layers.ToChannelsLast(x);
        var add = torch.randn([2, 40], generator: g).to(dtype);
        var weight = (torch.rand([40], generator: g) + 0.5).to(dtype);
        var bias = torch.randn([40], generator: g).to(dtype);
        var expected = FusedGroupNorm.Run(x, add, 8, weight, bias, 1e-6, silu: true);
        var got = FusedGroupNorm.Run(x, add, 8, weight, bias, 1e-6, silu: true, inPlace: true);
        Assert.Equal(x.Handle, got.Handle);
        Assert.Equal(0.0, Tol.MaxAbsDiff(got.to(ScalarType.Float32), expected.to(ScalarType.Float32)));
    }

    [Fact]
    public void WhereItDoesNotApplyNothingRuns()
    {
        using var scope = torch.NewDisposeScope();
        using var g = new Generator(13);
        var x = torch.randn([2, 32, 4, 4], generator: g);
        var w = torch.ones(32);
        Assert.False(FusedGroupNorm.Applies(x.to(ScalarType.Float16), null, null, null));
        Assert.False(FusedGroupNorm.Applies(x.to(ScalarType.Float64), null, null, null));
        Assert.False(FusedGroupNorm.Applies(x[0], null, null, null));                          // 3-D
        Assert.False(FusedGroupNorm.Applies(x.transpose(2, 3), null, null, null));              // neither layout
        Assert.False(FusedGroupNorm.Applies(x, null, w.to(ScalarType.BFloat16), null));         // dtypes differ
        Assert.False(FusedGroupNorm.Applies(x, null, torch.ones(16), null));                    // weight of the wrong size
        Assert.False(FusedGroupNorm.Applies(x, torch.randn(3, 32), null, null));                // add rows: 2 or 1, not 3
        Assert.False(FusedGroupNorm.Applies(x, torch.randn(2, 16), null, null));                // add channels
        Assert.False(FusedGroupNorm.Applies(x, torch.randn(32, 2).t(), null, null));            // add channels strided
        var trained = w.clone().requires_grad_(true);
        Assert.False(FusedGroupNorm.Applies(x, null, trained, null));                           // autograd keeps libtorch
        using (torch.no_grad()) Assert.Equal(CpuHas("avx512f"), FusedGroupNorm.Applies(x, null, trained, null));
        Assert.Null(FusedGroupNorm.TryRun(x.to(ScalarType.Float64), null, 8, null, null, 1e-5, true));
        var e = Assert.Throws<ArgumentException>(() => FusedGroupNorm.Run(x.to(ScalarType.Float64), null, 8, null, null, 1e-5, true));
        Assert.Contains("not applicable", e.Message);
        if (!CpuHas("avx512f")) return;
        e = Assert.Throws<ArgumentException>(() => FusedGroupNorm.Run(x, null, 5, null, null, 1e-5, true));
        Assert.Contains("32 channels do not split into 5 groups", e.Message);
    }

    [Fact]
    public void TheCallerOwnsOnlyTheResult()
    {
        if (!CpuHas("avx512f")) return;
        using var x = Layers.ToChannelsLast(torch.randn(1, 32, 4, 4));
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        using (var got = FusedGroupNorm.Run(x, null, 8, null, null, 1e-5, silu: true))
            Assert.Equal(before + 1, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Theory]
    [InlineData(false, ScalarType.Float32)]
    [InlineData(true, ScalarType.Float32)]
    [InlineData(true, ScalarType.BFloat16)]
    public void AResNetBlockGivesLibTorchsValuesWithTheKernel(bool channelsLast, ScalarType dtype)
    {
        // the block's norm1 + SiLU and temb + norm2 + SiLU run fused under no_grad; with autograd on (training) they run
        // as libtorch's ops: the two must agree (bf16: within the roundings the ops skip)
        if (!CpuHas("avx512f") || (dtype == ScalarType.BFloat16 && !CpuHas("avx512_bf16"))) return;
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(14);
        var block = new ResnetBlock2D(64, 96, tembChannels: 32, groups: 16);
        block.to(dtype);
        block.eval();
        var x = torch.randn([2, 64, 9, 9]).to(dtype);
        if (channelsLast) x = Layers.ToChannelsLast(x);
        var temb = torch.randn([2, 32]).to(dtype);
        Tensor fused;
        using (torch.no_grad()) fused = block.Forward(x, temb);
        var ops = block.Forward(x, temb).detach();   // autograd on: the parameters want gradients, no kernel
        double diff = Tol.MaxAbsDiff(fused.to(ScalarType.Float32), ops.to(ScalarType.Float32));
        double scale = ops.to(ScalarType.Float32).abs().max().item<float>();
        Assert.True(diff <= (dtype == ScalarType.Float32 ? 2e-5 : 0.05) * Math.Max(1, scale), $"max |diff| {diff} (scale {scale})");
    }
}
