using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Runtime;

/// <summary>
/// Our CPU kernels' library, <c>libdiffusers_kernels.so</c> (prebuilt from build/native: x86-64 Linux, AVX-512; bf16
/// needs AVX512-BF16): loaded once, with libtorch's OpenMP runtime (the bundled libgomp's <c>GOMP_parallel</c>) handed
/// to it, so that the kernels' threads are libtorch's own team: with threads of their own, libtorch's workers, still
/// spinning after the previous op, took the cores from them (the 32² self-attention 24 ms instead of 17). Without that
/// runtime the kernels are not used. <see cref="FusedAttention"/>, <see cref="FusedGroupNorm"/>, <see cref="FusedGeglu"/>
/// and <see cref="WinogradConvolution"/> call it; each has its own opt-out.
/// </summary>
public static class NativeKernels
{
    /// <summary>The library's file name (build/native/linux-x64; shipped in the package's runtimes/linux-x64/native/).</summary>
    public const string LibraryFile = "libdiffusers_kernels.so";

    private static readonly Lazy<Library> Native = new(Load);

    /// <summary>What the kernels can run on this machine: "bf16, fp32", "fp32 (no AVX512-BF16)", or why they are not used.</summary>
    public static string Status => Native.Value.Status;

    /// <summary>True when the kernels run <paramref name="dtype"/> on this machine.</summary>
    public static bool Supports(ScalarType dtype) => dtype switch
    {
        ScalarType.BFloat16 => Native.Value.Level >= 2,
        ScalarType.Float32 => Native.Value.Level >= 1,
        _ => false,
    };

    /// <summary>The library's entry point <paramref name="name"/>; only after <see cref="Supports"/> said yes.</summary>
    internal static IntPtr Export(string name) => Native.Value.Exports.TryGetValue(name, out var p)
        ? p
        : throw new InvalidOperationException($"{LibraryFile} has no entry point {name}");

    /// <summary>
    /// One kernel's on/off state: its opt-out variable (any value but empty or "0" turns it off, read once), then what the
    /// library can run. Each <c>Fused*</c> class holds one.
    /// </summary>
    internal sealed class Switch(string optOutVariable)
    {
        private readonly bool _off = NativeSetup.OptedOut(optOutVariable);

        /// <summary>"off (VARIABLE)" when opted out, else <see cref="NativeKernels.Status"/>.</summary>
        public string Status => _off ? $"off ({optOutVariable})" : NativeKernels.Status;

        /// <summary>True when the kernel runs <paramref name="dtype"/> here and is not opted out.</summary>
        public bool Supports(ScalarType dtype) => !_off && NativeKernels.Supports(dtype);
    }

    /// <summary>The threads a kernel call runs on: libtorch's (at least one).</summary>
    internal static int Threads => Math.Max(1, torch.get_num_threads());

    /// <summary>
    /// A new uninitialised (N, C, H, W) tensor of <paramref name="like"/>'s dtype and device for a kernel's output:
    /// contiguous, or with channels-last strides (an NHWC tensor seen through a permuted view, which keeps the memory, so
    /// no second handle is left to the finaliser).
    /// </summary>
    internal static Tensor EmptyOutput(long n, long c, long h, long w, bool channelsLast, Tensor like)
    {
        if (!channelsLast) return torch.empty(new[] { n, c, h, w }, like.dtype, like.device);
        using var nhwc = torch.empty(new[] { n, h, w, c }, like.dtype, like.device);
        return nhwc.permute(0, 3, 1, 2);
    }

    /// <summary>
    /// The operands every CPU 3×3 convolution path of ours takes (<see cref="WinogradConvolution"/>,
    /// <see cref="Im2ColConvolution"/>): a non-empty CPU input (N, C, H, W), contiguous or channels-last; a CPU weight
    /// [O, C, 3, 3] of its dtype; a CPU bias (O) of its dtype or none; no gradient wanted. Each path adds its own dtypes.
    /// </summary>
    internal static bool IsCpuConv3x3(Tensor x, Tensor weight, Tensor? bias)
    {
        var dtype = x.dtype;
        if (x.device_type != DeviceType.CPU || x.dim() != 4 || x.numel() == 0) return false;
        if (weight.dtype != dtype || weight.device_type != DeviceType.CPU || weight.dim() != 4
            || weight.shape[1] != x.shape[1] || weight.shape[2] != 3 || weight.shape[3] != 3) return false;
        if (bias is not null && (bias.dtype != dtype || bias.device_type != DeviceType.CPU || bias.dim() != 1
                                 || bias.shape[0] != weight.shape[0])) return false;
        if (torch.is_grad_enabled() && (x.requires_grad || weight.requires_grad || bias?.requires_grad == true)) return false;
        return x.is_contiguous() || x.stride(1) == 1;
    }

