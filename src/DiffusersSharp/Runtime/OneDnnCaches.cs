using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using TorchSharp;

namespace DiffusersSharp.Runtime;

/// <summary>
/// oneDNN's idea of the CPU's data caches, repaired where the CPU does not describe them.
/// <para>
/// oneDNN sizes its blocking from the caches Xbyak reads from CPUID: on AMD, leaf 0x8000001D. Virtual CPUs without
/// TOPOEXT leave that leaf empty, and Xbyak then records three levels of 1-byte caches (it does not fall back to the
/// older leaves 0x80000005/6, nor to oneDNN's own guess of 32 KB / 512 KB / 1 MB, which it takes only when it finds no
/// level at all). With 1-byte caches libtorch 2.10's oneDNN v3.7.1 computes some convolutions wrongly (float32 NCHW 3×3
/// convolutions of 20, 24, 40, 56 or 72 input channels, every bfloat16 NCHW 3×3 convolution, some channels-last 1×1
/// convolutions: every output row after the first off by whole units; 133-157 of 600 such shapes on this project's VM on
/// 2026-12-05, 0 of 2,816 once repaired) and can divide by zero (<see cref="Models.Layers"/>' <c>Pointwise</c>).
/// </para>
/// <para>
/// <see cref="EnsureRepaired"/> runs before the first pass of every model with convolutions (from its
/// <c>ConvKernelLayout</c>). Where CPUID's leaf 0x8000001D is empty on an AMD CPU, it makes oneDNN build its CPU
/// description (one tiny convolution), finds that object in the loaded <c>libtorch_cpu.so</c> by its symbol
/// (<c>dnnl::impl::cpu::x64::cpu()::cpu_</c>; libtorch keeps its local symbols), checks that it holds exactly what Xbyak
/// reads here (1..10 levels, each 1 byte, shared by 1..1024 cores) and writes the sizes the older CPUID leaves give
/// (L1 and L2, within sane bounds; else oneDNN's guesses) and oneDNN's 1 MB per core for L3 (the VM's leaf reports a
/// 508 MB L3). Anything unexpected (another libtorch, a stripped library, another layout) leaves oneDNN as it is,
/// and <see cref="OneDnnConvolutions"/> then checks convolutions and switches oneDNN off for models at risk.
/// Opt out: <c>DIFFUSERS_SHARP_NO_CACHE_REPAIR=1</c>.
/// </para>
/// </summary>
public static class OneDnnCaches
{
    internal const string CpuObject = "_ZZN4dnnl4impl3cpu3x643cpuEvE4cpu_";
    internal const string CpuGuard = "_ZGVZN4dnnl4impl3cpu3x643cpuEvE4cpu_";
    internal const string GlobalContext = "_ZN2at13globalContextEv";

    // Xbyak::util::Cpu (oneDNN v3.7.1): uint32_t dataCacheSize_[10] at 0x1c, coresSharignDataCache_[10] at 0x44,
    // dataCacheLevels_ at 0x6c (as platform::get_per_core_cache_size reads them in this build).
    internal const int CacheSizeOffset = 0x1c, CoresSharingOffset = 0x44, CacheLevelsOffset = 0x6c;

    /// <summary>
    /// What the repair looks up: oneDNN's CPU description (an object holding at least the fields read and written here, and
    /// not larger than a page), its guard (the Itanium ABI's 8-byte guard of a function-local static) and, in .dynsym, the
    /// export that checks the load address. The sizes let <see cref="ElfSymbols"/> skip the names of almost every symbol.
    /// </summary>
    internal static readonly ElfSymbol[] Symbols =
    [
        new(CpuObject, ElfSymbols.Object, MinSize: CacheLevelsOffset + 4, MaxSize: 4096),
        new(CpuGuard, ElfSymbols.Object, MinSize: 8, MaxSize: 8),
        new(GlobalContext, ElfSymbols.Function, Dynamic: true),
    ];

    private static readonly object Gate = new();
    private static volatile bool _done;

    /// <summary>What <see cref="EnsureRepaired"/> found and did (one line; `bench -- e2e-run` prints it).</summary>
    public static string Status { get; private set; } = "oneDNN caches: not looked at yet";

    /// <summary>The L1 size written by the repair (bytes), 0 where none was made.</summary>
    public static int RepairedL1 { get; private set; }

    /// <summary>Repairs oneDNN's cache sizes once per process where CPUID does not describe the caches (see the class).</summary>
    public static void EnsureRepaired()
    {
        if (_done) return;
        lock (Gate)
        {
            if (_done) return;
            try
            {
                Status = Repair();
            }
            catch (Exception e) when (e is IOException or InvalidDataException or InvalidOperationException or UnauthorizedAccessException
                                          or DllNotFoundException or EntryPointNotFoundException)
            {
                Status = $"oneDNN caches: not repaired ({e.Message})";
            }
            _done = true;
        }
    }

