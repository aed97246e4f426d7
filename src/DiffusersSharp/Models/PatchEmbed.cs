using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>PatchEmbed</c> (models/embeddings.py, v0.25.1) as the patch-input <c>Transformer2DModel</c> builds it
/// (no layer norm, flattened, with bias): <c>proj</c> (a patch_size × patch_size convolution of stride patch_size) to
/// (B, H/p · W/p, dim) tokens, plus the 2-D sin-cos positional table. diffusers computes that table in numpy float64
/// (grid positions in float32) and casts it to float32; <see cref="SinCosTable"/> does the same arithmetic in doubles.
/// A latent of another size than <c>sample_size</c> gets the table of its own grid (base size sample_size / p), as in
/// diffusers. Weight names: <c>proj.weight</c>, <c>proj.bias</c>.
/// </summary>
public sealed class PatchEmbed : nn.Module
{
    private readonly Conv2d proj;
    private readonly int _baseSize;
    private readonly double _interpolationScale;
    private readonly Dictionary<(long, long), float[]> _tables = [];

    /// <summary>diffusers' <c>patch_size</c>.</summary>
    public int PatchSize { get; }
    /// <summary>diffusers' <c>embed_dim</c>: token width.</summary>
    public int EmbedDim { get; }

    /// <summary>Builds the block from diffusers' constructor arguments (same names, in .NET casing).</summary>
    public PatchEmbed(int height, int width, int patchSize, int inChannels, int embedDim, double interpolationScale = 1)
        : base(nameof(PatchEmbed))
    {
        if (embedDim % 4 != 0)
            throw new ArgumentException($"PatchEmbed: embed_dim must be divisible by 4 (half of it encodes each axis as sin and cos), got {embedDim}", nameof(embedDim));
        PatchSize = patchSize;
        EmbedDim = embedDim;
        _baseSize = height / patchSize;
        _ = width;
        _interpolationScale = interpolationScale;
        proj = Layers.Conv2d(inChannels, embedDim, kernel_size: patchSize, stride: patchSize);
        RegisterComponents();
    }

    /// <summary>The convolution's kernel, [dim, in, p, p].</summary>
    internal Tensor Kernel => proj.weight!;

    /// <summary>(B, C, H, W) → (B, H/p · W/p, dim) tokens with the positional table added; the caller owns the result.</summary>
    public Tensor Forward(Tensor latent)
    {
        long h = latent.shape[^2] / PatchSize, w = latent.shape[^1] / PatchSize;
        using var scope = NewDisposeScope();
        var tokens = proj.forward(latent).flatten(2).transpose(1, 2);
        var table = tensor(Table(h, w), [1, h * w, EmbedDim], ScalarType.Float32).to(latent.device);
        return (tokens + table).to(latent.dtype).MoveToOuterDisposeScope();
    }

    private float[] Table(long h, long w)
    {
        lock (_tables)
        {
            if (!_tables.TryGetValue((h, w), out var t))
                _tables[(h, w)] = t = SinCosTable(EmbedDim, h, w, _baseSize, _interpolationScale);
            return t;
        }
    }

    /// <summary>
    /// diffusers' <c>get_2d_sincos_pos_embed(embed_dim, (gridH, gridW), base_size, interpolation_scale)</c> as float32,
    /// row-major [gridH · gridW, embedDim]: for the token of row i, column j, the first half encodes the column
    /// position (diffusers' "emb_h" takes the meshgrid's w plane), the second the row position, each as
    /// [sin(pos·ω_k), cos(pos·ω_k)], ω_k = 1 / 10000^(k / (embedDim/4)). Positions are float32
    /// (<c>arange / (grid / base_size) / interpolation_scale</c>), the products and sines float64, as numpy computes them.
    /// </summary>
    public static float[] SinCosTable(int embedDim, long gridH, long gridW, int baseSize, double interpolationScale)
    {
        int quarter = embedDim / 4;
        var omega = new double[quarter];
        for (int k = 0; k < quarter; k++)
        {
            double e = k;
            e /= embedDim / 2 / 2.0;
            omega[k] = 1.0 / Math.Pow(10000, e);
        }
        var posH = Positions(gridH, baseSize, interpolationScale);
        var posW = Positions(gridW, baseSize, interpolationScale);
        var table = new float[gridH * gridW * embedDim];
        long row = 0;
        for (long i = 0; i < gridH; i++)
        {
            for (long j = 0; j < gridW; j++, row++)
            {
                long o = row * embedDim;
                Encode(table, o, posW[j], omega);
                Encode(table, o + 2 * quarter, posH[i], omega);
            }
        }
        return table;
    }

    // numpy: np.arange(n, dtype=float32) / (n / base_size) / interpolation_scale, all in float32
    private static float[] Positions(long n, int baseSize, double interpolationScale)
    {
        float step = (float)(n / (double)baseSize);
        float scale = (float)interpolationScale;
        var p = new float[n];
        for (long i = 0; i < n; i++) p[i] = (float)i / step / scale;
        return p;
    }

    private static void Encode(float[] table, long offset, float position, double[] omega)
    {
        int q = omega.Length;
        for (int k = 0; k < q; k++)
        {
            double angle = position * omega[k];
            table[offset + k] = (float)Math.Sin(angle);
            table[offset + q + k] = (float)Math.Cos(angle);
        }
    }
}
