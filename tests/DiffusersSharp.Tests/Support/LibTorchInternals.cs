using System.Runtime.InteropServices;
using DiffusersSharp.Runtime;

namespace DiffusersSharp.Tests.Support;

/// <summary>
/// Test-only fault injection into the libtorch of this process (libtorch-cpu-linux-x64 2.10.0, whose
/// libtorch_cpu.so keeps its local symbols): puts libtorch into the state in which the native faults of
/// issue 11 were met, on any machine, so that the tests of their avoidance can fail.
/// <list type="bullet">
/// <item><see cref="ShrinkOneDnnCaches"/>: oneDNN's CPU description (Xbyak's <c>Cpu</c>, the function-local static
/// <c>dnnl::impl::cpu::x64::cpu()::cpu_</c>) reports 1-byte data caches, what Xbyak reads on an AMD CPU whose
/// CPUID leaf 0x8000001D (cache topology) is empty, as on virtual CPUs without TOPOEXT.</item>
/// <item><see cref="FailNnpackInit"/>: libtorch's cached result of <c>nnp_initialize()</c>
/// (<c>at::native::init_nnpack()::nnpack_status</c>) becomes "unsupported hardware".</item>
/// </list>
/// Each checks what it overwrites against the live process first and throws if the layout is not the expected one.
/// </summary>
internal static class LibTorchInternals
{
    private const string CpuObject = OneDnnCaches.CpuObject, CpuGuard = OneDnnCaches.CpuGuard;
    private const string NnpackStatus = "_ZZN2at6nativeL11init_nnpackEvE13nnpack_status";
    private const string NnpackGuard = "_ZGVZN2at6nativeL11init_nnpackEvE13nnpack_status";
    private const string GlobalContext = OneDnnCaches.GlobalContext;

    // Xbyak::util::Cpu's layout in this build (Runtime/OneDnnCaches)
    private const int CacheSizeOffset = OneDnnCaches.CacheSizeOffset, CoresSharingOffset = OneDnnCaches.CoresSharingOffset,
        CacheLevelsOffset = OneDnnCaches.CacheLevelsOffset;

    /// <summary>nnp_status_unsupported_hardware (nnpack.h).</summary>
    private const int NnpUnsupportedHardware = 51;

    /// <summary>Sets every data cache size of oneDNN's CPU description to 1 byte. oneDNN must have run once (its guard set).</summary>
    public static string ShrinkOneDnnCaches()
    {
        var (cpu, levels) = OneDnnCpu();
        string before = DescribeOneDnnCaches();
        for (int i = 0; i < levels; i++) Marshal.WriteInt32(cpu, CacheSizeOffset + 4 * i, 1);
        return $"{before} -> 1 byte";
    }

    /// <summary>Sets oneDNN's data cache sizes (bytes, one per level it has; scratch experiment).</summary>
    public static string SetOneDnnCaches(int[] bytes)
    {
        var (cpu, levels) = OneDnnCpu();
        for (int i = 0; i < levels && i < bytes.Length; i++) Marshal.WriteInt32(cpu, CacheSizeOffset + 4 * i, bytes[i]);
        return string.Join(", ", Enumerable.Range(0, levels).Select(i => Marshal.ReadInt32(cpu, CacheSizeOffset + 4 * i)));
    }

    /// <summary>oneDNN's data cache sizes and sharing as it reads them on this CPU (what its blocking heuristics see).</summary>
    public static string DescribeOneDnnCaches()
    {
        var (cpu, levels) = OneDnnCpu();
        var parts = Enumerable.Range(0, levels).Select(i =>
            $"L{i + 1} {Marshal.ReadInt32(cpu, CacheSizeOffset + 4 * i)} bytes / {Marshal.ReadInt32(cpu, CoresSharingOffset + 4 * i)} cores");
        return "oneDNN data caches: " + string.Join(", ", parts);
    }

