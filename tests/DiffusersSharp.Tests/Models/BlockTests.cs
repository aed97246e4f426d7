using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DiffusersSharp.Tests.Models;

/// <summary>
/// The shared blocks against formulas written out independently in the test (plain matmul/softmax
/// attention, the sinusoidal embedding in double precision, explicit padding), plus diffusers' weight names.
/// </summary>
public class BlockTests
{
    private static Tensor P(nn.Module m, string name) => m.named_parameters().First(p => p.name == name).parameter;

    [Fact]
    public void AttentionWeightNamesAreDiffusers()
    {
        using var attn = new Attention(32, crossAttentionDim: 24, heads: 4, dimHead: 8, bias: false, normNumGroups: 8);
        var names = attn.named_parameters().Select(p => p.name).ToArray();
        Assert.Equal(new[] { "group_norm.weight", "group_norm.bias", "to_q.weight", "to_k.weight", "to_v.weight",
            "to_out.0.weight", "to_out.0.bias" }, names);
        Assert.Equal(new long[] { 32, 24 }, P(attn, "to_k.weight").shape);
    }

    [Fact]
    public void CrossAttentionMatchesAPlainSoftmaxImplementation()
    {
        using var _ = torch.no_grad();
        torch.manual_seed(11);
        using var attn = new Attention(16, crossAttentionDim: 12, heads: 2, dimHead: 8, bias: true);
        using var x = torch.randn(2, 5, 16);
        using var ctx = torch.randn(2, 7, 12);
        using var y = attn.Forward(x, ctx);

        // Independent computation, per head, in float64.
        var xd = x.to(ScalarType.Float64); var cd = ctx.to(ScalarType.Float64);
        Tensor Lin(string n, Tensor t) => torch.nn.functional.linear(t, P(attn, n + ".weight").to(ScalarType.Float64),
            P(attn, n + ".bias").to(ScalarType.Float64));
        var q = Lin("to_q", xd); var k = Lin("to_k", cd); var v = Lin("to_v", cd);
        var heads = new List<Tensor>();
        for (int h = 0; h < 2; h++)
        {
            var qh = q[.., .., (h * 8)..((h + 1) * 8)];
            var kh = k[.., .., (h * 8)..((h + 1) * 8)];
            var vh = v[.., .., (h * 8)..((h + 1) * 8)];
            var scores = torch.matmul(qh, kh.transpose(1, 2)) / Math.Sqrt(8);
            heads.Add(torch.matmul(scores.softmax(-1), vh));
        }
        var expected = Lin("to_out.0", torch.cat(heads.ToArray(), dim: -1));
        Tol.Close(y, expected, 1e-5, "cross-attention");
    }

    [Fact]
    public void SpatialSelfAttentionEqualsTheSequenceFormPlusResidual()
    {
        using var _ = torch.no_grad();
        torch.manual_seed(12);
        using var attn = new Attention(16, heads: 2, dimHead: 8, bias: true, normNumGroups: 4, residualConnection: true,
            rescaleOutputFactor: 2.0, eps: 1e-6);
        using var x = torch.randn(1, 16, 3, 5);
        using var y = attn.Forward(x);
        Assert.Equal(x.shape, y.shape);

        // (B, C, H, W) -> GroupNorm -> (B, HW, C) -> plain attention -> back, + x, / 2.
        var gn = torch.nn.functional.group_norm(x, 4, P(attn, "group_norm.weight"), P(attn, "group_norm.bias"), 1e-6);
        var seq = gn.reshape(1, 16, 15).transpose(1, 2);
        using var plain = new Attention(16, heads: 2, dimHead: 8, bias: true);
        foreach (var n in new[] { "to_q", "to_k", "to_v", "to_out.0" })
            foreach (var s in new[] { ".weight", ".bias" })
                P(plain, n + s).copy_(P(attn, n + s));
        var attended = plain.Forward(seq).transpose(1, 2).reshape(1, 16, 3, 5);
        var expected = (attended + x) / 2.0;
        Tol.Close(y, expected, 1e-6, "4-D self-attention");
    }

