using DiffusersSharp.Models;
using DiffusersSharp.Models.Lora;
using DiffusersSharp.Runtime;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Runtime;

/// <summary>
/// The Winograd F(2×2, 3×3) convolution (build/native/winograd.c) against a float64 convolution of the same values: fp32
/// to fp32 rounding and bf16 within a small multiple of libtorch's own bf16 convolution's error, in both layouts and
/// both kernel layouts, every tail (channels, tiles past a 16-wide vector, one-tile images), bands of one tile row and
/// bands across images; where it does not apply, libtorch's convolution; and <see cref="LoRACompatibleConv"/> through it.
/// F(4×4, 3×3) (build/native/winograd4.c, fp32) the same way, within its own bound, and where the layers choose it.
/// </summary>
public class WinogradConvolutionTests
{
    private static bool CpuHas(params string[] flags) => flags.All(CpuFeatures.CurrentFlags.Contains);

    /// <summary>Seeded input (N, C, H, W), 3×3 kernel scaled to unit-variance outputs and optional bias, in the given
    /// dtype and layouts (also <see cref="Im2ColConvolutionTests"/>' operands).</summary>
    internal static (Tensor X, Tensor W, Tensor? B) Operands(long n, long cin, long cout, long h, long w, bool bias, int seed,
        ScalarType dtype, bool xChannelsLast, bool wChannelsLast)
    {
        using var g = new Generator((ulong)seed);
        var x = torch.randn([n, cin, h, w], generator: g).to(dtype);
        var k = (torch.randn([cout, cin, 3, 3], generator: g) / Math.Sqrt(9 * cin)).to(dtype);
        var b = bias ? torch.randn([cout], generator: g).to(dtype) : null;
        return (xChannelsLast ? Layers.ToChannelsLast(x) : x, wChannelsLast ? Layers.ToChannelsLast(k) : k, b);
    }

    private static Tensor Float64Conv(Tensor x, Tensor w, Tensor? b) =>
        nn.functional.conv2d(x.to(ScalarType.Float64), w.to(ScalarType.Float64), b?.to(ScalarType.Float64), padding: [1, 1]);

    [Theory]
    [InlineData(2, 40, 24, 8, 36, true, false, false, 2)]    // 18 tiles a row: a second vector of 2; 40 / 24 channels
    [InlineData(2, 40, 24, 8, 36, true, true, true, 2)]      // the same channels-last (16-channel vectors with tails)
    [InlineData(1, 20, 72, 6, 34, false, true, false, 2)]    // channels-last input, NCHW kernel (gathered)
    [InlineData(1, 3, 5, 2, 2, false, false, true, 2)]       // one tile, all of it padding around; NCHW input, channels-last kernel
    [InlineData(3, 64, 64, 32, 32, true, false, false, 2)]   // a UNet-like layer
    [InlineData(1, 1024, 1040, 2, 4, true, false, false, 2)] // U of 68 MB: written past the caches (streaming stores)
    [InlineData(2, 40, 24, 8, 68, true, false, false, 4)]    // F(4×4, 3×3): 17 tiles a row, a second vector of 1
    [InlineData(2, 40, 24, 8, 68, true, true, true, 4)]      // the same channels-last
    [InlineData(1, 20, 72, 12, 12, false, true, false, 4)]   // channels-last input, NCHW kernel (16 transposed + 4 gathered)
    [InlineData(1, 3, 5, 4, 4, false, false, true, 4)]       // one tile, all of it padding around
    [InlineData(3, 64, 64, 32, 32, true, false, false, 4)]   // a UNet-like layer
    [InlineData(1, 1024, 1040, 4, 4, true, false, false, 4)] // U of 153 MB: streaming stores
    public void Fp32MatchesFloat64(long n, long cin, long cout, long h, long w, bool bias, bool xCl, bool wCl, int tile)
    {
        if (!CpuHas("avx512f")) return; // the fallback is libtorch itself
        using var scope = torch.NewDisposeScope();
        var (x, k, b) = Operands(n, cin, cout, h, w, bias, 31, ScalarType.Float32, xCl, wCl);
        Assert.True(WinogradConvolution.Applies(x, k, b) && WinogradConvolution.TileApplies(tile, x.dtype, h, w));
        var expected = Float64Conv(x, k, b);
        var direct = nn.functional.conv2d(x, k, b, padding: [1, 1]);
        foreach (long band in new[] { WinogradConvolution.BandBytes, 1L })   // whole, then one tile row a band
        {
            var got = WinogradConvolution.Run(x, k, b, band, tile);
            Assert.Equal(new[] { n, cout, h, w }, got.shape);
            Assert.Equal(xCl, Layers.IsChannelsLast(got) && !got.is_contiguous());
            AssertWithinBound(got, expected, direct, tile, $"band {band}");
        }
    }

