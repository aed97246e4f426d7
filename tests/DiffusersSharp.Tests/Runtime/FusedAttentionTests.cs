using DiffusersSharp.Runtime;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Runtime;

/// <summary>
/// Our fused attention kernel (build/native/flash_attention.c) against libtorch's <c>scaled_dot_product_attention</c>:
/// the same values in fp32, bf16 errors no larger than libtorch's own, every tail of the blocks (queries, keys, head
/// dims), the strided layouts the model passes, and libtorch's kernel wherever ours does not apply.
/// </summary>
public class FusedAttentionTests
{
    private static bool CpuHas(params string[] flags) => flags.All(CpuFeatures.CurrentFlags.Contains);

    private static bool Bf16Supported => CpuHas("avx512f", "avx512_bf16");

    /// <summary>What <see cref="FusedAttention.Status"/> must say on this CPU.</summary>
    private static void AssertStatusForThisCpu(string status)
    {
        // the build copies the library next to the tests; on an AVX512-BF16 CPU (this project's machines) it runs both
        if (Bf16Supported) Assert.Equal("bf16, fp32", status);
        else if (CpuHas("avx512f")) Assert.Equal("fp32 (no AVX512-BF16)", status);
        else Assert.StartsWith("not used", status);
    }

    [Fact]
    public void TheKernelLoadsWhereTheCpuHasAvx512() => AssertStatusForThisCpu(FusedAttention.Status);

    [Fact]
    public void AskingBeforeAnyTensorExistsDoesNotTurnTheKernelOff()
    {
        // a fresh process whose first library call is Status: libtorch is not loaded yet, and the kernel needs its
        // OpenMP runtime (this once answered "not used (libtorch's OpenMP runtime not found)" for the whole process)
        var r = ChildProcess.Run(TimeSpan.FromSeconds(60), TestProgram.FusedAttentionStatusVerb);
        Assert.True(r.ExitCode == 0, r.Describe());
        AssertStatusForThisCpu(r.Stdout.Trim());
    }

    /// <summary>(B, L, H, D) memory viewed as (B, H, L, D), as the model's Attention passes it.</summary>
    private static Tensor Heads(Tensor blhd) => blhd.transpose(1, 2);

    [Theory]
    [InlineData(2, 8, 64, 64, 40)]      // SD 1.x head dim (two rows share the output vectors), full query blocks
    [InlineData(1, 3, 7, 77, 40)]       // few queries (< one register tile), 77 text tokens (key tail)
    [InlineData(2, 2, 130, 49, 64)]     // one key past a 48-key tile, queries past two 64-row blocks
    [InlineData(1, 2, 50, 1600, 80)]    // past two 768-key blocks (three blocks: the online rescale twice)
    [InlineData(1, 1, 1, 1, 8)]         // one query, one key
    [InlineData(1, 2, 33, 100, 3)]      // an odd head dim (fp32 only) narrower than a vector
    [InlineData(1, 3, 21, 70, 24)]      // 16k + 8: two rows share vectors, like 40 and 8 (an odd row count)
    [InlineData(1, 2, 40, 60, 128)]     // the largest head dim used
    public void Fp32MatchesLibTorch(int b, int h, int l, int s, int d)
    {
        if (!CpuHas("avx512f")) return; // the fallback is libtorch itself
        using var scope = torch.NewDisposeScope();
        using var g = new Generator(1);
        var q = Heads(torch.randn([b, l, h, d], generator: g));
        var k = Heads(torch.randn([b, s, h, d], generator: g));
        var v = Heads(torch.randn([b, s, h, d], generator: g));
        var expected = nn.functional.scaled_dot_product_attention(q, k, v);
        var got = FusedAttention.TryRun(q, k, v);
        Assert.NotNull(got);
        Assert.Equal(expected.shape, got.shape);
        Assert.True(Tol.MaxAbsDiff(got, expected) < 2e-6, $"max |diff| {Tol.MaxAbsDiff(got, expected)}");
    }

    [Theory]
    [InlineData(2, 8, 64, 64, 40)]
    [InlineData(1, 3, 7, 77, 40)]
    [InlineData(2, 2, 130, 49, 64)]
    [InlineData(1, 2, 50, 1600, 80)]
    [InlineData(1, 1, 1, 1, 8)]
    [InlineData(1, 3, 21, 70, 24)]
    [InlineData(1, 2, 40, 60, 128)]
    public void Bf16IsAsCloseToFp32AsLibTorchsBf16(int b, int h, int l, int s, int d)
    {
        if (!Bf16Supported) return;
        using var scope = torch.NewDisposeScope();
        using var g = new Generator(2);
        // bf16 inputs, and the fp32 attention of exactly those values as the reference
        var q = Heads(torch.randn([b, l, h, d], generator: g).to(ScalarType.BFloat16));
        var k = Heads(torch.randn([b, s, h, d], generator: g).to(ScalarType.BFloat16));
        var v = Heads(torch.randn([b, s, h, d], generator: g).to(ScalarType.BFloat16));
        var reference = nn.functional.scaled_dot_product_attention(q.to(ScalarType.Float32), k.to(ScalarType.Float32), v.to(ScalarType.Float32));
        var libtorch = nn.functional.scaled_dot_product_attention(q, k, v);
        var got = FusedAttention.TryRun(q, k, v);
        Assert.NotNull(got);
        Assert.Equal(ScalarType.BFloat16, got.dtype);
        double ours = Tol.MaxAbsDiff(got.to(ScalarType.Float32), reference), theirs = Tol.MaxAbsDiff(libtorch.to(ScalarType.Float32), reference);
        // bf16 rounds the probabilities and the output (one step near 1.0 is 0.0078)
        Assert.True(ours <= Math.Max(1.5 * theirs, 4e-3), $"fused {ours} vs libtorch {theirs}");
    }