    /// <summary>A 4-D (N, C, H, W) laid out densely as (N, H, W, C): channels-last strides (size-1 dimensions' strides are free).</summary>
    internal static bool IsDenseChannelsLast(Tensor x)
    {
        if (x.dim() != 4) return false;
        long c = x.shape[1], h = x.shape[2], w = x.shape[3];
        return (c == 1 || x.stride(1) == 1) && (w == 1 || x.stride(3) == c) && (h == 1 || x.stride(2) == w * c)
               && (x.shape[0] == 1 || x.stride(0) == h * w * c);
    }

    /// <summary>"(d0, d1, ...)": a tensor's shape for messages.</summary>
    internal static string ShapeText(Tensor t) => $"({string.Join(", ", t.shape)})";

    /// <summary>
    /// A kernel call's return code: 0 returns; otherwise <paramref name="output"/> (where given) is disposed and the call fails with
    /// "<paramref name="what"/>: out of memory for <paramref name="memoryFor"/>" (-2) or "<paramref name="what"/>: the kernel
    /// refused the problem (<paramref name="problem"/>, code N)" (anything else).
    /// </summary>
    internal static void Check(int rc, Tensor? output, string what, string memoryFor, string problem)
    {
        if (rc == 0) return;
        output?.Dispose();
        throw new InvalidOperationException(rc == -2
            ? $"{what}: out of memory for {memoryFor}"
            : $"{what}: the kernel refused the problem ({problem}, code {rc})");
    }

    /// <summary>A CPU tensor's data pointer (its storage offset applied).</summary>
    internal static IntPtr DataPointer(Tensor t, string what)
    {
        IntPtr p = THSTensor_data(t.Handle);
        if (p == IntPtr.Zero) throw new InvalidOperationException($"{what}: libtorch gave no data pointer for a tensor");
        return p;
    }

    [DllImport("LibTorchSharp")]
    private static extern IntPtr THSTensor_data(IntPtr handle);

    private sealed class Library
    {
        public required int Level { get; init; }          // 0: not usable, 1: fp32, 2: fp32 and bf16
        public required string Status { get; init; }
        public Dictionary<string, IntPtr> Exports { get; init; } = new();
    }

    private static readonly string[] EntryPoints = ["dk_supported", "dk_set_openmp", "dsa_attention", "dgn_group_norm", "dgg_geglu", "dwg_weights", "dwg_input", "dwg_output"];

    private static unsafe Library Load()
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
            return new Library { Level = 0, Status = "not built for this platform (linux-x64 only)" };
        // libtorch must be in the process to be found: a first use before any tensor (Status, say) loads it, as the
        // first tensor would, rather than finding nothing and turning the kernels off for the whole process
        torch.TryInitializeDeviceType(DeviceType.CPU);
        var torchHandle = NativeSetup.LibTorchHandle();
        if (torchHandle == IntPtr.Zero
            || !NativeLibrary.TryGetExport(torchHandle, "GOMP_parallel", out var parallel)
            || !NativeLibrary.TryGetExport(torchHandle, "omp_get_thread_num", out var threadNum)
            || !NativeLibrary.TryGetExport(torchHandle, "omp_get_num_threads", out var numThreads))
            return new Library { Level = 0, Status = "not used (libtorch's OpenMP runtime not found)" };
        foreach (var path in NativeSetup.NativeCandidates(LibraryFile).Distinct())
        {
            if (!File.Exists(path) || !NativeLibrary.TryLoad(path, out var handle)) continue;
            var exports = new Dictionary<string, IntPtr>();
            foreach (var name in EntryPoints)
            {
                if (!NativeLibrary.TryGetExport(handle, name, out var p))
                    return new Library { Level = 0, Status = $"not used ({path} lacks its entry point {name})" };
                exports[name] = p;
            }
            int level = ((delegate* unmanaged<int>)exports["dk_supported"])();
            ((delegate* unmanaged<IntPtr, IntPtr, IntPtr, void>)exports["dk_set_openmp"])(parallel, threadNum, numThreads);
            return new Library
            {
                Level = level,
                Status = level switch { 2 => "bf16, fp32", 1 => "fp32 (no AVX512-BF16)", _ => "not used (no AVX-512)" },
                Exports = exports,
            };
        }
        return new Library { Level = 0, Status = $"not used ({LibraryFile} not found)" };
    }
}
