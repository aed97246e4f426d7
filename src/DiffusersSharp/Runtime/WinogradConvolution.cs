using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Runtime;

/// <summary>
/// 3×3 convolutions of stride 1 and padding 1 by Winograd's F(2×2, 3×3) (build/native/winograd.c in
/// <see cref="NativeKernels"/>' library, after Lavin and Gray 2016): the kernels and 4×4 input tiles are transformed,
/// multiplied position by position over channels in 16 matrix products (libtorch's <c>bmm</c>: MKL in fp32, oneDNN in
/// bf16), and the products transformed back into 2×2 output tiles plus the bias. That is 2.25× fewer multiply-adds than
/// the direct convolution oneDNN runs, for three memory-bound transforms; on the UNets' and VAE decoders' wide layers it
/// is the faster of the two (see <see cref="Worthwhile"/>). Large convolutions run in bands of tile rows, and wide bf16 ones
/// in chunks of output channels, so that the transformed operands stay small (<see cref="BandBytes"/>): the kernels are
/// transformed on every call (a cache of them would take 16/9 of the weights), and a whole U of SD's 2560 -> 1280
/// up-block convolutions would be 105 MB, fresh memory on a model's first step (docs/BENCHMARKS.md).
/// <para>fp32 layers of many positions run F(4×4, 3×3) instead (build/native/winograd4.c; <see cref="Tile"/>): 6×6 input
/// tiles give 4×4 outputs through 36 products, 4× fewer multiply-adds than the direct convolution.</para>
/// <para>Numbers: the transforms compute in fp32; fp32 results agree with the direct convolution to fp32 rounding
/// (the transforms add a few roundings of the products' size), bf16 ones to bf16 rounding (the transformed tiles and
/// products are rounded to bf16, as the direct convolution rounds its inputs; measured in the tests against a float64
/// reference). F(4×4, 3×3) rounds more: within 2-3.4e-5 of a float64 convolution on unit-scale outputs, 2-3× libtorch's
/// channels-last direct convolution's error.</para>
/// <para>Used where: a CPU input (N, C, H, W) of bf16 (with AVX512-BF16) or fp32 (with AVX-512 F), contiguous or
/// channels-last, H and W even (any for the upsampled form, <see cref="RunUpsampled(Tensor, Tensor, Tensor?)"/>); a weight [O, C, 3, 3] (any
/// strides) and bias (O) or none of its dtype; stride 1, padding 1; no gradient wanted; the shape worth it
/// (<see cref="Worthwhile"/>); <c>DIFFUSERS_SHARP_NO_WINOGRAD</c> unset. The result has the input's layout, as libtorch's
/// convolution's.</para>
/// </summary>
public static class WinogradConvolution
{
    /// <summary>The environment variable that turns the Winograd path off (libtorch's convolution everywhere).</summary>
    public const string OptOutVariable = "DIFFUSERS_SHARP_NO_WINOGRAD";

    /// <summary>The most memory the transformed inputs and products of one band take, and in bf16 the transformed kernels
    /// of one chunk of output channels (bytes; at least one tile row and 16 channels).</summary>
    public const long BandBytes = 16L << 20;

    private static readonly NativeKernels.Switch Kernel = new(OptOutVariable);

    /// <summary>What the kernel can run on this machine: "bf16, fp32", "fp32", or why it is not used.</summary>
    public static string Status => Kernel.Status;

    /// <summary>
    /// True when the Winograd path is expected to beat the direct convolution: at least 32 input and output channels and
    /// 256 output positions (batch × H × W). Measured (docs/BENCHMARKS.md): SD 1.5's 16² layers at batch 2 (512
    /// positions) run in 0.55-0.63 of the direct time, its 8² ones (128) in 0.87-1.05 in fp32. Below that the transforms
    /// (memory-bound, the kernel's repeated on every call) cost about what the multiply-adds save. In bf16 also more than 64
    /// input channels: TAESD's 64-channel layers ran in 0.83-0.92 of the direct time alone, but its whole decode
    /// (1×4×64² → 512², <c>bench -- tiny-vae</c>, alternating) was no faster (305-383 against 290-312 ms), and SD-Turbo's
    /// one-shot decode slower (0.31-0.40 against 0.25-0.28 s; its RSS grew 36 MB instead of 14, but with 2-4 MB bands,
    /// which grew it about as little as before, it still took 0.32-0.40 s); in fp32 the decode took 0.85 of the time
    /// (493-511 against 576-586 ms).
    /// </summary>
    public static bool Worthwhile(ScalarType dtype, long batch, long inChannels, long outChannels, long height, long width) =>
        inChannels >= 32 && outChannels >= 32 && batch * height * width >= 256 && (dtype != ScalarType.BFloat16 || inChannels > 64);