    /// <summary>
    /// The bounds against float64, for unit-variance outputs. fp32 F(2×2, 3×3): fp32 rounding, at most 2e-5 and 4× libtorch's
    /// direct convolution's error. fp32 F(4×4, 3×3) rounds more: its points (0, ±1, 1/2, -2) give an rms error of ~3e-6 over
    /// 640 channels in a simulation (the direct convolution summed in order: 1.4e-6), a largest one of 2-3.4e-5 over SD's
    /// layers (`bench -- winograd-paths`; F(2×2, 3×3): 3-4e-6, libtorch's channels-last direct convolution 0.8-1.8e-5).
    /// bf16: the transformed tiles and products are rounded to bf16 too, measured about twice the direct error.
    /// </summary>
    private static void AssertWithinBound(Tensor got, Tensor expected, Tensor direct, int tile, string what)
    {
        var diff = (got.to(ScalarType.Float64) - expected).abs();
        double ours = diff.max().item<double>(), theirs = Tol.MaxAbsDiff(direct.to(ScalarType.Float64), expected);
        if (tile == 4)
        {
            double mean = diff.mean().item<double>();
            Assert.True(ours < 8e-5 && mean < 6e-6, $"{what}: F(4×4, 3×3) max |diff| {ours}, mean {mean}");
        }
        else if (got.dtype == ScalarType.Float32)
            Assert.True(ours < 2e-5 && ours <= 4 * theirs + 1e-6, $"{what}: Winograd {ours}, libtorch {theirs}");
        else
            Assert.True(ours <= 3 * theirs, $"{what}: Winograd {ours}, libtorch {theirs}");
    }

    [Fact]
    public void Tile4OnlyInFp32AndMultiplesOf4()
    {
        if (!CpuHas("avx512f")) return;
        using var scope = torch.NewDisposeScope();
        var (x, k, b) = Operands(1, 32, 32, 8, 8, true, 43, ScalarType.Float32, false, false);
        Assert.False(WinogradConvolution.TileApplies(4, ScalarType.BFloat16, 8, 8));
        Assert.False(WinogradConvolution.TileApplies(4, ScalarType.Float32, 8, 6));
        Assert.False(WinogradConvolution.TileApplies(3, ScalarType.Float32, 9, 9));
        var ex = Assert.Throws<ArgumentException>(() => WinogradConvolution.Run(x[.., .., .., ..6], k, b, 1 << 20, tile: 4));
        Assert.Contains("(1, 32, 8, 6)", ex.Message);
        Assert.Contains("4×4 output tiles", ex.Message);
        if (CpuHas("avx512_bf16"))
        {
            ex = Assert.Throws<ArgumentException>(() => WinogradConvolution.Run(x.to(ScalarType.BFloat16), k.to(ScalarType.BFloat16), b!.to(ScalarType.BFloat16), 1 << 20, tile: 4));
            Assert.Equal("Winograd convolution: not applicable to x (1, 32, 8, 8) BFloat16 and weight (32, 32, 3, 3) BFloat16 with 4×4 output tiles: "
                         + "those need Float32 and an output height and width that are multiples of 4", ex.Message);
        }
    }

