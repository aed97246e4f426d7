using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Runtime;

/// <summary>
/// 3×3 convolutions (padding 1, stride 1 or 2) of few output positions as one matrix product: the 9 shifted copies of the
/// padded input laid side by side (im2col: 9 × the input, a few MB where this applies) times the kernel read in place as
/// an [O, 9·C] matrix. Where it applies the kernel is what costs: SD's 8² layers hold 30-59 MB of bf16 weights for 1-4
/// GFLOP, and oneDNN's direct convolution first copies the whole kernel into its blocked layout on every call (a
/// weight-sized buffer, fresh memory on a model's first step), then reads that copy; the matrix product reads the kernel
/// once. Measured (<c>bench -- winograd-paths</c>, docs/BENCHMARKS.md): SD's 1280 → 1280 8² convolution at batch 1
/// 3.64 ms against oneDNN's 6.28 (bf16) and 8.3 against 12.4 (fp32 NCHW), at batch 2 6.38 against 9.90 (bf16).
/// <para>Numbers: the same products summed in another order (libtorch's matmul: MKL in fp32, oneDNN in bf16 with fp32
/// accumulation): fp32 agrees with the direct convolution to fp32 rounding, bf16 to bf16 rounding of the output.</para>
/// <para>Used where: a CPU input (N, C, H, W) of fp32 or bf16, contiguous or channels-last; a weight [O, C, 3, 3] of its
/// dtype (read in place when its layout matches the input's: channels-last kernels for channels-last inputs, as the
/// bf16 models hold them; else copied once per call, as oneDNN does anyway) and a bias (O) or none; padding 1; stride 1
/// or 2; no gradient wanted; <see cref="Worthwhile"/>; <c>DIFFUSERS_SHARP_NO_IM2COL</c> unset. Larger layers go to
/// <see cref="WinogradConvolution"/> or oneDNN, for which the kernel's reorder is a small part of the work. The result has
/// the input's layout, as libtorch's convolution's.</para>
/// </summary>
public static class Im2ColConvolution
{
    /// <summary>The environment variable that turns this path off (libtorch's convolution for these layers).</summary>
    public const string OptOutVariable = "DIFFUSERS_SHARP_NO_IM2COL";

    private static readonly bool Off = NativeSetup.OptedOut(OptOutVariable);

    /// <summary>"on", or "off (DIFFUSERS_SHARP_NO_IM2COL)".</summary>
    public static string Status => Off ? $"off ({OptOutVariable})" : "on";

    /// <summary>
    /// True where the matrix product is expected to beat oneDNN: at least 32 input and output channels and fewer than 256
    /// output positions (batch × H × W of the output), the layers <see cref="WinogradConvolution.Worthwhile"/> leaves to
    /// oneDNN. At 256 and more (16² layers at batch 1) the two are even, and above, Winograd's fewer multiply-adds win.
    /// </summary>
    public static bool Worthwhile(long outputPositions, long inChannels, long outChannels) =>
        inChannels >= 32 && outChannels >= 32 && outputPositions < 256;

    /// <summary>True when this path takes these tensors and stride, whatever their size (see the class summary).</summary>
    public static bool Applies(Tensor x, Tensor weight, Tensor? bias, long stride) =>
        !Off && stride is (1 or 2) && x.dtype is (ScalarType.Float32 or ScalarType.BFloat16) && NativeKernels.IsCpuConv3x3(x, weight, bias);

    /// <summary>
    /// <c>conv2d(x, weight, bias, stride, padding 1)</c> by this path where it applies and is worthwhile, else null; the
    /// caller owns the result.
    /// </summary>
    public static Tensor? TryRun(Tensor x, Tensor weight, Tensor? bias, long stride)
    {
        if (!Applies(x, weight, bias, stride)) return null;
        long positions = x.shape[0] * OutputSize(x.shape[2], stride) * OutputSize(x.shape[3], stride);
        if (!Worthwhile(positions, x.shape[1], weight.shape[0])) return null;
        return Run(x, weight, bias, stride);
    }

    /// <summary>
    /// The convolution as one matrix product; only where <see cref="Applies"/> says yes (else an
    /// <see cref="ArgumentException"/>). A new tensor in x's layout.
    /// </summary>
    public static Tensor Run(Tensor x, Tensor weight, Tensor? bias, long stride)
    {
        if (!Applies(x, weight, bias, stride))
            throw new ArgumentException($"im2col convolution: not applicable to x {NativeKernels.ShapeText(x)} {x.dtype}, weight {NativeKernels.ShapeText(weight)} {weight.dtype}, stride {stride}");
        long n = x.shape[0], c = x.shape[1], ho = OutputSize(x.shape[2], stride), wo = OutputSize(x.shape[3], stride), o = weight.shape[0];
        if (x.is_contiguous())
        {
            // NCHW: [N, 9C, L] columns in (c, kh, kw) order, the order of the kernel's contiguous rows
            using var cols = nn.functional.unfold(x, 3, padding: 1, stride: stride);
            using var wmat = weight.reshape(o, 9 * c);
            using var y = torch.matmul(wmat, cols);
            if (bias is not null)
            {
                using var column = bias.view(o, 1);
                y.add_(column);
            }
            return y.view(n, o, ho, wo);
        }
        // channels-last: [N·Ho·Wo, 9C] rows in (kh, kw, c) order, the order of a channels-last kernel's rows
        using var nhwc = x.permute(0, 2, 3, 1);
        using var padded = nn.functional.pad(nhwc, [0, 0, 1, 1, 1, 1]);
        using var rowsH = padded.unfold(1, 3, stride);
        using var windows = rowsH.unfold(2, 3, stride);                // [N, Ho, Wo, C, kh, kw]
        using var ordered = windows.permute(0, 1, 2, 4, 5, 3);          // [N, Ho, Wo, kh, kw, C]
        using var rows = ordered.reshape(n * ho * wo, 9 * c);
        using var kernel = weight.permute(0, 2, 3, 1);
        using var kmat = kernel.reshape(o, 9 * c);
        using var kt = kmat.t();
        using var product = bias is not null ? torch.addmm(bias, rows, kt, 1, 1) : rows.mm(kt);
        using var image = product.view(n, ho, wo, o);
        return image.permute(0, 3, 1, 2);
    }

    private static long OutputSize(long size, long stride) => (size + 2 - 3) / stride + 1;
}