    /// <summary>
    /// <c>conv2d(x, weight, bias, stride 1, padding 1)</c> by the Winograd path where it applies and is worthwhile (see the
    /// class summary), else null; the caller owns the result.
    /// </summary>
    public static Tensor? TryRun(Tensor x, Tensor weight, Tensor? bias)
    {
        if (!Pays(x, weight, bias)) return null;
        return Run(x, weight, bias, BandBytes, Tile(x.dtype, x.shape[0], x.shape[1], weight.shape[0], x.shape[2], x.shape[3]));
    }

    /// <summary>True when <see cref="TryRun"/> runs these tensors: the Winograd path applies and is worthwhile.</summary>
    public static bool Pays(Tensor x, Tensor weight, Tensor? bias) =>
        Applies(x, weight, bias) && Worthwhile(x.dtype, x.shape[0], x.shape[1], weight.shape[0], x.shape[2], x.shape[3]);

    /// <summary>
    /// What <see cref="TryRun"/> computes, written into <paramref name="output"/> (N, O, H, W) instead of a new tensor: only
    /// where <see cref="Pays"/> says yes (else an <see cref="ArgumentException"/>). The output is x's dtype and device, NCHW
    /// with a unit W stride or channels-last with a unit C stride. It may not overlap x, with one exception that lets a
    /// layer halving the channels run in its input's memory (<see cref="OverwritesInput"/>): both dense channels-last,
    /// the output starting where x starts, with at most half x's channels. The bands then run in order, and each writes
    /// its rows only after its input rows are transformed, over input rows that no later band reads.
    /// </summary>
    /// <param name="bandBytes">as <see cref="Run"/>'s (the tests' smaller bands)</param>
    public static void RunInto(Tensor x, Tensor weight, Tensor? bias, Tensor output, long bandBytes = BandBytes)
    {
        if (!Pays(x, weight, bias)) throw NotApplicable(x, weight, bias, 2, upsample: false);
        long n = x.shape[0], h = x.shape[2], w = x.shape[3], cout = weight.shape[0];
        if (output.dtype != x.dtype || output.device_type != x.device_type || output.dim() != 4
            || output.shape[0] != n || output.shape[1] != cout || output.shape[2] != h || output.shape[3] != w)
            throw new ArgumentException($"Winograd convolution: the output {NativeKernels.ShapeText(output)} {output.dtype} does not fit " +
                                        $"x {NativeKernels.ShapeText(x)} {x.dtype} and weight {NativeKernels.ShapeText(weight)}");
        bool overwrites = Overlap(x, output);
        if (overwrites && !OverwritesInput(x, output))
            throw new ArgumentException($"Winograd convolution: the output {NativeKernels.ShapeText(output)} overlaps the input " +
                                        $"{NativeKernels.ShapeText(x)} other than from its start with at most half its channels, both dense channels-last");
        Convolve(x, weight, bias, bandBytes, upsample: false, Tile(x.dtype, n, x.shape[1], cout, h, w), output, bandsInOrder: overwrites);
    }

    /// <summary>
    /// True when <paramref name="output"/> lies in x's memory as <see cref="RunInto"/> allows: both dense channels-last
    /// (N, C, H, W) of one H × W, the output from x's first element, with at most half x's channels (then band b's rows of
    /// output cover at most the memory of input rows that bands after b no longer read).
    /// </summary>
    public static bool OverwritesInput(Tensor x, Tensor output) =>
        NativeKernels.IsDenseChannelsLast(x) && NativeKernels.IsDenseChannelsLast(output)
        && output.shape[0] == x.shape[0] && output.shape[2] == x.shape[2] && output.shape[3] == x.shape[3]
        && 2 * output.shape[1] <= x.shape[1] && x.dtype == output.dtype && x.device_type == DeviceType.CPU && output.device_type == DeviceType.CPU
        && NativeKernels.DataPointer(x, "Winograd convolution") == NativeKernels.DataPointer(output, "Winograd convolution");