    [Theory]
    [InlineData(ScalarType.Float32, 2, 320, 320, 64, 64, 4)]     // SD 1.5's 64² layers at batch 2: 8192 positions
    [InlineData(ScalarType.Float32, 2, 1280, 640, 32, 32, 4)]    // 2048 positions, U of 118 MB
    [InlineData(ScalarType.Float32, 2, 1280, 1280, 32, 32, 2)]   // U of 236 MB: over the budget
    [InlineData(ScalarType.Float32, 2, 1280, 1280, 16, 16, 2)]   // 512 positions
    [InlineData(ScalarType.Float32, 1, 128, 128, 512, 512, 4)]   // a VAE decoder's last stage
    [InlineData(ScalarType.Float32, 1, 128, 128, 510, 512, 2)]   // not a multiple of 4
    [InlineData(ScalarType.BFloat16, 2, 320, 320, 64, 64, 2)]    // bf16: F(2×2, 3×3) only
    public void Tile4WhereMeasuredFaster(ScalarType dtype, long n, long cin, long cout, long h, long w, int expected) =>
        Assert.Equal(expected, WinogradConvolution.Tile(dtype, n, cin, cout, h, w));

    [Fact]
    public void LayersChooseTheTile()
    {
        if (!CpuHas("avx512f")) return;
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        using var g = new Generator(44);
        // 1 × 48² = 2304 positions: F(4×4, 3×3), bit for bit what Run gives with tile 4
        var conv = new LoRACompatibleConv(32, 40, 3, padding: 1);
        var x = torch.randn([1, 32, 48, 48], generator: g);
        Assert.Equal(4, WinogradConvolution.Tile(x.dtype, 1, 32, 40, 48, 48));
        Assert.True(conv.forward(x).equal(WinogradConvolution.Run(x, conv.Weight, conv.Bias, WinogradConvolution.BandBytes, tile: 4)).all().item<bool>());
        Assert.False(conv.forward(x).equal(WinogradConvolution.Run(x, conv.Weight, conv.Bias, WinogradConvolution.BandBytes, tile: 2)).all().item<bool>());
        // the upsampler: 24² read as 48²
        var upsampler = new Upsample2D(32, useConv: true);
        var upConv = (LoRACompatibleConv)upsampler.named_children().Single().module;
        var small = torch.randn([1, 32, 24, 24], generator: g);
        Assert.True(upsampler.Forward(small).equal(WinogradConvolution.RunUpsampled(small, upConv.Weight, upConv.Bias, WinogradConvolution.BandBytes, tile: 4)).all().item<bool>());
    }

    [Theory]
    [InlineData(1, 40, 24, 3, 5, false, ScalarType.Float32, 2)]     // 3×5 → 6×10: odd sizes, columns -1 and W padding
    [InlineData(2, 32, 48, 9, 17, false, ScalarType.Float32, 2)]    // 17 tiles a row: past a 16-wide vector
    [InlineData(2, 32, 48, 9, 17, true, ScalarType.Float32, 2)]     // channels-last
    [InlineData(1, 64, 40, 8, 8, true, ScalarType.BFloat16, 2)]     // what the bf16 UNets' upsamplers run
    [InlineData(1, 40, 24, 6, 10, false, ScalarType.Float32, 4)]    // F(4×4, 3×3): 12×20, 5 tiles a row, both paddings
    [InlineData(2, 32, 48, 8, 34, false, ScalarType.Float32, 4)]    // 16×68: 17 tiles a row, past a 16-wide vector
    [InlineData(2, 32, 48, 8, 34, true, ScalarType.Float32, 4)]     // channels-last
    public void UpsampledMatchesInterpolateThenConvolve(long n, long cin, long cout, long h, long w, bool cl, ScalarType dtype, int tile)
    {
        if (!CpuHas("avx512f") || (dtype == ScalarType.BFloat16 && !CpuHas("avx512_bf16"))) return;
        using var scope = torch.NewDisposeScope();
        var (x, k, b) = Operands(n, cin, cout, h, w, true, 36, dtype, cl, cl);
        Assert.True(WinogradConvolution.AppliesUpsampled(x, k, b));
        Assert.False(WinogradConvolution.Applies(x, k, b) && (h % 2 != 0 || w % 2 != 0));
        var up = nn.functional.interpolate(x, scale_factor: [2.0, 2.0], mode: InterpolationMode.Nearest);
        var expected = Float64Conv(up, k, b);
        var direct = nn.functional.conv2d(up, k, b, padding: [1, 1]);
        foreach (long band in new[] { WinogradConvolution.BandBytes, 1L })
        {
            var got = WinogradConvolution.RunUpsampled(x, k, b, band, tile);
            Assert.Equal(new[] { n, cout, 2 * h, 2 * w }, got.shape);
            Assert.Equal(cl, !got.is_contiguous());
            AssertWithinBound(got, expected, direct, tile, $"band {band}");
        }
    }