    private static string Repair()
    {
        if (!OperatingSystem.IsLinux() || !X86Base.IsSupported) return "oneDNN caches: not x86-64 Linux, left alone";
        if (X86Base.CpuId(0, 0).Ebx != 0x68747541) return "oneDNN caches: not an AMD CPU, left alone";   // "Auth"enticAMD
        int cpuidL1 = CpuidL1DataCacheBytes();
        if (cpuidL1 >= 1024) return $"oneDNN caches: CPUID describes them (L1 {cpuidL1 / 1024} KB)";
        if (NativeSetup.OptedOut("DIFFUSERS_SHARP_NO_CACHE_REPAIR")) return "oneDNN caches: CPUID describes none; repair opted out";

        // oneDNN builds its CPU description at its first use
        using (var noGrad = torch.no_grad())
        using (var x = torch.ones(1, 16, 2, 2))
        using (var w = torch.ones(16, 16, 1, 1))
        using (var y = torch.nn.functional.conv2d(x, w)) { }

        var (path, loadBase) = MappedLibTorch();
        var symbols = ElfSymbols.Read(path, Symbols);
        foreach (var name in new[] { CpuObject, CpuGuard, GlobalContext })
            if (!symbols.ContainsKey(name)) return $"oneDNN caches: {path} has no symbol {name}; left alone";
        IntPtr handle = NativeSetup.LibTorchHandle();
        if (handle == IntPtr.Zero || !NativeLibrary.TryGetExport(handle, GlobalContext, out var exported)
            || exported != loadBase + (nint)symbols[GlobalContext])
            return $"oneDNN caches: load address of {path} not understood; left alone";
        IntPtr cpu = loadBase + (nint)symbols[CpuObject], guard = loadBase + (nint)symbols[CpuGuard];
        if (Marshal.ReadByte(guard) == 0) return "oneDNN caches: oneDNN's CPU description is not built; left alone";
        int levels = Marshal.ReadInt32(cpu, CacheLevelsOffset);
        if (levels is < 1 or > 10) return $"oneDNN caches: unexpected layout ({levels} levels); left alone";
        for (int i = 0; i < levels; i++)
        {
            int size = Marshal.ReadInt32(cpu, CacheSizeOffset + 4 * i), sharing = Marshal.ReadInt32(cpu, CoresSharingOffset + 4 * i);
            if (size != cpuidL1 || sharing is < 1 or > 1024)
                return $"oneDNN caches: unexpected layout (level {i + 1}: {size} bytes shared by {sharing}); left alone";
        }

        // the older AMD leaves: 0x80000005 ECX[31:24] L1d KB, 0x80000006 ECX[31:16] L2 KB
        int l1Kb = (int)((uint)X86Base.CpuId(unchecked((int)0x80000005), 0).Ecx >> 24);
        int l2Kb = (int)((uint)X86Base.CpuId(unchecked((int)0x80000006), 0).Ecx >> 16);
        int l1 = l1Kb is >= 16 and <= 256 ? l1Kb * 1024 : 32 * 1024;
        int l2 = l2Kb is >= 128 and <= 16384 ? l2Kb * 1024 : 512 * 1024;
        int[] sizes = [l1, l2, 1024 * 1024];
        // DIFFUSERS_SHARP_ONEDNN_CACHES=L1,L2,L3 (KB per core) sets them instead (for CPUs whose caches you know)
        if (Environment.GetEnvironmentVariable("DIFFUSERS_SHARP_ONEDNN_CACHES") is { Length: > 0 } given)
        {
            var kb = given.Split(',').Select(v => int.TryParse(v, out int k) && k is >= 1 and <= 1 << 20 ? k : -1).ToArray();
            if (kb.Length != 3 || kb.Any(k => k < 0))
                return $"oneDNN caches: DIFFUSERS_SHARP_ONEDNN_CACHES must be three sizes in KB (L1,L2,L3 per core), got '{given}'; left alone";
            sizes = [.. kb.Select(k => k * 1024)];
        }
        for (int i = 0; i < levels && i < sizes.Length; i++)
            Marshal.WriteInt32(cpu, CacheSizeOffset + 4 * i, sizes[i] * Marshal.ReadInt32(cpu, CoresSharingOffset + 4 * i));
        RepairedL1 = sizes[0];
        return $"oneDNN caches: CPUID describes none (oneDNN read {cpuidL1}-byte caches); set to L1 {sizes[0] / 1024} KB, " +
               $"L2 {sizes[1] / 1024} KB, L3 {sizes[2] / 1024} KB per core";
    }

    /// <summary>
    /// The first level-1 data cache's size as Xbyak computes it from CPUID (leaf 0x8000001D sub-leaf 0 on AMD, the first
    /// data or unified sub-leaf of leaf 4 on Intel); -1 where there is none or the CPU is not x86.
    /// </summary>
    internal static int CpuidL1DataCacheBytes()
    {
        if (!X86Base.IsSupported) return -1;
        var (_, vendor, _, _) = X86Base.CpuId(0, 0);
        if (vendor == 0x68747541) return LeafSize(unchecked((int)0x8000001D), 0);   // "Auth"enticAMD
        for (int sub = 0; sub < 16; sub++)
        {
            int type = X86Base.CpuId(4, sub).Eax & 0x1f;
            if (type == 0) break;
            if (type is 1 or 3) return LeafSize(4, sub);
        }
        return -1;
    }

    /// <summary>A cache's size from a CPUID cache-parameters leaf, as Xbyak computes it (1 for an empty leaf).</summary>
    internal static int LeafSize(int leaf, int subLeaf)
    {
        var (_, b, c, _) = X86Base.CpuId(leaf, subLeaf);
        return (int)(((uint)b >> 22) + 1) * (int)((((uint)b >> 12) & 0x3ff) + 1) * (int)(((uint)b & 0xfff) + 1) * (c + 1);
    }

    /// <summary>The loaded libtorch_cpu.so: its path and load address (the mapping of its first page).</summary>
    internal static (string Path, IntPtr Base) MappedLibTorch()
    {
        foreach (var line in File.ReadLines("/proc/self/maps"))
        {
            var f = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
            if (f.Length == 6 && f[5].EndsWith("/libtorch_cpu.so", StringComparison.Ordinal) && Convert.ToInt64(f[2], 16) == 0)
                return (f[5], (IntPtr)Convert.ToInt64(f[0].Split('-')[0], 16));
        }
        throw new InvalidOperationException("libtorch_cpu.so is not loaded");
    }
}