    [Fact]
    public void ContiguousAndStridedInputsGiveTheSameValues()
    {
        if (!CpuHas("avx512f")) return;
        using var scope = torch.NewDisposeScope();
        using var g = new Generator(3);
        var q = torch.randn([2, 4, 70, 40], generator: g);                  // (B, H, L, D) contiguous
        var kv = torch.randn([2, 4, 90, 80], generator: g);                 // k and v side by side in one row
        var k = kv.narrow(3, 0, 40);
        var v = kv.narrow(3, 40, 40);
        var got = FusedAttention.TryRun(q, k, v);
        Assert.NotNull(got);
        var expected = nn.functional.scaled_dot_product_attention(q, k.contiguous(), v.contiguous());
        Assert.True(Tol.MaxAbsDiff(got, expected) < 2e-6);
        // the result is a (B, H, L, D) view of (B, L, H, D) memory: transposing back is free
        Assert.True(got.transpose(1, 2).is_contiguous());
    }

    [Fact]
    public void WhereItDoesNotApplyLibTorchRuns()
    {
        using var scope = torch.NewDisposeScope();
        using var g = new Generator(4);
        var q = torch.randn([1, 2, 16, 40], generator: g);
        var k = torch.randn([1, 2, 20, 40], generator: g);
        var v = torch.randn([1, 2, 20, 40], generator: g);
        Assert.Null(FusedAttention.TryRun(q.to(ScalarType.Float16), k.to(ScalarType.Float16), v.to(ScalarType.Float16)));
        Assert.Null(FusedAttention.TryRun(q.to(ScalarType.Float64), k.to(ScalarType.Float64), v.to(ScalarType.Float64)));
        var wide = torch.randn([1, 2, 16, FusedAttention.MaxHeadDim + 32], generator: g);
        Assert.Null(FusedAttention.TryRun(wide, wide, wide));
        var odd = torch.randn([1, 2, 16, 5], generator: g).to(ScalarType.BFloat16);
        Assert.Null(FusedAttention.TryRun(odd, odd, odd));                  // bf16 pairs need an even head dim
        Assert.Null(FusedAttention.TryRun(q.transpose(2, 3), k.transpose(2, 3), v.transpose(2, 3))); // head dim strided
        Assert.Null(FusedAttention.TryRun(q[0], k[0], v[0]));               // 3-D
        Assert.Null(FusedAttention.TryRun(q, k, v.narrow(2, 0, 10)));       // k and v disagree
        var trained = q.clone().requires_grad_(true);
        Assert.Null(FusedAttention.TryRun(trained, k, v));                  // no backward: autograd keeps libtorch
        using (torch.no_grad()) Assert.Equal(CpuHas("avx512f"), FusedAttention.TryRun(trained, k, v) is not null);

        // a mask always goes to libtorch: the same values as calling it directly
        var mask = torch.randn([1, 1, 16, 20], generator: g);
        var masked = FusedAttention.ScaledDotProductAttention(q, k, v, mask);
        Assert.Equal(0, Tol.MaxAbsDiff(masked, nn.functional.scaled_dot_product_attention(q, k, v, mask)));
        var gradOut = FusedAttention.ScaledDotProductAttention(trained, k, v);
        gradOut.sum().backward();
        Assert.NotNull(trained.grad);
    }

    [Fact]
    public void CallsFromSeveralThreadsAtOnceGiveTheSameValues()
    {
        // each calling thread runs the kernel on its own OpenMP team (as libtorch's ops do): no shared state between calls
        if (!CpuHas("avx512f")) return;
        using var g = new Generator(5);
        using var q = torch.randn([2, 4, 300, 40], generator: g);
        using var k = torch.randn([2, 4, 200, 40], generator: g);
        using var v = torch.randn([2, 4, 200, 40], generator: g);
        using var expected = FusedAttention.TryRun(q, k, v)!;
        var diffs = new double[4];
        Parallel.For(0, diffs.Length, new ParallelOptions { MaxDegreeOfParallelism = diffs.Length }, i =>
        {
            for (int round = 0; round < 5; round++)
            {
                using var got = FusedAttention.TryRun(q, k, v)!;
                diffs[i] = Math.Max(diffs[i], Tol.MaxAbsDiff(got, expected));
            }
        });
        Assert.All(diffs, d => Assert.Equal(0, d));
    }

    [Fact]
    public void TheCallerOwnsOnlyTheResult()
    {
        if (!CpuHas("avx512f")) return;
        using var q = torch.randn(1, 2, 16, 40);
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        using (var got = FusedAttention.TryRun(q, q, q))
            Assert.Equal(before + 1, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }
}
