using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

public sealed partial class AutoencoderTiny
{
    /// <summary>
    /// Encode and decode go through <see cref="TiledEncode"/> / <see cref="TiledDecode"/> (diffusers'
    /// <c>use_tiling</c>), whatever the input's size: unlike <see cref="AutoencoderKL"/>, diffusers 0.25.1's
    /// AutoencoderTiny tiles even an input smaller than a tile.
    /// </summary>
    public bool UseTiling { get; private set; }

    /// <summary>
    /// diffusers' <c>spatial_scale_factor</c>: <c>2 ** out_channels</c> (8 for TAESD's 3 output channels), the scale the
    /// tiling assumes between image pixels and latent cells. A quirk of diffusers 0.25.1: it is not the model's real scale
    /// (<see cref="ScaleFactor"/>), and where the two differ the tiles do not fit the output and tiling fails (here with a
    /// <see cref="DiffusersException"/>). Capped at <see cref="int.MaxValue"/> for <c>out_channels</c> ≥ 31, which tiles
    /// every image as 2^31 would. Set it, as diffusers' attribute can be, to tile such a model.
    /// </summary>
    public int SpatialScaleFactor { get; set; }

    /// <summary>Fraction of a tile blended with its neighbours (diffusers' <c>tile_overlap_factor</c>, 0.125).</summary>
    public double TileOverlapFactor { get; set; } = 0.125;

    /// <summary>Tile size in image pixels for <see cref="TiledEncode"/> (diffusers' <c>tile_sample_min_size</c>, 512).</summary>
    public int TileSampleMinSize { get; set; } = 512;

    /// <summary>
    /// Tile size in latent cells for <see cref="TiledDecode"/> (diffusers' <c>tile_latent_min_size</c>):
    /// <c>TileSampleMinSize // SpatialScaleFactor</c> when the model is built (64 for TAESD), not recomputed when either
    /// changes, as in diffusers.
    /// </summary>
    public int TileLatentMinSize { get; set; }

    /// <summary>diffusers' <c>enable_tiling</c>: encode and decode in overlapping tiles blended at their seams.</summary>
    public void EnableTiling(bool useTiling = true) => UseTiling = useTiling;

    /// <summary>diffusers' <c>disable_tiling</c>: encode and decode in one piece again.</summary>
    public void DisableTiling() => EnableTiling(false);

    private void InitTiling()
    {
        SpatialScaleFactor = Config.OutChannels < 31 ? 1 << Config.OutChannels : int.MaxValue;
        TileLatentMinSize = TileSampleMinSize / SpatialScaleFactor;
    }

    /// <summary>
    /// diffusers 0.25.1's <c>AutoencoderTiny._tiled_encode</c>: image tiles of <see cref="TileSampleMinSize"/> pixels
    /// every <c>TileSampleMinSize − blend</c> pixels (blend = <c>int(TileSampleMinSize · TileOverlapFactor)</c>, 64) are
    /// encoded one by one and written into a float32 output of 4 channels and <c>H // s</c> × <c>W // s</c> cells
    /// (s = <see cref="SpatialScaleFactor"/>), each tile blended over what its upper and left neighbours wrote with the
    /// mask <c>clamp(k / (blend / s − 1), 0, 1)</c> along its rows and columns (k = 0, 1, …; ones along the first row or
    /// column of tiles). The output is float32 whatever the model's dtype (diffusers' <c>torch.zeros</c>), and has 4
    /// channels whatever <c>latent_channels</c> is (one latent channel is broadcast to four; others fail). Tiles that do
    /// not fit their place in the output (a model whose encoder does not downsample by s, an image size that is not a
    /// multiple of s) throw a <see cref="DiffusersException"/> where diffusers fails to broadcast.
    /// </summary>
    public Tensor TiledEncode(Tensor x)
    {
        CheckInput(x, Config.InChannels, "TiledEncode", "images", latents: false);
        return Tiled(x, encode: true);
    }

    /// <summary>
    /// diffusers 0.25.1's <c>AutoencoderTiny._tiled_decode</c>: latent tiles of <see cref="TileLatentMinSize"/> cells
    /// every <c>TileLatentMinSize − blend</c> cells (blend = <c>int(TileLatentMinSize · TileOverlapFactor)</c>, 8) are
    /// decoded one by one into a float32 output of 3 channels and <c>h · s</c> × <c>w · s</c> pixels
    /// (s = <see cref="SpatialScaleFactor"/>), blended as in <see cref="TiledEncode"/> with the mask
    /// <c>clamp(k / (blend · s − 1), 0, 1)</c>. One output channel is broadcast to three (diffusers' quirk); a decoder
    /// whose tiles do not fit (its scale is not s, or it has neither 1 nor 3 output channels) throws a
    /// <see cref="DiffusersException"/>.
    /// </summary>
    public Tensor TiledDecode(Tensor x)
    {
        CheckInput(x, Config.LatentChannels, "TiledDecode", "latents", latents: true);
        return Tiled(x, encode: false);
    }

