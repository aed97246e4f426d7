using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Runtime;

/// <summary>
/// GEGLU's gate, <c>h * gelu(gate)</c> with (h, gate) the two halves of the projection's last dimension (exact GELU), in
/// one kernel where it applies (build/native/geglu.c in <see cref="NativeKernels"/>' library): one pass where
/// libtorch's <c>gelu</c> and <c>mul</c> take five. libtorch's own erf (Abramowitz and Stegun 7.1.26) in fp32, rounded
/// once to the output dtype: fp32 agrees with libtorch's ops to fp32 rounding, bf16 to bf16 rounding.
/// <para>Used where: a contiguous CPU tensor of bf16 (with AVX512-BF16) or fp32 (with AVX-512 F) of at least one
/// dimension, its last one even; no gradient wanted; <c>DIFFUSERS_SHARP_NO_FUSED_GEGLU</c> unset. The result is
/// contiguous, the last dimension halved.</para>
/// </summary>
public static class FusedGeglu
{
    /// <summary>The environment variable that turns the fused kernel off (libtorch's ops everywhere).</summary>
    public const string OptOutVariable = "DIFFUSERS_SHARP_NO_FUSED_GEGLU";

    private static readonly NativeKernels.Switch Kernel = new(OptOutVariable);

    /// <summary>What the fused kernel can run on this machine: "bf16, fp32", "fp32", or why it is not used.</summary>
    public static string Status => Kernel.Status;

    /// <summary>
    /// <c>projected[..., :F] * gelu(projected[..., F:])</c> (F half the last dimension) by the fused kernel, or null where it
    /// does not apply (see the class summary); the caller owns the result.
    /// </summary>
    public static unsafe Tensor? TryRun(Tensor projected)
    {
        var dtype = projected.dtype;
        if (!Kernel.Supports(dtype) || projected.device_type != DeviceType.CPU || projected.dim() < 1) return null;
        long width = projected.shape[^1];
        if (width % 2 != 0 || projected.numel() == 0 || !projected.is_contiguous()) return null;
        if (torch.is_grad_enabled() && projected.requires_grad) return null;
        var shape = projected.shape.ToArray();
        shape[^1] = width / 2;
        var output = torch.empty(shape, dtype, projected.device);
        var problem = new Problem { Rows = projected.numel() / width, F = width / 2, InStride = width };
        const string what = "fused GEGLU";
        var run = (delegate* unmanaged<Problem*, IntPtr, IntPtr, int, int, int>)NativeKernels.Export("dgg_geglu");
        int rc = run(&problem, NativeKernels.DataPointer(projected, what), NativeKernels.DataPointer(output, what),
            dtype == ScalarType.BFloat16 ? 1 : 0, NativeKernels.Threads);
        GC.KeepAlive(projected);
        NativeKernels.Check(rc, output, what, "nothing (it allocates none)", string.Join(", ", projected.shape));
        return output;
    }

    /// <summary>The C kernel's <c>dgg_problem</c> (build/native/geglu.c).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Problem
    {
        public long Rows, F, InStride;
    }
}
