using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Runtime;

/// <summary>
/// <c>scaled_dot_product_attention</c> without a mask, computed by our own fused kernel where it applies
/// (build/native/flash_attention.c in <see cref="NativeKernels"/>' library: x86-64 Linux, AVX-512; bf16 needs
/// AVX512-BF16), else by libtorch's. libtorch's CPU flash kernel calls a GEMM per block of scores; with SD 1.x's 40-wide
/// heads (the 64×64 level, 4096 tokens) each score costs only 160 flops and the bookkeeping around those calls ran at half
/// the matmul rate. The fused kernel tiles both products in registers with the online softmax between them
/// (FlashAttention-2); numerics as libtorch's: fp32 scores, scale and softmax, bf16 probabilities for the second product
/// in bf16.
/// <para>Used where: a CPU tensor of bf16 (with AVX512-BF16) or fp32 (with AVX-512 F), q (B, H, L, D), k and v (B, H, S, D)
/// with a contiguous head dim (any other strides, such as the (B, L, H, D) memory <c>Attention</c> views as
/// (B, H, L, D)), D ≤ <see cref="MaxHeadDim"/> (even in bf16), no mask, no gradient wanted, and <c>DIFFUSERS_SHARP_NO_FUSED_ATTENTION</c>
/// unset. The result is (B, H, L, D), a view of (B, L, H, D) memory (what <c>Attention</c> transposes back for free).</para>
/// </summary>
public static class FusedAttention
{
    /// <summary>The environment variable that turns the fused kernel off (libtorch's kernel everywhere).</summary>
    public const string OptOutVariable = "DIFFUSERS_SHARP_NO_FUSED_ATTENTION";

    /// <summary>
    /// The largest head dim the kernel is used for (the C kernel takes 256): at 160 (SD 1.x's 16×16 level) libtorch's
    /// kernel was as fast or faster (bench -- attention-paths).
    /// </summary>
    public const long MaxHeadDim = 128;

    private static readonly NativeKernels.Switch Kernel = new(OptOutVariable);

    /// <summary>What the fused kernel can run on this machine: "bf16, fp32", "fp32", or why it is not used.</summary>
    public static string Status => Kernel.Status;

    /// <summary>True when the kernel runs <paramref name="dtype"/> on this machine (and is not opted out).</summary>
    public static bool Supports(ScalarType dtype) => Kernel.Supports(dtype);

    /// <summary>
    /// <c>softmax(q kᵀ / √D) v</c> with an optional additive or boolean <paramref name="mask"/>: the fused kernel where it
    /// applies (see the class summary), libtorch's <c>scaled_dot_product_attention</c> otherwise.
    /// </summary>
    public static Tensor ScaledDotProductAttention(Tensor q, Tensor k, Tensor v, Tensor? mask = null) =>
        (mask is null ? TryRun(q, k, v) : null) ?? nn.functional.scaled_dot_product_attention(q, k, v, mask, 0.0, false);

    /// <summary>The fused kernel's <c>softmax(q kᵀ / √D) v</c>, or null where it does not apply (see the class summary).</summary>
    public static unsafe Tensor? TryRun(Tensor q, Tensor k, Tensor v)
    {
        var dtype = q.dtype;
        if (!Supports(dtype) || k.dtype != dtype || v.dtype != dtype) return null;
        if (q.device_type != DeviceType.CPU || k.device_type != DeviceType.CPU || v.device_type != DeviceType.CPU) return null;
        if (q.dim() != 4 || k.dim() != 4 || v.dim() != 4) return null;
        long b = q.shape[0], h = q.shape[1], l = q.shape[2], d = q.shape[3], s = k.shape[2];
        if (k.shape[0] != b || k.shape[1] != h || k.shape[3] != d || !v.shape.SequenceEqual(k.shape)) return null;
        if (d > MaxHeadDim || (dtype == ScalarType.BFloat16 && d % 2 != 0) || b * h * l * s == 0) return null;
        if (torch.is_grad_enabled() && (q.requires_grad || k.requires_grad || v.requires_grad)) return null;
        if (q.stride(3) != 1 || k.stride(3) != 1 || v.stride(3) != 1) return null;

        var output = torch.empty(new[] { b, l, h, d }, dtype, q.device);
        var problem = new Problem
        {
            B = b, H = h, L = l, S = s, D = d,
            QSb = q.stride(0), QSh = q.stride(1), QSl = q.stride(2),
            KSb = k.stride(0), KSh = k.stride(1), KSs = k.stride(2),
            VSb = v.stride(0), VSh = v.stride(1), VSs = v.stride(2),
            OSb = l * h * d, OSh = d, OSl = h * d,
            Scale = (float)(1.0 / Math.Sqrt(d)),
        };
        int threads = NativeKernels.Threads;
        // work items are (batch, head, chunk of queries): at least four per thread, so the threads end together
        problem.QChunks = Math.Max(1, Math.Min(l, (4L * threads + b * h - 1) / (b * h)));
        var run = (delegate* unmanaged<Problem*, IntPtr, IntPtr, IntPtr, IntPtr, int, int, int>)NativeKernels.Export("dsa_attention");
        const string what = "fused attention";
        int rc = run(&problem, NativeKernels.DataPointer(q, what), NativeKernels.DataPointer(k, what), NativeKernels.DataPointer(v, what),
            NativeKernels.DataPointer(output, what), dtype == ScalarType.BFloat16 ? 1 : 0, threads);
        GC.KeepAlive(q); GC.KeepAlive(k); GC.KeepAlive(v);
        NativeKernels.Check(rc, output, what, "its block buffers", $"q {NativeKernels.ShapeText(q)}, k {NativeKernels.ShapeText(k)}");
        // the view keeps the memory; the caller owns only what it gets (no second handle left to the finaliser)
        var result = output.transpose(1, 2);
        output.Dispose();
        return result;
    }

    /// <summary>The C kernel's <c>dsa_problem</c> (build/native/flash_attention.c): sizes and element strides.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Problem
    {
        public long B, H, L, S, D;
        public long QSb, QSh, QSl, KSb, KSh, KSs, VSb, VSh, VSs, OSb, OSh, OSl;
        public float Scale;
        public long QChunks;
    }
}