    private static (IntPtr cpu, int levels) OneDnnCpu()
    {
        var (lib, symbols) = Locate(CpuObject, CpuGuard);
        IntPtr cpu = lib.Base + (nint)symbols[CpuObject], guard = lib.Base + (nint)symbols[CpuGuard];
        if (Marshal.ReadByte(guard) == 0) throw new InvalidOperationException("oneDNN's CPU description is not built yet (run a oneDNN convolution first)");
        int levels = Marshal.ReadInt32(cpu, CacheLevelsOffset);
        int l1 = Marshal.ReadInt32(cpu, CacheSizeOffset), sharing = Marshal.ReadInt32(cpu, CoresSharingOffset);
        int expected = CpuidL1DataCacheBytes();
        bool repaired = OneDnnCaches.RepairedL1 > 0 && l1 == OneDnnCaches.RepairedL1 * sharing;   // Runtime/OneDnnCaches' write
        if (levels is < 1 or > 10 || (l1 != expected && !repaired) || sharing is < 1 or > 1024)
            throw new InvalidOperationException($"unexpected layout of oneDNN's Cpu object in {lib.Path}: {levels} cache levels, " +
                $"L1 {l1} bytes (CPUID says {expected}), shared by {sharing}; update LibTorchInternals for this libtorch");
        return (cpu, levels);
    }

    /// <summary>Makes libtorch's NNPACK initialisation report "unsupported hardware" (whether or not it ran already).</summary>
    public static string FailNnpackInit()
    {
        var (lib, symbols) = Locate(NnpackStatus, NnpackGuard);
        IntPtr status = lib.Base + (nint)symbols[NnpackStatus], guard = lib.Base + (nint)symbols[NnpackGuard];
        int before = Marshal.ReadByte(guard) == 0 ? -1 : Marshal.ReadInt32(status);
        if (before is not (-1 or 0)) throw new InvalidOperationException($"unexpected NNPACK status {before} in {lib.Path}");
        Marshal.WriteInt32(status, NnpUnsupportedHardware);
        Marshal.WriteByte(guard, 1);
        return $"NNPACK init status {(before < 0 ? "not yet computed" : "success")} -> unsupported hardware";
    }

    /// <summary>libtorch's <c>at::globalContext().setUserEnabledNNPACK(on)</c>.</summary>
    public static void SetNnpackEnabled(bool on)
    {
        var h = LoadedLibTorch();
        var ctx = Marshal.GetDelegateForFunctionPointer<GlobalContextFn>(NativeLibrary.GetExport(h, GlobalContext))();
        Marshal.GetDelegateForFunctionPointer<SetFlagFn>(NativeLibrary.GetExport(h, "_ZN2at7Context20setUserEnabledNNPACKEb"))(ctx, on ? (byte)1 : (byte)0);
    }

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate IntPtr GlobalContextFn();
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate void SetFlagFn(IntPtr context, byte on);

    private sealed record Library(string Path, IntPtr Base);

    /// <summary>The loaded libtorch_cpu.so (path and load address, checked against dlsym) and the symbols' values.</summary>
    private static (Library lib, Dictionary<string, ulong> symbols) Locate(params string[] names)
    {
        var lib = MappedLibTorch();
        var symbols = ElfSymbols.Read(lib.Path, [.. names, GlobalContext]);
        foreach (var n in names.Append(GlobalContext))
            if (!symbols.ContainsKey(n)) throw new InvalidOperationException($"{lib.Path} has no symbol {n}");
        var exported = NativeLibrary.GetExport(LoadedLibTorch(), GlobalContext);
        if (exported != lib.Base + (nint)symbols[GlobalContext])
            throw new InvalidOperationException($"load address of {lib.Path} not understood ({exported:x} vs {lib.Base:x}+{symbols[GlobalContext]:x})");
        return (lib, symbols);
    }

    private static Library MappedLibTorch()
    {
        var (path, loadBase) = OneDnnCaches.MappedLibTorch();
        return new Library(path, loadBase);
    }

    private static IntPtr LoadedLibTorch()
    {
        const int RTLD_NOW = 2, RTLD_NOLOAD = 4;
        var h = dlopen("libtorch_cpu.so", RTLD_NOW | RTLD_NOLOAD);
        return h != IntPtr.Zero ? h : throw new InvalidOperationException("libtorch_cpu.so is not loaded");
    }

    private static int CpuidL1DataCacheBytes() => OneDnnCaches.CpuidL1DataCacheBytes();

    [DllImport("libc", EntryPoint = "dlopen")]
    private static extern IntPtr dlopen([MarshalAs(UnmanagedType.LPUTF8Str)] string file, int mode);
}
