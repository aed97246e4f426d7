using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Runtime;

/// <summary>
/// <c>silu(group_norm(x + add))</c> (or without the SiLU) in one kernel where it applies (build/native/group_norm.c in
/// <see cref="NativeKernels"/>' library), for the ResNet blocks' <c>h + temb</c>, <c>norm2</c>, <c>silu</c> and
/// <c>norm1</c>, <c>silu</c>: two passes over the activation (the statistics, then the normalisation) where libtorch's
/// ops take seven. Statistics in double (sums of fp32 runs), the normalisation and SiLU in fp32, rounded once to the
/// output dtype (libtorch rounds after each op in bf16): fp32 results agree with libtorch's ops to fp32 rounding, bf16
/// ones to bf16 rounding.
/// <para>Used where: a CPU tensor of bf16 (with AVX512-BF16) or fp32 (with AVX-512 F), x (N, C, H, W) contiguous or
/// channels-last; weight and bias (C) of its dtype, or none; add (N or 1, C) or (N or 1, C, 1, 1) of its dtype with
/// contiguous channels, or none; no gradient wanted; <c>DIFFUSERS_SHARP_NO_FUSED_GROUP_NORM</c> unset. The result has
/// x's layout.</para>
/// </summary>
public static class FusedGroupNorm
{
    /// <summary>The environment variable that turns the fused kernel off (libtorch's ops everywhere).</summary>
    public const string OptOutVariable = "DIFFUSERS_SHARP_NO_FUSED_GROUP_NORM";

    private static readonly NativeKernels.Switch Kernel = new(OptOutVariable);

    /// <summary>What the fused kernel can run on this machine: "bf16, fp32", "fp32", or why it is not used.</summary>
    public static string Status => Kernel.Status;

    /// <summary>True when <see cref="Run"/> takes these tensors (see the class summary).</summary>
    public static bool Applies(Tensor x, Tensor? add, Tensor? weight, Tensor? bias)
    {
        var dtype = x.dtype;
        if (!Kernel.Supports(dtype) || x.device_type != DeviceType.CPU || x.dim() != 4 || x.numel() == 0) return false;
        if (torch.is_grad_enabled() && (x.requires_grad || weight?.requires_grad == true || bias?.requires_grad == true
                                        || add?.requires_grad == true)) return false;
        if (!x.is_contiguous() && !NativeKernels.IsDenseChannelsLast(x)) return false;
        long c = x.shape[1];
        foreach (var p in new[] { weight, bias })
            if (p is not null && (p.dtype != dtype || p.device_type != DeviceType.CPU || p.numel() != c || !p.is_contiguous()))
                return false;
        if (add is not null)
        {
            if (add.dtype != dtype || add.device_type != DeviceType.CPU) return false;
            if (!(add.dim() == 2 || (add.dim() == 4 && add.shape[2] == 1 && add.shape[3] == 1))) return false;
            if (add.shape[1] != c || (add.shape[0] != 1 && add.shape[0] != x.shape[0]) || (c > 1 && add.stride(1) != 1)) return false;
        }
        return true;
    }

    /// <summary>
    /// <c>silu(group_norm(x + add, groups, weight, bias, eps))</c>, or without the SiLU; a new tensor in x's layout, or,
    /// with <paramref name="inPlace"/>, x itself overwritten (each value is read before it is written: the statistics
    /// pass comes first) and returned, for a caller that owns x and needs it no more. Only where <see cref="Applies"/>
    /// says yes (else an <see cref="ArgumentException"/>).
    /// </summary>
    public static unsafe Tensor Run(Tensor x, Tensor? add, long groups, Tensor? weight, Tensor? bias, double eps, bool silu,
        bool inPlace = false)
    {
        if (!Applies(x, add, weight, bias))
            throw new ArgumentException($"fused group norm: not applicable to x {NativeKernels.ShapeText(x)} {x.dtype} (add {(add is null ? "none" : NativeKernels.ShapeText(add))})");
        long n = x.shape[0], c = x.shape[1];
        if (groups <= 0 || c % groups != 0)
            throw new ArgumentException($"fused group norm: {c} channels do not split into {groups} groups");
        bool channelsLast = !x.is_contiguous();   // Applies: contiguous or channels-last
        var output = inPlace ? x : NativeKernels.EmptyOutput(n, c, x.shape[2], x.shape[3], channelsLast, x);
        var problem = new Problem
        {
            N = n, C = c, HW = x.shape[2] * x.shape[3], Groups = groups,
            ChannelsLast = channelsLast ? 1 : 0,
            AddStride = add is null || add.shape[0] == 1 ? 0 : add.stride(0),
            Eps = (float)eps,
            Silu = silu ? 1 : 0,
        };
        const string what = "fused group norm";
        var run = (delegate* unmanaged<Problem*, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, int, int, int>)NativeKernels.Export("dgn_group_norm");
        int rc = run(&problem, NativeKernels.DataPointer(x, what), add is null ? IntPtr.Zero : NativeKernels.DataPointer(add, what),
            weight is null ? IntPtr.Zero : NativeKernels.DataPointer(weight, what), bias is null ? IntPtr.Zero : NativeKernels.DataPointer(bias, what),
            NativeKernels.DataPointer(output, what), x.dtype == ScalarType.BFloat16 ? 1 : 0, NativeKernels.Threads);
        GC.KeepAlive(x); GC.KeepAlive(add); GC.KeepAlive(weight); GC.KeepAlive(bias);
        if (rc != 0 && inPlace) output = x.alias();   // Check disposes the output on failure: never the caller's x
        NativeKernels.Check(rc, output, what, "its statistics", $"x {NativeKernels.ShapeText(x)}, {groups} groups, eps {eps}");
        return output;
    }

    /// <summary><see cref="Run"/> where it applies, else null.</summary>
    public static Tensor? TryRun(Tensor x, Tensor? add, long groups, Tensor? weight, Tensor? bias, double eps, bool silu) =>
        Applies(x, add, weight, bias) ? Run(x, add, groups, weight, bias, eps, silu) : null;

    /// <summary>The C kernel's <c>dgn_problem</c> (build/native/group_norm.c).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Problem
    {
        public long N, C, HW, Groups, ChannelsLast, AddStride;
        public float Eps;
        public int Silu;
    }
}