    [Fact]
    public void AttentionMaskIsAppliedPerKey()
    {
        using var _ = torch.no_grad();
        torch.manual_seed(13);
        using var attn = new Attention(8, heads: 2, dimHead: 4);
        using var x = torch.randn(1, 4, 8);
        using var ctx = torch.randn(1, 6, 8);
        // Additive mask hiding the last 2 keys = attending over the first 4 only.
        using var mask = torch.zeros(1, 1, 6);
        mask[.., .., 4..] = torch.tensor(float.NegativeInfinity);
        using var masked = attn.Forward(x, ctx, mask);
        using var truncated = attn.Forward(x, ctx[.., ..4, ..]);
        Tol.Close(masked, truncated, 1e-6, "masked keys");
    }

    [Theory]
    [InlineData(16, true, 0.0)]
    [InlineData(16, false, 1.0)]
    [InlineData(7, false, 1.0)]
    public void TimestepEmbeddingMatchesTheFormula(int dim, bool flip, double shift)
    {
        var t = new[] { 0.0, 1.0, 250.5, 999.0 };
        using var ts = torch.tensor(t.Select(v => (float)v).ToArray());
        using var emb = Timesteps.GetTimestepEmbedding(ts, dim, flip, shift);
        Assert.Equal(new long[] { 4, dim }, emb.shape);
        int half = dim / 2;
        var expected = new double[4 * dim];
        for (int n = 0; n < 4; n++)
            for (int i = 0; i < half; i++)
            {
                double f = Math.Exp(-Math.Log(10000) * i / (half - shift));
                double s = Math.Sin(t[n] * f), c = Math.Cos(t[n] * f);
                expected[n * dim + i] = flip ? c : s;
                expected[n * dim + half + i] = flip ? s : c;
            }
        using var e = torch.tensor(expected).reshape(4, dim);
        // float32 arguments up to ~1000 rad: about 1e-4 of rounding in the phase.
        Tol.Close(emb, e, 2e-4, $"timestep embedding dim {dim}");
    }

    [Fact]
    public void DownsamplePaddingZeroPadsRightAndBottomOnly()
    {
        using var _ = torch.no_grad();
        torch.manual_seed(14);
        using var down = new Downsample2D(4, useConv: true, padding: 0, name: "op");
        Assert.Equal(new[] { "conv.weight", "conv.bias" }, down.named_parameters().Select(p => p.name).ToArray());
        using var x = torch.randn(1, 4, 8, 8);
        using var y = down.Forward(x);
        Assert.Equal(new long[] { 1, 4, 4, 4 }, y.shape);
        var padded = torch.zeros(1, 4, 9, 9);
        padded[.., .., ..8, ..8] = x;
        var expected = torch.nn.functional.conv2d(padded, P(down, "conv.weight"), P(down, "conv.bias"), strides: new long[] { 2, 2 });
        Tol.Close(y, expected, 1e-6, "padding 0");
        using var pool = new Downsample2D(4);
        Tol.Close(pool.Forward(x), torch.nn.functional.avg_pool2d(x, new long[] { 2, 2 }), 0, "avg pool");
    }

    [Fact]
    public void UpsampleRepeatsNearestAndHonoursOutputSize()
    {
        using var _ = torch.no_grad();
        using var up = new Upsample2D(2);
        using var x = torch.arange(8, dtype: ScalarType.Float32).reshape(1, 2, 2, 2);
        using var y = up.Forward(x);
        Assert.Equal(new long[] { 1, 2, 4, 4 }, y.shape);
        Assert.Equal(new float[] { 0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3 }, y[0, 0].data<float>().ToArray());
        using var y3 = up.Forward(x, new long[] { 3, 5 });
        Assert.Equal(new long[] { 1, 2, 3, 5 }, y3.shape);
        using var conv = new Upsample2D(2, useConv: true);
        Assert.Equal(new[] { "conv.weight", "conv.bias" }, conv.named_parameters().Select(p => p.name).ToArray());
        using var named = new Upsample2D(2, useConv: true, name: "Conv2d_0");
        Assert.Equal(new[] { "Conv2d_0.weight", "Conv2d_0.bias" }, named.named_parameters().Select(p => p.name).ToArray());
    }