    [Fact]
    public void Upsample2DFusesTheInterpolation()
    {
        if (!CpuHas("avx512f")) return;
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var upsampler = new Upsample2D(48, useConv: true);
        var conv = (LoRACompatibleConv)upsampler.named_children().Single().module;
        using var g = new Generator(37);
        var x = torch.randn([2, 48, 12, 10], generator: g);
        Assert.True(conv.FusesUpsample(x));
        var got = upsampler.Forward(x);
        var up = nn.functional.interpolate(x, scale_factor: [2.0, 2.0], mode: InterpolationMode.Nearest);
        var expected = Float64Conv(up, conv.Weight, conv.Bias);
        Assert.Equal(new long[] { 2, 48, 24, 20 }, got.shape);
        double diff = Tol.MaxAbsDiff(got.to(ScalarType.Float64), expected);
        Assert.True(diff < 2e-5, $"max |diff| {diff}");
        Assert.False(x.IsInvalid);   // not handed over: the caller's
    }

    [Fact]
    public void BandsSpanImages()
    {
        if (!CpuHas("avx512f")) return;
        using var scope = torch.NewDisposeScope();
        // 3 images of 2 tile rows; 3 rows a band: the first band ends inside the second image
        var (x, k, b) = Operands(3, 32, 48, 4, 6, true, 32, ScalarType.Float32, false, false);
        long bytesPerRow = 3 * 16 * (32 + 48) * 4;
        var got = WinogradConvolution.Run(x, k, b, 3 * bytesPerRow);
        double diff = Tol.MaxAbsDiff(got.to(ScalarType.Float64), Float64Conv(x, k, b));
        Assert.True(diff < 2e-5, $"max |diff| {diff}");
    }

    [Theory]
    [InlineData(true, true, 96, 80)]     // what bf16 models run: channels-last activations and kernels, 32 channels at a time
    [InlineData(true, true, 56, 40)]     // the same with 32 + 16 + a masked 8 input channels, 16 + 16 + 8 output channels
    [InlineData(false, false, 96, 80)]   // NCHW: the kernel's bf16 values read one by one
    public void Bf16IsWithinBf16Rounding(bool xCl, bool wCl, long cin, long cout)
    {
        if (!CpuHas("avx512f", "avx512_bf16")) return;
        using var scope = torch.NewDisposeScope();
        var (x, k, b) = Operands(2, cin, cout, 16, 40, true, 33, ScalarType.BFloat16, xCl, wCl);
        var expected = Float64Conv(x, k, b);
        var direct = nn.functional.conv2d(x, k, b, padding: [1, 1]);
        double theirs = Tol.MaxAbsDiff(direct.to(ScalarType.Float64), expected);
        // whole; then 5 chunks of 16 output channels (U over the budget), each in bands of one tile row
        foreach (long band in new[] { WinogradConvolution.BandBytes, 16L * 16 * cin * 2 })
        {
            var got = WinogradConvolution.Run(x, k, b, band);
            Assert.Equal(ScalarType.BFloat16, got.dtype);
            double ours = Tol.MaxAbsDiff(got.to(ScalarType.Float64), expected);
            // the transformed tiles and products are rounded to bf16 too: measured about twice the direct error
            Assert.True(ours <= 3 * theirs, $"band {band}: Winograd {ours}, libtorch {theirs}");
            double mean = (got.to(ScalarType.Float64) - expected).abs().mean().item<double>();
            Assert.True(mean < 5e-3, $"band {band}: mean |diff| {mean}");
        }
    }