    /// <summary>True when the memory spans of a and b (first to last element) intersect.</summary>
    private static bool Overlap(Tensor a, Tensor b)
    {
        static (long Start, long End) Span(Tensor t)
        {
            long start = (long)NativeKernels.DataPointer(t, "Winograd convolution"), extent = 1;
            for (int d = 0; d < t.dim(); d++) extent += (t.shape[d] - 1) * Math.Abs(t.stride(d));
            return (start, start + extent * t.ElementSize);
        }
        var (a0, a1) = Span(a);
        var (b0, b1) = Span(b);
        return a0 < b1 && b0 < a1;
    }

    /// <summary>
    /// <c>conv2d(interpolate(x, scale 2, nearest), weight, bias, stride 1, padding 1)</c> with the tile <see cref="Tile"/>
    /// chooses at the upsampled size, as <see cref="TryRun"/> does for the plain convolution: what the upsampling layers run
    /// where <see cref="PaysUpsampled"/> says yes (an <see cref="ArgumentException"/> where <see cref="AppliesUpsampled"/>
    /// does not). The caller owns the result.
    /// </summary>
    public static Tensor RunUpsampled(Tensor x, Tensor weight, Tensor? bias) =>
        RunUpsampled(x, weight, bias, BandBytes, Tile(x.dtype, x.shape[0], x.shape[1], weight.shape[0], 2 * x.shape[2], 2 * x.shape[3]));

    /// <summary>The most memory F(4×4, 3×3)'s transformed kernels U (36 × O × I fp32 values, made on every call) may take
    /// for <see cref="Tile"/> to choose it: SD 1.5's 1280-channel layers (236 MB and more) stay with F(2×2, 3×3) (105 MB).
    /// A 256 MB budget, which lets SD's 1280 → 1280 32² upsampler in (82-90 → 54-61 ms alone, in 32-64 MB bands), gave
    /// no faster fp32 step (4 alternating pairs: +0.9% on average, within the host's noise) for 131 MB more of a
    /// transient.</summary>
    public const long Tile4KernelBytes = 128L << 20;

    /// <summary>
    /// The output tile edge that <see cref="TryRun"/> and the upsampling layers use for a convolution with this output (batch
    /// × H × W): 4, F(4×4, 3×3) (4× fewer multiply-adds than the direct convolution, against 2.25×), in fp32 where H and W
    /// are multiples of 4, there are at least 2048 output positions and U fits <see cref="Tile4KernelBytes"/>; else 2. F(4×4,
    /// 3×3)'s transforms cost more per position, and its U is 36/16 of F(2×2, 3×3)'s, so it pays on many positions: measured
    /// (docs/BENCHMARKS.md), SD 1.5's 64² layers at batch 2 in 0.60-0.66 of F(2×2, 3×3)'s time, its 32² ones 0.80-0.96,
    /// its 16² ones 0.85-1.13, its 8² ones 1.3-1.4. Not bf16: there its rounding would be 2.0% of an output's rms (max
    /// 15%), against 0.50% for F(2×2, 3×3) and 0.17% for the direct convolution, and F(3×3, 3×3) would be 1.7%
    /// (<c>bench -- winograd-rounding</c>, a float64 simulation of the bf16 path's roundings, 640 input channels).
    /// </summary>
    public static int Tile(ScalarType dtype, long batch, long inChannels, long outChannels, long height, long width) =>
        TileApplies(4, dtype, height, width) && batch * height * width >= 2048 && 36 * inChannels * outChannels * 4 <= Tile4KernelBytes
            ? 4 : 2;

