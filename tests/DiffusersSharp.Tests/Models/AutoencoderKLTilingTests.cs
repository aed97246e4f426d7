using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>
/// Tiled VAE decode/encode against diffusers 0.25.1's tiling arithmetic, written out here the way
/// <c>tiled_decode</c> / <c>blend_v</c> / <c>blend_h</c> do it (every tile first, then in-place row-by-row
/// blending with Python-float weights), on the tiny-sd VAE (tile 64 px / 32 latent cells, overlap 0.25).
/// </summary>
public class AutoencoderKLTilingTests
{
    [Fact]
    public void TiledDecode_OfALargerLatent_FollowsDiffusersTilingAndBlending()
    {
        using var _ = torch.no_grad();
        using var vae = AutoencoderKLGoldenTests.LoadTiny();
        using var z = torch.randn(new long[] { 1, 4, 48, 40 }, generator: new Generator(11));
        // reference: each tile decoded alone (untiled path), then diffusers' blending
        using var expected = ReferenceTiled(z, stride: 24, tile: 32, blend: 16, rowLimit: 48, t => vae.Decode(t).Sample);
        vae.EnableTiling();
        using var tiled = vae.Decode(z).Sample;
        Assert.Equal(new long[] { 1, 3, 96, 80 }, tiled.shape);
        Assert.Equal(0.0, Tol.MaxAbsDiff(tiled, expected));
        // the tiles really differ from one whole decode (the mid-block attention is global) but stay close
        vae.DisableTiling();
        using var whole = vae.Decode(z).Sample;
        double d = Tol.MaxAbsDiff(tiled, whole);
        Assert.True(d > 0 && d < 1.0, $"tiled vs whole decode: max |diff| {d}");
        // the top-left 48x48 pixels come from the first tile alone
        using var corner = tiled[.., .., ..48, ..48];
        using var z00 = z[.., .., ..32, ..32];
        using var first = vae.Decode(z00).Sample;
        using var firstCorner = first[.., .., ..48, ..48];
        Assert.Equal(0.0, Tol.MaxAbsDiff(corner, firstCorner));
    }

    [Fact]
    public void TiledDecode_WithATileAtLeastAsLargeAsTheInput_IsTheUntiledDecode()
    {
        using var _ = torch.no_grad();
        using var vae = AutoencoderKLGoldenTests.LoadTiny();
        using var z = Golden.Tensor("tiny-sd-expected.safetensors", "vae/z"); // 32x32 = one tile
        using var untiled = vae.Decode(z).Sample;
        vae.EnableTiling();
        using var tiled = vae.Decode(z).Sample;
        Assert.Equal(0.0, Tol.MaxAbsDiff(tiled, untiled));
        using var expected = Golden.Tensor("tiny-sd-expected.safetensors", "vae/decode");
        Tol.Close(tiled, expected, Tol.ModelAbs, "tiling enabled, input of one tile");
    }

    [Fact]
    public void TiledEncode_OfALargerImage_FollowsDiffusersTilingAndBlending()
    {
        using var _ = torch.no_grad();
        using var vae = AutoencoderKLGoldenTests.LoadTiny();
        using var image = torch.tanh(torch.randn(new long[] { 1, 3, 80, 96 }, generator: new Generator(12)));
        // tile 64 px every 48 px; moments blended over 8 cells; 24 cells kept per tile
        using var expected = ReferenceTiled(image, stride: 48, tile: 64, blend: 8, rowLimit: 24, t =>
        {
            using var p = vae.Encode(t).LatentDist;
            return p.Parameters.clone();
        });
        vae.EnableTiling();
        using var posterior = vae.Encode(image).LatentDist;
        Assert.Equal(new long[] { 1, 8, 40, 48 }, posterior.Parameters.shape);
        Assert.Equal(0.0, Tol.MaxAbsDiff(posterior.Parameters, expected));
        Assert.Equal(new long[] { 1, 4, 40, 48 }, posterior.Mean.shape);
    }

    [Fact]
    public void Blend_UsesLinearWeightsOverTheSeam()
    {
        // blend_v with extent 4: rows y < 4 of b become a[-4 + y] * (1 - y/4) + b[y] * (y/4)
        using var a = torch.full(new long[] { 1, 1, 6, 2 }, 10.0f);
        using var b = torch.zeros(1, 1, 5, 2);
        AutoencoderKL.BlendV(a, b, 4);
        Assert.Equal(new float[] { 10, 10, 7.5f, 7.5f, 5, 5, 2.5f, 2.5f, 0, 0 }, b.data<float>().ToArray());
        using var c = torch.ones(1, 1, 2, 3);
        using var d = torch.zeros(1, 1, 2, 3);
        AutoencoderKL.BlendH(c, d, 8); // extent limited to the width (3)
        Assert.Equal(new float[] { 1, 2f / 3, 1f / 3, 1, 2f / 3, 1f / 3 }, d.data<float>().ToArray());
    }

    /// <summary>diffusers' tiled_decode / tiled_encode loops, verbatim in structure.</summary>
    private static Tensor ReferenceTiled(Tensor x, int stride, int tile, int blend, int rowLimit, Func<Tensor, Tensor> process)
    {
        long h = x.shape[2], w = x.shape[3];
        var rows = new List<List<Tensor>>();
        for (long i = 0; i < h; i += stride)
        {
            var row = new List<Tensor>();
            for (long j = 0; j < w; j += stride)
                row.Add(process(x[.., .., (int)i..(int)Math.Min(i + tile, h), (int)j..(int)Math.Min(j + tile, w)]));
            rows.Add(row);
        }
        var resultRows = new List<Tensor>();
        for (int i = 0; i < rows.Count; i++)
        {
            var resultRow = new List<Tensor>();
            for (int j = 0; j < rows[i].Count; j++)
            {
                var t = rows[i][j];
                if (i > 0) PyBlend(rows[i - 1][j], t, blend, dim: 2);
                if (j > 0) PyBlend(rows[i][j - 1], t, blend, dim: 3);
                resultRow.Add(t[.., .., ..(int)Math.Min(rowLimit, t.shape[2]), ..(int)Math.Min(rowLimit, t.shape[3])]);
            }
            resultRows.Add(torch.cat(resultRow, dim: 3));
        }
        return torch.cat(resultRows, dim: 2);
    }

    /// <summary>blend_v (dim 2) / blend_h (dim 3): one row or column at a time, scalar weights as Python floats.</summary>
    private static void PyBlend(Tensor a, Tensor b, int extent, int dim)
    {
        int e = (int)Math.Min(Math.Min(a.shape[dim], b.shape[dim]), extent);
        for (int y = 0; y < e; y++)
        {
            using var aRow = a.select(dim, a.shape[dim] - e + y);
            using var bRow = b.select(dim, y);
            using var mixed = aRow * (1 - (double)y / e) + bRow * ((double)y / e);
            bRow.copy_(mixed);
        }
    }
}