    [Fact]
    public void DoesNotApplyElsewhere()
    {
        if (!CpuHas("avx512f")) return;
        using var scope = torch.NewDisposeScope();
        var (x, k, b) = Operands(1, 32, 32, 8, 8, true, 34, ScalarType.Float32, false, false);
        Assert.True(WinogradConvolution.Applies(x, k, b));
        Assert.False(WinogradConvolution.Applies(x[.., .., ..7, ..], k, b));                        // odd height
        Assert.False(WinogradConvolution.Applies(x, k[.., .., ..1, ..1], b));                       // 1×1 kernel
        Assert.False(WinogradConvolution.Applies(x.to(ScalarType.Float16), k.to(ScalarType.Float16), b?.to(ScalarType.Float16)));
        Assert.False(WinogradConvolution.Applies(x, k.to(ScalarType.Float64), b));                  // mixed dtypes
        Assert.False(WinogradConvolution.Applies(x.transpose(2, 3), k, b));                         // neither layout
        using (torch.enable_grad())
        {
            var trained = k.clone().requires_grad_(true);
            Assert.False(WinogradConvolution.Applies(x, trained, b));                               // training: autograd's convolution
        }
        var ex = Assert.Throws<ArgumentException>(() => WinogradConvolution.Run(x[.., .., ..7, ..], k, b, 1 << 20));
        Assert.Contains("(1, 32, 7, 8)", ex.Message);
    }

    [Theory]
    [InlineData(2, 320, 320, 64, 64, true, true)]      // SD 1.5 at 64² latents
    [InlineData(2, 1280, 1280, 16, 16, true, true)]
    [InlineData(2, 1280, 1280, 8, 8, false, false)]    // 128 positions: the transforms cost what the products save
    [InlineData(1, 4, 320, 64, 64, false, false)]      // conv_in: 4 channels
    [InlineData(1, 128, 3, 512, 512, false, false)]    // a decoder's conv_out: 3 channels
    [InlineData(1, 64, 64, 512, 512, true, false)]     // TAESD: its decode gains in fp32 only
    [InlineData(1, 128, 128, 256, 256, true, true)]    // ddpm-cat-256's first level
    public void WorthwhileWhereMeasuredFaster(long n, long cin, long cout, long h, long w, bool fp32, bool bf16)
    {
        Assert.Equal(fp32, WinogradConvolution.Worthwhile(ScalarType.Float32, n, cin, cout, h, w));
        Assert.Equal(bf16, WinogradConvolution.Worthwhile(ScalarType.BFloat16, n, cin, cout, h, w));
    }

    [Fact]
    public void LoRACompatibleConvRunsIt()
    {
        if (!CpuHas("avx512f")) return;
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var conv = new LoRACompatibleConv(48, 64, 3, padding: 1);
        using var g = new Generator(35);
        var x = torch.randn([2, 48, 16, 16], generator: g);
        Assert.True(WinogradConvolution.Worthwhile(ScalarType.Float32, 2, 48, 64, 16, 16));
        var got = conv.forward(x);
        var expected = Float64Conv(x, conv.Weight, conv.Bias);
        double diff = Tol.MaxAbsDiff(got.to(ScalarType.Float64), expected);
        Assert.True(diff < 2e-5, $"max |diff| {diff}");
    }

    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.equal(b).all().item<bool>();

    [Theory]
    [InlineData(ScalarType.Float32, true)]
    [InlineData(ScalarType.Float32, false)]
    [InlineData(ScalarType.BFloat16, true)]
    public void RunIntoAGivenTensorIsRunBitForBit(ScalarType dtype, bool cl)
    {
        if (!CpuHas(dtype == ScalarType.BFloat16 ? ["avx512f", "avx512_bf16"] : ["avx512f"])) return;
        using var scope = torch.NewDisposeScope();
        var (x, k, b) = Operands(2, 96, 40, 16, 24, true, 36, dtype, cl, cl);
        var expected = WinogradConvolution.TryRun(x, k, b)!;
        var output = NativeKernels.EmptyOutput(2, 40, 16, 24, cl, x);
        var untouched = x.clone();
        WinogradConvolution.RunInto(x, k, b, output);
        Assert.True(Same(expected, output));
        Assert.True(Same(untouched, x));
    }