    /// <summary>
    /// True when <see cref="RunUpsampled(Tensor, Tensor, Tensor?)"/> takes these tensors (<see cref="AppliesUpsampled"/>) and pays at the upsampled
    /// size (<see cref="Worthwhile"/>): where <c>conv2d(interpolate(x, scale 2, nearest), weight, bias, stride 1, padding
    /// 1)</c>, diffusers' <c>Upsample2D</c>, should read x through the upsampling's index map (the 4× larger upsampled
    /// tensor never made).
    /// </summary>
    public static bool PaysUpsampled(Tensor x, Tensor weight, Tensor? bias) =>
        AppliesUpsampled(x, weight, bias) && Worthwhile(x.dtype, x.shape[0], x.shape[1], weight.shape[0], 2 * x.shape[2], 2 * x.shape[3]);

    /// <summary>True when the Winograd path takes these tensors, whatever their size (see the class summary).</summary>
    public static bool Applies(Tensor x, Tensor weight, Tensor? bias) =>
        AppliesUpsampled(x, weight, bias) && x.shape[2] % 2 == 0 && x.shape[3] % 2 == 0;

    /// <summary>True when <see cref="RunUpsampled(Tensor, Tensor, Tensor?)"/> takes these tensors: as <see cref="Applies"/>, any H and W.</summary>
    public static bool AppliesUpsampled(Tensor x, Tensor weight, Tensor? bias) =>
        Kernel.Supports(x.dtype) && NativeKernels.IsCpuConv3x3(x, weight, bias)
        && (bias is null || bias.stride(0) == 1);   // the kernel reads the bias as a plain array

    /// <summary>
    /// The Winograd convolution, in bands of at most <paramref name="bandBytes"/> of transformed operands (at least one
    /// tile row each), with output tiles of <paramref name="tile"/> (2: F(2×2, 3×3); 4: F(4×4, 3×3)); only where
    /// <see cref="Applies"/> and <see cref="TileApplies"/> say yes (else an <see cref="ArgumentException"/>). A new tensor
    /// in x's layout.
    /// </summary>
    public static Tensor Run(Tensor x, Tensor weight, Tensor? bias, long bandBytes, int tile = 2)
    {
        if (!Applies(x, weight, bias) || !TileApplies(tile, x.dtype, x.shape[2], x.shape[3]))
            throw NotApplicable(x, weight, bias, tile, upsample: false);
        return Convolve(x, weight, bias, bandBytes, upsample: false, tile, into: null, bandsInOrder: false);
    }

    /// <summary>
    /// The convolution of x upsampled ×2 by nearest neighbour (see <see cref="PaysUpsampled"/>), in bands as
    /// <see cref="Run"/>, with output tiles of <paramref name="tile"/>; only where <see cref="AppliesUpsampled"/> and
    /// <see cref="TileApplies"/> (at 2H × 2W) say yes (else an <see cref="ArgumentException"/>). A new tensor (N, O, 2H, 2W)
    /// in x's layout.
    /// </summary>
    public static Tensor RunUpsampled(Tensor x, Tensor weight, Tensor? bias, long bandBytes, int tile = 2)
    {
        if (!AppliesUpsampled(x, weight, bias) || !TileApplies(tile, x.dtype, 2 * x.shape[2], 2 * x.shape[3]))
            throw NotApplicable(x, weight, bias, tile, upsample: true);
        return Convolve(x, weight, bias, bandBytes, upsample: true, tile, into: null, bandsInOrder: false);
    }

    private static ArgumentException NotApplicable(Tensor x, Tensor weight, Tensor? bias, int tile, bool upsample) =>
        new($"Winograd convolution: not applicable to x {NativeKernels.ShapeText(x)} {x.dtype} and weight {NativeKernels.ShapeText(weight)} {weight.dtype}{(tile == 2 ? "" : $" with {tile}×{tile} output tiles")}: {WhyNot(x, weight, bias, tile, upsample)}");