    [Fact]
    public void ResnetBlockMatchesItsDefinition()
    {
        using var _ = torch.no_grad();
        torch.manual_seed(15);
        using var block = new ResnetBlock2D(8, 16, tembChannels: 12, groups: 4, eps: 1e-6, outputScaleFactor: 2.0);
        foreach (var (_, p) in block.named_parameters()) p.copy_(torch.randn_like(p) * 0.3);
        using var x = torch.randn(2, 8, 5, 5);
        using var xCopy = x.clone();
        using var temb = torch.randn(2, 12);
        using var tembCopy = temb.clone();
        using var y = block.Forward(x, temb);
        Assert.Equal(0.0, Tol.MaxAbsDiff(x, xCopy));       // the input and the shared temb are left alone
        Assert.Equal(0.0, Tol.MaxAbsDiff(temb, tembCopy));
        var h = F.silu(F.group_norm(x, 4, P(block, "norm1.weight"), P(block, "norm1.bias"), 1e-6));
        h = F.conv2d(h, P(block, "conv1.weight"), P(block, "conv1.bias"), padding: new long[] { 1, 1 });
        var t = F.linear(F.silu(temb), P(block, "time_emb_proj.weight"), P(block, "time_emb_proj.bias"));
        h = h + t[.., .., TensorIndex.None, TensorIndex.None];
        h = F.silu(F.group_norm(h, 4, P(block, "norm2.weight"), P(block, "norm2.bias"), 1e-6));
        h = F.conv2d(h, P(block, "conv2.weight"), P(block, "conv2.bias"), padding: new long[] { 1, 1 });
        var sc = F.conv2d(x, P(block, "conv_shortcut.weight"), P(block, "conv_shortcut.bias"));
        Tol.Close(y, (sc + h) / 2.0, 1e-5, "resnet default");
    }

    [Fact]
    public void ResnetScaleShiftMatchesItsDefinition()
    {
        using var _ = torch.no_grad();
        torch.manual_seed(16);
        using var block = new ResnetBlock2D(8, tembChannels: 12, groups: 4, timeEmbeddingNorm: "scale_shift", skipTimeAct: true);
        foreach (var (_, p) in block.named_parameters()) p.copy_(torch.randn_like(p) * 0.3);
        Assert.Equal(new long[] { 16, 12 }, P(block, "time_emb_proj.weight").shape);
        Assert.DoesNotContain(block.named_parameters(), p => p.name.StartsWith("conv_shortcut", StringComparison.Ordinal));
        using var x = torch.randn(1, 8, 4, 4);
        using var xCopy = x.clone();
        using var temb = torch.randn(1, 12);
        using var y = block.Forward(x, temb);
        Assert.Equal(0.0, Tol.MaxAbsDiff(x, xCopy)); // no in-place change of the input
        var h = F.silu(F.group_norm(x, 4, P(block, "norm1.weight"), P(block, "norm1.bias"), 1e-6));
        h = F.conv2d(h, P(block, "conv1.weight"), P(block, "conv1.bias"), padding: new long[] { 1, 1 });
        var t = F.linear(temb, P(block, "time_emb_proj.weight"), P(block, "time_emb_proj.bias")); // skip_time_act
        var scale = t[.., ..8].reshape(1, 8, 1, 1);
        var shift = t[.., 8..].reshape(1, 8, 1, 1);
        h = F.group_norm(h, 4, P(block, "norm2.weight"), P(block, "norm2.bias"), 1e-6) * (1 + scale) + shift;
        h = F.conv2d(F.silu(h), P(block, "conv2.weight"), P(block, "conv2.bias"), padding: new long[] { 1, 1 });
        Tol.Close(y, x + h, 1e-5, "resnet scale_shift");
    }

    [Fact]
    public void UnsupportedResnetVariantsAreRefusedByName()
    {
        var e = Assert.Throws<ArgumentException>(() => new ResnetBlock2D(8, groups: 4, timeEmbeddingNorm: "ada_group"));
        Assert.Contains("ada_group", e.Message);
        var k = Assert.Throws<ArgumentException>(() => new ResnetBlock2D(8, groups: 4, kernel: "fir"));
        Assert.Contains("fir", k.Message);
        var a = Assert.Throws<ArgumentException>(() => Activations.Get("tanh"));
        Assert.Contains("tanh", a.Message);
    }
}