    /// <summary>
    /// A layer of half its input's channels (or fewer) written over its own input, as the VAE decoder's channel-halving
    /// ResnetBlock2D runs: the same values as into fresh memory, whole and in bands of one tile row across 2 images, fp32
    /// F(2×2) and F(4×4) and bf16 in chunks of output channels (where the chunks would otherwise go outside the bands).
    /// </summary>
    [Theory]
    [InlineData(ScalarType.Float32, 96, 48, 16, 40)]    // F(2×2, 3×3): 640 positions
    [InlineData(ScalarType.Float32, 96, 40, 32, 40)]    // F(4×4, 3×3): 2560 positions; fewer than half the channels
    [InlineData(ScalarType.BFloat16, 96, 48, 16, 40)]   // 3 chunks of 16 output channels in the small bands
    public void RunIntoItsOwnInputIsRunBitForBit(ScalarType dtype, long cin, long cout, long h, long w)
    {
        if (!CpuHas(dtype == ScalarType.BFloat16 ? ["avx512f", "avx512_bf16"] : ["avx512f"])) return;
        using var scope = torch.NewDisposeScope();
        var (x0, k, b) = Operands(2, cin, cout, h, w, true, 37, dtype, true, true);
        int tile = WinogradConvolution.Tile(dtype, 2, cin, cout, h, w);
        Assert.Equal(dtype == ScalarType.Float32 && h == 32 ? 4 : 2, tile);
        foreach (long band in new[] { WinogradConvolution.BandBytes, 16L * 16 * cin * x0.ElementSize })
        {
            var expected = WinogradConvolution.Run(x0, k, b, band, tile);
            var x = Layers.ToChannelsLast(x0.contiguous());
            var into = Layers.ChannelsLastIn(x, cout, 0);
            Assert.True(WinogradConvolution.OverwritesInput(x, into));
            WinogradConvolution.RunInto(x, k, b, into, band);
            Assert.True(Same(expected, into), $"band {band}: max |diff| {Tol.MaxAbsDiff(expected.to(ScalarType.Float64), into.to(ScalarType.Float64))}");
        }
    }

    [Fact]
    public void RunIntoRefusesOtherOverlapsAndShapes()
    {
        if (!CpuHas("avx512f")) return;
        using var scope = torch.NewDisposeScope();
        var (x, k, b) = Operands(1, 96, 48, 16, 16, true, 38, ScalarType.Float32, true, true);
        // more than half the channels over the input
        var (_, wide, wideBias) = Operands(1, 96, 64, 16, 16, true, 38, ScalarType.Float32, true, true);
        var ex = Assert.Throws<ArgumentException>(() => WinogradConvolution.RunInto(x, wide, wideBias, Layers.ChannelsLastIn(x, 64, 0)));
        Assert.Contains("overlaps the input (1, 96, 16, 16)", ex.Message);
        // half the channels, but not from the input's start
        var shifted = Layers.ChannelsLastIn(x, 48, 48);
        ex = Assert.Throws<ArgumentException>(() => WinogradConvolution.RunInto(x, k, b, shifted));
        Assert.Equal("Winograd convolution: the output (1, 48, 16, 16) overlaps the input (1, 96, 16, 16) other than from its start with at most half "
                     + "its channels, both dense channels-last", ex.Message);
        // an NCHW input's memory
        var nchw = x.contiguous();
        ex = Assert.Throws<ArgumentException>(() => WinogradConvolution.RunInto(nchw, k, b, nchw.flatten()[..(48 * 256)].view(1, 48, 16, 16)));
        Assert.Equal("Winograd convolution: the output (1, 48, 16, 16) overlaps the input (1, 96, 16, 16) other than from its start with at most half "
                     + "its channels, both dense channels-last", ex.Message);
        // an output of the wrong shape or dtype
        ex = Assert.Throws<ArgumentException>(() => WinogradConvolution.RunInto(x, k, b, torch.empty(1, 48, 16, 8)));
        Assert.Contains("the output (1, 48, 16, 8) Float32 does not fit", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => WinogradConvolution.RunInto(x, k, b, torch.empty(1, 48, 16, 16, ScalarType.Float64)));
        Assert.Equal("Winograd convolution: the output (1, 48, 16, 16) Float64 does not fit x (1, 96, 16, 16) Float32 and weight (48, 96, 3, 3)", ex.Message);
        // and where the path does not pay: 8 input channels
        var (small, smallK, smallB) = Operands(1, 8, 8, 16, 16, true, 38, ScalarType.Float32, true, true);
        ex = Assert.Throws<ArgumentException>(() => WinogradConvolution.RunInto(small, smallK, smallB, torch.empty(1, 8, 16, 16)));
        Assert.Equal("Winograd convolution: not applicable to x (1, 8, 16, 16) Float32 and weight (8, 8, 3, 3) Float32: "
                     + "too small to pay (at least 32 input and output channels and 256 output positions)", ex.Message);
    }
}