    /// <summary>The first condition of <see cref="Applies"/> (or <see cref="AppliesUpsampled"/>), <see cref="TileApplies"/>
    /// and <see cref="Worthwhile"/> that these tensors fail, in words.</summary>
    private static string WhyNot(Tensor x, Tensor weight, Tensor? bias, int tile, bool upsample)
    {
        if (!Kernel.Supports(x.dtype)) return $"the kernel does not run {x.dtype} here (it runs: {Status})";
        if (!NativeKernels.IsCpuConv3x3(x, weight, bias))
            return "not a CPU 3×3 convolution of x's dtype and channels (x contiguous or channels-last, weight [O, C, 3, 3], bias [O], no gradient wanted)";
        if (bias is not null && bias.stride(0) != 1) return "the bias is not contiguous";
        if (!upsample && (x.shape[2] % 2 != 0 || x.shape[3] % 2 != 0)) return "its height and width must be even";
        int up = upsample ? 1 : 0;
        long h = x.shape[2] << up, w = x.shape[3] << up;
        if (!TileApplies(tile, x.dtype, h, w))
            return tile == 4 ? "those need Float32 and an output height and width that are multiples of 4" : "output tiles are 2 or 4";
        return $"too small to pay (at least 32 input and output channels and 256 output positions{(x.dtype == ScalarType.BFloat16 ? ", more than 64 input channels in BFloat16" : "")})";
    }

    /// <summary>True when output tiles of this edge apply to an output of H × W in this dtype: 2 always; 4 in fp32 where H
    /// and W are multiples of 4.</summary>
    public static bool TileApplies(int tile, ScalarType dtype, long height, long width) =>
        tile == 2 || (tile == 4 && dtype == ScalarType.Float32 && height % 4 == 0 && width % 4 == 0);