    private Tensor Tiled(Tensor x, bool encode)
    {
        long sf = SpatialScaleFactor;
        int tileSize = encode ? TileSampleMinSize : TileLatentMinSize;
        // Python's int(): truncation toward zero
        int blendSize = (int)(tileSize * TileOverlapFactor);
        int traverseSize = tileSize - blendSize;
        string op = encode ? "tiled encode" : "tiled decode";
        if (sf <= 0)
            throw new DiffusersException($"AutoencoderTiny {op}: SpatialScaleFactor must be positive, got {sf}");
        if (tileSize <= 0 || traverseSize <= 0)
            throw new DiffusersException(
                $"AutoencoderTiny {op}: {(encode ? "TileSampleMinSize" : "TileLatentMinSize")} {tileSize} with TileOverlapFactor " +
                $"{TileOverlapFactor} gives tiles {traverseSize} apart; both must be positive (diffusers' range(0, size, step) needs a step ≥ 1)");

        using var scope = torch.NewDisposeScope();
        long height = x.shape[2], width = x.shape[3];
        // torch.arange(tile_size / sf) / (blend_size / sf - 1) for encode, torch.arange(tile_size * sf) /
        // (blend_size * sf - 1) for decode: float32 (torch's default dtype), the divisor a Python float or int
        long maskSize = encode ? (long)Math.Ceiling(tileSize / (double)sf) : tileSize * sf;
        double divisor = encode ? blendSize / (double)sf - 1 : blendSize * sf - 1;
        var ramp = (torch.arange(maskSize, dtype: ScalarType.Float32, device: x.device) / divisor).clamp_(0, 1);
        var maskRows = ramp.view(-1, 1).expand(maskSize, maskSize);
        var maskCols = ramp.view(1, -1).expand(maskSize, maskSize);
        var ones = torch.ones(maskSize, maskSize, dtype: ScalarType.Float32, device: x.device);

        long outHeight = encode ? height / sf : height * sf, outWidth = encode ? width / sf : width * sf;
        var output = torch.zeros([x.shape[0], encode ? 4 : 3, outHeight, outWidth], dtype: ScalarType.Float32, device: x.device);
        var part = encode ? (nn.Module<Tensor, Tensor>)encoder : decoder;
        for (long i = 0; i < height; i += traverseSize)
        {
            for (long j = 0; j < width; j += traverseSize)
            {
                using var tileScope = torch.NewDisposeScope();
                var tileIn = x[.., .., Span(i, i + tileSize, height), Span(j, j + tileSize, width)];
                var (r0, r1) = encode ? (i / sf, (i + tileSize) / sf) : (i * sf, (i + tileSize) * sf);
                var (c0, c1) = encode ? (j / sf, (j + tileSize) / sf) : (j * sf, (j + tileSize) * sf);
                var tileOut = output[.., .., Span(r0, r1, outHeight), Span(c0, c1, outWidth)];
                var tile = InLayout(tileIn, part);
                long h = tile.shape[2], w = tile.shape[3];
                var mask = (i == 0 ? ones : maskRows) * (j == 0 ? ones : maskCols);
                mask = mask[Span(0, h, maskSize), Span(0, w, maskSize)];
                CheckFits(op, mask, tile, tileOut, i, j, tileIn, sf, encode);
                tileOut.copy_(mask * tile + (1 - mask) * tileOut);
            }
        }
        return output.MoveToOuterDisposeScope();
    }

    // Python's a[start:stop] on a dimension of `size` (start ≥ 0, stop ≥ start): both ends clipped to the size
    private static TensorIndex Span(long start, long stop, long size) =>
        TensorIndex.Slice(Math.Min(start, size), Math.Min(stop, size));

    // torch broadcasts mask * tile + (1 - mask) * tile_out, then copy_ needs the result to expand to tile_out's shape:
    // where either fails, diffusers raises a RuntimeError; here the reason is named.
    private void CheckFits(string op, Tensor mask, Tensor tile, Tensor tileOut, long i, long j, Tensor tileIn, long sf, bool encode)
    {
        // each operand must equal tile_out's size or be 1 along every dimension (tile_out's size may be 0)
        long[] target = tileOut.shape;
        bool fits = new[] { mask.shape, tile.shape }.All(shape =>
            shape.Length <= target.Length && Enumerable.Range(1, shape.Length).All(k => shape[^k] == target[^k] || shape[^k] == 1));
        if (fits) return;
        string what = encode ? "image" : "latent";
        string made = encode ? "latents" : "pixels";
        int realScale = encode
            ? 1 << (Config.EncoderBlockOutChannels.Length - 1)
            : (int)Math.Pow(Config.UpsamplingScalingFactor, Config.DecoderBlockOutChannels.Length - 1);
        throw new DiffusersException(
            $"AutoencoderTiny {op}: the {what} tile at rows {i}..{i + tileIn.shape[2]}, columns {j}..{j + tileIn.shape[3]} " +
            $"gives {Layers.Shape(tile)} {made}, which do not fit its {Layers.Shape(tileOut)} place in the output " +
            $"(blend mask {Layers.Shape(mask)}): diffusers 0.25.1 tiles with spatial_scale_factor = 2 ** out_channels = {sf} " +
            $"and {(encode ? "4 latent" : "3 image")} channels, and this model's {(encode ? "encoder" : "decoder")} " +
            $"{(encode ? "downsamples" : "upsamples")} by {realScale} with {(encode ? Config.LatentChannels : Config.OutChannels)} channels" +
            (encode ? $" (or the image size is not a multiple of {sf})" : "") +
            "; diffusers fails here too. Disable tiling (DisableTiling) or set SpatialScaleFactor to the model's scale.");
    }
}
