using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

public sealed partial class AutoencoderKL
{
    /// <summary>
    /// diffusers' <c>tiled_decode</c>: latent tiles of <see cref="TileLatentMinSize"/> every
    /// <c>TileLatentMinSize · (1 − overlap)</c> cells are decoded separately; each tile's top and left seams are
    /// blended linearly with the (already blended) tile above and to the left over <c>TileSampleMinSize ·
    /// overlap</c> pixels, and each tile contributes its top-left <c>TileSampleMinSize − blend</c> pixels. Tiles
    /// are decoded row by row and only the previous row is kept, which gives the same result as diffusers (which
    /// decodes every tile first) with less memory.
    /// </summary>
    public Tensor TiledDecode(Tensor z)
    {
        int overlapSize = (int)(TileLatentMinSize * (1 - TileOverlapFactor));
        int blendExtent = (int)(TileSampleMinSize * TileOverlapFactor);
        int rowLimit = TileSampleMinSize - blendExtent;
        return Tiled(z, overlapSize, TileLatentMinSize, blendExtent, rowLimit, tile =>
        {
            using var h = post_quant_conv.forward(tile);
            return decoder.Forward(h);
        });
    }

    /// <summary>
    /// diffusers' <c>tiled_encode</c>: image tiles of <see cref="TileSampleMinSize"/> are encoded separately
    /// (encoder → quant_conv) and their moments blended over <c>TileLatentMinSize · overlap</c> cells, as in
    /// <see cref="TiledDecode"/>.
    /// </summary>
    public AutoencoderKLOutput TiledEncode(Tensor x)
    {
        int overlapSize = (int)(TileSampleMinSize * (1 - TileOverlapFactor));
        int blendExtent = (int)(TileLatentMinSize * TileOverlapFactor);
        int rowLimit = TileLatentMinSize - blendExtent;
        var moments = Tiled(x, overlapSize, TileSampleMinSize, blendExtent, rowLimit, tile =>
        {
            using var h = encoder.Forward(tile);
            return quant_conv.forward(h);
        });
        return new AutoencoderKLOutput(new DiagonalGaussianDistribution(moments));
    }

    private static Tensor Tiled(Tensor input, int stride, int tileSize, int blendExtent, int rowLimit, Func<Tensor, Tensor> process)
    {
        if (stride <= 0 || tileSize <= 0 || rowLimit <= 0)
            throw new ArgumentException($"AutoencoderKL tiling: tile size {tileSize} with overlap factor gives a step of {stride} and a kept size of {rowLimit}; both must be positive");
        using var scope = torch.NewDisposeScope();
        long height = input.shape[2], width = input.shape[3];
        var resultRows = new List<Tensor>();
        Tensor[]? previousRow = null;
        for (long i = 0; i < height; i += stride)
        {
            var row = new List<Tensor>();
            for (long j = 0; j < width; j += stride)
            {
                using var tile = input[.., .., (int)i..(int)Math.Min(i + tileSize, height), (int)j..(int)Math.Min(j + tileSize, width)];
                row.Add(process(tile));
            }
            var kept = new Tensor[row.Count];
            for (int j = 0; j < row.Count; j++)
            {
                var tile = row[j];
                if (previousRow is not null) BlendV(previousRow[j], tile, blendExtent);
                if (j > 0) BlendH(row[j - 1], tile, blendExtent);
                kept[j] = tile[.., .., ..(int)Math.Min(rowLimit, tile.shape[2]), ..(int)Math.Min(rowLimit, tile.shape[3])];
            }
            resultRows.Add(torch.cat(kept, dim: 3));
            foreach (var k in kept) k.Dispose();
            if (previousRow is not null) foreach (var t in previousRow) t.Dispose();
            previousRow = row.ToArray();
        }
        if (previousRow is not null) foreach (var t in previousRow) t.Dispose();
        var result = torch.cat(resultRows, dim: 2);
        foreach (var r in resultRows) r.Dispose();
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// diffusers' <c>blend_v</c>: the first e = min(a.H, b.H, extent) rows of <paramref name="b"/> become
    /// <c>a[last e rows][y] · (1 − y/e) + b[y] · (y/e)</c>; <paramref name="b"/> is modified in place and returned.
    /// </summary>
    public static Tensor BlendV(Tensor a, Tensor b, int blendExtent) => Blend(a, b, blendExtent, dim: 2);

    /// <summary>diffusers' <c>blend_h</c>: as <see cref="BlendV"/> over the first columns of <paramref name="b"/>.</summary>
    public static Tensor BlendH(Tensor a, Tensor b, int blendExtent) => Blend(a, b, blendExtent, dim: 3);

    // blend_v (dim 2, rows) and blend_h (dim 3, columns): b's first e entries along dim mixed with a's last e
    private static Tensor Blend(Tensor a, Tensor b, int blendExtent, int dim)
    {
        int e = (int)Math.Min(Math.Min(a.shape[dim], b.shape[dim]), blendExtent);
        if (e <= 0) return b;
        using var scope = torch.NewDisposeScope();
        var (wa, wb) = Weights(e, b);
        long[] shape = [1, 1, 1, 1];
        shape[dim] = e;
        var head = b.narrow(dim, 0, e);
        var blended = a.narrow(dim, a.shape[dim] - e, e) * wa.view(shape) + head * wb.view(shape);
        head.copy_(blended);
        return b;
    }

    // (1 − y/e) and y/e computed in double and rounded to the tensor's dtype, as PyTorch rounds a Python float
    // scalar operand to the tensor's dtype before multiplying.
    private static (Tensor A, Tensor B) Weights(int e, Tensor like)
    {
        var wa = new double[e];
        var wb = new double[e];
        for (int y = 0; y < e; y++)
        {
            wb[y] = (double)y / e;
            wa[y] = 1 - wb[y];
        }
        return (torch.tensor(wa, dtype: ScalarType.Float64).to(like.dtype).to(like.device),
                torch.tensor(wb, dtype: ScalarType.Float64).to(like.dtype).to(like.device));
    }
}