    /// <param name="into">the output where the caller gives one (it stays the caller's, also on a refusal), else null</param>
    /// <param name="bandsInOrder">each band whole (its input transformed once, all chunks of output channels) before the
    /// next: where the output overwrites the input (<see cref="RunInto"/>)</param>
    private static unsafe Tensor Convolve(Tensor x, Tensor weight, Tensor? bias, long bandBytes, bool upsample, int tile,
        Tensor? into, bool bandsInOrder)
    {
        int up = upsample ? 1 : 0;
        long n = x.shape[0], cin = x.shape[1], h = x.shape[2] << up, w = x.shape[3] << up, cout = weight.shape[0];
        bool channelsLast = !x.is_contiguous();   // Applies: contiguous or unit channel stride
        bool bf16 = x.dtype == ScalarType.BFloat16;
        const string what = "Winograd convolution";
        var output = into ?? NativeKernels.EmptyOutput(n, cout, h, w, channelsLast, x);
        var owned = into is null ? output : null;   // what a refusal disposes: never the caller's output
        var problem = new Problem
        {
            Batch = n, Cin = cin, Cout = cout, H = h, W = w,
            XsN = x.stride(0), XsC = x.stride(1), XsH = x.stride(2), XsW = x.stride(3),
            YsN = output.stride(0), YsC = output.stride(1), YsH = output.stride(2), YsW = output.stride(3),
            WsO = weight.stride(0), WsI = weight.stride(1), WsH = weight.stride(2), WsW = weight.stride(3),
            ChannelsLast = channelsLast ? 1 : 0,
            Bf16 = bf16 ? 1 : 0,
            Upsample = up,
            Tile = tile,
        };
        string shapes = $"x {NativeKernels.ShapeText(x)}, weight {NativeKernels.ShapeText(weight)}";
        const string memory = "nothing (it allocates none)";
        int threads = NativeKernels.Threads, rc;
        var weights = (delegate* unmanaged<Problem*, IntPtr, IntPtr, int, int>)NativeKernels.Export("dwg_weights");
        var input = (delegate* unmanaged<Problem*, IntPtr, IntPtr, long, long, int, int>)NativeKernels.Export("dwg_input");
        var outputs = (delegate* unmanaged<Problem*, IntPtr, IntPtr, IntPtr, long, long, int, int>)NativeKernels.Export("dwg_output");
        try
        {
            long elt = x.ElementSize;
            // bf16: output channels in chunks whose U fits the budget (multiples of 16, the kernels' vector width). Not fp32:
            // there MKL's products lose more on the narrower operands than the smaller U saves (SD's 2560 -> 1280 16²
            // convolution at batch 2: 57 ms whole, 71-77 ms in chunks; bf16 in chunks is as fast or faster, 1280 -> 1280
            // 16² at batch 1: 10.8 ms against 12.8-13.6 ms whole).
            long chunk = cout;
            long planes = (tile + 2) * (tile + 2);
            long uBytes = planes * cout * cin * elt;
            if (bf16 && uBytes > bandBytes)
            {
                long pieces = (uBytes + bandBytes - 1) / bandBytes;
                chunk = Math.Min(cout, Math.Max(16, ((cout + pieces - 1) / pieces + 15) / 16 * 16));
            }
            long chunks = (cout + chunk - 1) / chunk;
            long tw = w / tile, rows = n * (h / tile);
            long bytesPerRow = tw * planes * (cin + chunk) * elt;
            long band = Math.Clamp(bandBytes / Math.Max(1, bytesPerRow), 1, rows);
            long bands = (rows + band - 1) / band;
            IntPtr xp = NativeKernels.DataPointer(x, what), yp = NativeKernels.DataPointer(output, what);
            IntPtr wp = NativeKernels.DataPointer(weight, what);
            IntPtr bp = bias is null ? IntPtr.Zero : NativeKernels.DataPointer(bias, what);
            // Where both are split, the one transformed again for each piece of the other is the cheaper: U (once per
            // band) or V (once per chunk).
            bool bandsOutside = bandsInOrder || chunks == 1 || bands == 1 || (bands - 1) * cout <= (chunks - 1) * rows * tw;
            Tensor? u = null, v = null;
            long uChunk = -1, vBand = -1;   // which chunk's U and which band's V are held
            try
            {
                for (long outer = 0; outer < (bandsOutside ? bands : chunks); outer++)
                    for (long inner = 0; inner < (bandsOutside ? chunks : bands); inner++)
                    {
                        long bi = bandsOutside ? outer : inner, ci = bandsOutside ? inner : outer;
                        long g0 = bi * band, g1 = Math.Min(rows, g0 + band), tiles = (g1 - g0) * tw;
                        long c0 = ci * chunk, cn = Math.Min(cout, c0 + chunk) - c0;
                        // the chunk as a problem of its own: its weights, bias and output channels
                        var sub = problem;
                        sub.Cout = cn;
                        if (uChunk != ci)
                        {
                            u?.Dispose();
                            u = torch.empty(new[] { planes, cn, cin }, x.dtype, x.device);
                            rc = weights(&sub, wp + (nint)(c0 * weight.stride(0) * elt), NativeKernels.DataPointer(u, what), threads);
                            NativeKernels.Check(rc, owned, what, memory, shapes);
                            uChunk = ci;
                        }
                        if (vBand != bi)
                        {
                            v?.Dispose();
                            v = torch.empty(channelsLast ? new[] { planes, tiles, cin } : new[] { planes, cin, tiles }, x.dtype, x.device);
                            rc = input(&problem, xp, NativeKernels.DataPointer(v, what), g0, g1, threads);
                            NativeKernels.Check(rc, owned, what, memory, shapes);
                            vBand = bi;
                        }
                        using var ut = channelsLast ? u!.transpose(1, 2) : null;
                        using var m = channelsLast ? torch.bmm(v!, ut!) : torch.bmm(u!, v!);
                        rc = outputs(&sub, NativeKernels.DataPointer(m, what), bp == IntPtr.Zero ? bp : bp + (nint)(c0 * elt),
                                     yp + (nint)(c0 * output.stride(1) * elt), g0, g1, threads);
                        NativeKernels.Check(rc, owned, what, memory, shapes);
                    }
            }
            finally
            {
                u?.Dispose();
                v?.Dispose();
            }
        }
        catch
        {
            owned?.Dispose();   // a second time after a refusal (Check disposes it): harmless
            throw;
        }
        GC.KeepAlive(x);
        GC.KeepAlive(weight);
        GC.KeepAlive(bias);
        return output;
    }

    /// <summary>The C kernel's <c>dwg_problem</c> (build/native/winograd.h).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Problem
    {
        public long Batch, Cin, Cout, H, W;
        public long XsN, XsC, XsH, XsW;
        public long YsN, YsC, YsH, YsW;
        public long WsO, WsI, WsH, WsW;
        public int ChannelsLast, Bf16, Upsample, Tile;
    }
}
