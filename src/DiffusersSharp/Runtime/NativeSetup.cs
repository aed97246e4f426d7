using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace DiffusersSharp.Runtime;

/// <summary>
/// One-time native set-up, done before the first torch call (the only process-wide state of the library).
/// <list type="bullet">
/// <item>glibc malloc: raise <c>M_MMAP_THRESHOLD</c> and <c>M_TRIM_THRESHOLD</c> so that large tensors are
/// recycled from the heap instead of being mmapped and unmapped each time (hundreds of thousands of page
/// faults per UNet pass otherwise). Opt out: <c>DIFFUSERS_SHARP_NO_MALLOPT=1</c>.</item>
/// <item>MKL on non-Intel CPUs: dlopen <c>libdiffusers_mklshim.so</c> (prebuilt, build/native/linux-x64; copied next
/// to the application by the build, or found in the package's <c>runtimes/linux-x64/native/</c>) with RTLD_GLOBAL so
/// MKL takes its fast code paths.
/// Opt out: <c>DIFFUSERS_SHARP_NO_MKL_SHIM=1</c>.</item>
/// <item>libtorch: NNPACK off (<c>at::globalContext().setUserEnabledNNPACK(false)</c>, what Python's
/// <c>torch.backends.nnpack.set_flags(False)</c> does), as soon as TorchSharp has loaded libtorch. libtorch asks
/// whether NNPACK is available before every fp32 convolution that oneDNN does not take (batch 1 with a 1×1 kernel
/// on one thread, small inputs), and where NNPACK cannot initialise it logs "Could not initialize NNPACK" each time:
/// dozens of lines per sampling step. It would only run a convolution of batch ≥ 16 that oneDNN declined, which
/// on x86-64 with oneDNN does not happen, so nothing is lost. Opt out: <c>DIFFUSERS_SHARP_KEEP_NNPACK=1</c>.</item>
/// <item>Huge pages and malloc's thread cache: only reported here (<see cref="HugePages"/>); glibc reads its switches when
/// the process starts.</item>
/// </list>
/// It runs when the DiffusersSharp assembly is first used; call <see cref="EnsureInitialized"/> yourself
/// if your program touches TorchSharp before any DiffusersSharp type.
/// </summary>
public static class NativeSetup
{
    private static int _done;

    /// <summary>What the set-up did, for `diffusers info` and the benchmarks (the Scalar guard's state last).</summary>
    public static string Summary => OperatingSystem.IsLinux() && _summary != "not run" ? $"{_summary}; {ScalarGuard.Status}" : _summary;

    private static string _summary = "not run";

#pragma warning disable CA2255 // a module initializer is the right tool: it must run before libtorch is loaded
    [ModuleInitializer]
    internal static void OnAssemblyLoad() => EnsureInitialized();
#pragma warning restore CA2255

    /// <summary>Runs the set-up once per process (later calls return at once); safe to call from any thread.</summary>
    public static void EnsureInitialized()
    {
        if (Interlocked.Exchange(ref _done, 1) == 1) return;
        var notes = new List<string>();
        if (OperatingSystem.IsLinux())
        {
            notes.Add(TuneMalloc());
            notes.Add(LoadMklShim());
            notes.Add(InstallTorchSharpResolver());
            notes.Add(HugePages.Status);
        }
        _summary = string.Join("; ", notes.Where(n => n.Length > 0));
    }

    internal static bool OptedOut(string variable) =>
        Environment.GetEnvironmentVariable(variable) is { } v && v != "" && v != "0";

    private static string TuneMalloc()
    {
        if (OptedOut("DIFFUSERS_SHARP_NO_MALLOPT")) return "mallopt: opted out";
        try
        {
            if (GlibcVersion() is null) return "mallopt: not glibc";
            int ok1 = mallopt(M_MMAP_THRESHOLD, RaisedMmapThreshold);
            _mallocTuned = ok1 == 1;
            int ok2 = mallopt(M_TRIM_THRESHOLD, 1 << 30);
            return ok1 == 1 && ok2 == 1 ? "mallopt: mmap threshold raised" : "mallopt: refused";
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return "mallopt: not glibc";
        }
    }

    private static string LoadMklShim()
    {
        if (OptedOut("DIFFUSERS_SHARP_NO_MKL_SHIM")) return "mkl shim: opted out";
        foreach (var path in NativeCandidates(MklShimFile).Distinct())
        {
            if (!File.Exists(path)) continue;
            const int RTLD_NOW = 2, RTLD_GLOBAL = 0x100;
            try
            {
                return dlopen(path, RTLD_NOW | RTLD_GLOBAL) != IntPtr.Zero ? "mkl shim: loaded" : "mkl shim: dlopen failed";
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
            {
                return "mkl shim: no dlopen";
            }
        }
        return "mkl shim: not found";
    }

    private const string MklShimFile = "libdiffusers_mklshim.so";

    /// <summary>
    /// Where one of our prebuilt native helpers (build/native/linux-x64) can be: next to the application (this
    /// repository's builds, RID-specific publishes, where the build copies it), next to this assembly, and in every
    /// native search directory the host derived from the application's deps.json (NATIVE_DLL_SEARCH_DIRECTORIES): a
    /// portable app that references the DiffusersSharp package keeps the package's runtime assets in
    /// <c>runtimes/linux-x64/native/</c> under its output folder.
    /// </summary>
    internal static IEnumerable<string> NativeCandidates(string file)
    {
        yield return Path.Combine(AppContext.BaseDirectory, file);
        string? assemblyDir = Path.GetDirectoryName(typeof(NativeSetup).Assembly.Location);
        if (!string.IsNullOrEmpty(assemblyDir)) yield return Path.Combine(assemblyDir, file);
        if (AppContext.GetData("NATIVE_DLL_SEARCH_DIRECTORIES") is string dirs)
            foreach (string dir in dirs.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                yield return Path.Combine(dir, file);
    }

    private static int _nnpackOff;
    private const string NnpackPending = "nnpack: off once libtorch loads";

    /// <summary>
    /// Installs the import resolver of the TorchSharp assembly, which turns NNPACK off (see the type's remarks) and
    /// hands TorchSharp the Scalar guard (<see cref="ScalarGuard"/>). TorchSharp loads libtorch with
    /// NativeLibrary.TryLoad (which does not call the resolver), then binds its first P/Invoke, which does: libtorch
    /// is loaded by then and no convolution has run yet. Returns the NNPACK note of the summary.
    /// </summary>
    private static string InstallTorchSharpResolver()
    {
        bool keep = OptedOut("DIFFUSERS_SHARP_KEEP_NNPACK");
        // still to do once libtorch loads (not when opted out, nor when libtorch was loaded before us and it is done)
        bool pending = !keep && !TryTurnNnpackOff();
        string nnpack = keep ? "nnpack: kept (opted out)" : pending ? NnpackPending : "nnpack: off";
        try
        {
            NativeLibrary.SetDllImportResolver(typeof(TorchSharp.torch).Assembly, (name, _, _) =>
            {
                if (pending && Volatile.Read(ref _nnpackOff) == 0) TryTurnNnpackOff();
                return ScalarGuard.ResolveFor(name); // zero: the usual resolution
            });
            return nnpack;
        }
        catch (InvalidOperationException)
        {
            ScalarGuard.ResolverRefused();
            return pending ? "nnpack: left on (the TorchSharp assembly already has an import resolver)" : nnpack;
        }
    }

    /// <summary>Turns NNPACK off in libtorch if libtorch is loaded; false if it is not (yet) or lacks the entry points.</summary>
    private static unsafe bool TryTurnNnpackOff()
    {
        var context = LibTorchContext(out var handle);
        if (context == IntPtr.Zero || !NativeLibrary.TryGetExport(handle, "_ZN2at7Context20setUserEnabledNNPACKEb", out var set))
            return false;
        ((delegate* unmanaged<IntPtr, byte, void>)set)(context, 0);
        if (Interlocked.Exchange(ref _nnpackOff, 1) == 0) _summary = _summary.Replace(NnpackPending, "nnpack: off");
        return true;
    }

    /// <summary>libtorch's <c>at::globalContext().userEnabledNNPACK()</c>; null where libtorch is not loaded.</summary>
    internal static unsafe bool? LibTorchNnpackEnabled()
    {
        var context = LibTorchContext(out var handle);
        if (context == IntPtr.Zero || !NativeLibrary.TryGetExport(handle, "_ZNK2at7Context17userEnabledNNPACKEv", out var get))
            return null;
        return ((delegate* unmanaged<IntPtr, byte>)get)(context) != 0;
    }

    /// <summary>glibc's version (<c>gnu_get_libc_version</c>; 0.0 where it does not parse), null where libc is not glibc.</summary>
    internal static Version? GlibcVersion()
    {
        try
        {
            return Version.TryParse(Marshal.PtrToStringAnsi(gnu_get_libc_version()), out var v) ? v : new Version(0, 0);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
    }

    /// <summary>
    /// libtorch's <c>at::globalContext().setUserEnabledMkldnn(enabled)</c> (Python's <c>torch.backends.mkldnn.enabled</c>);
    /// returns the previous value, or null where libtorch is not loaded or lacks the entry points.
    /// </summary>
    internal static unsafe bool? SetLibTorchMkldnn(bool enabled)
    {
        var context = LibTorchContext(out var handle);
        if (context == IntPtr.Zero
            || !NativeLibrary.TryGetExport(handle, "_ZNK2at7Context17userEnabledMkldnnEv", out var get)
            || !NativeLibrary.TryGetExport(handle, "_ZN2at7Context20setUserEnabledMkldnnEb", out var set))
            return null;
        bool previous = ((delegate* unmanaged<IntPtr, byte>)get)(context) != 0;
        ((delegate* unmanaged<IntPtr, byte, void>)set)(context, enabled ? (byte)1 : (byte)0);
        return previous;
    }

    /// <summary><c>&amp;at::globalContext()</c> of the libtorch already in the process (never loads it); zero if none.</summary>
    private static unsafe IntPtr LibTorchContext(out IntPtr handle)
    {
        handle = LibTorchHandle();
        if (handle == IntPtr.Zero || !NativeLibrary.TryGetExport(handle, "_ZN2at13globalContextEv", out var global))
            return IntPtr.Zero;
        return ((delegate* unmanaged<IntPtr>)global)();
    }

    /// <summary>
    /// The handle of the <c>libtorch_cpu.so</c> already in the process (never loads it), zero if none (or not Linux,
    /// where libtorch-cpu is not used here). Its exports include those of its dependencies, such as the bundled libgomp.
    /// </summary>
    internal static IntPtr LibTorchHandle()
    {
        if (!OperatingSystem.IsLinux()) return IntPtr.Zero;
        const int RTLD_NOW = 2, RTLD_NOLOAD = 4;
        try
        {
            return dlopen("libtorch_cpu.so", RTLD_NOW | RTLD_NOLOAD);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return IntPtr.Zero;
        }
    }

    /// <summary>
    /// Hands the native heap's free memory back to the OS (glibc <c>malloc_trim(0)</c>; a no-op where the mallopt
    /// tuning is not in effect: not glibc, refused, or opted out of). With the raised trim threshold, memory freed by one phase of a
    /// pipeline (the UNet steps' activations) otherwise stays resident, and the next phase (the VAE decode,
    /// whose blocks are of other sizes) cannot always reuse it, so the process's peak is the sum of both.
    /// </summary>
    public static void TrimNativeHeap()
    {
        if (_mallocTuned) malloc_trim(0);
    }

    /// <summary>True once glibc accepted the raised mmap threshold (so libc is glibc and the tuning is not opted out).</summary>
    private static bool _mallocTuned;

    /// <summary>
    /// For the returned scope's lifetime, native blocks of 32 MB and more are mapped and unmapped by glibc one by
    /// one again (its usual behaviour) instead of coming from the heap. Used around phases whose few, very large
    /// tensors (the VAE decoder's 134-268 MB activations at 512²) would otherwise fragment the heap: the decode's
    /// peak drops from 1.5 to 1.0 GB above the weights, at about 1 s more per 512² decode (2 cores). A no-op when the malloc
    /// tuning is not in effect. Process-wide while it lasts (other threads' allocations too).
    /// <paramref name="elementSize"/>: bytes per element of the phase's tensors; the size is for 4-byte elements and
    /// scales with it, so that a bf16 decode maps the same activations (of half the bytes) as an fp32 one: from 16 MB
    /// (SD 1.5 e2e, 20 bf16 steps + decode: peak RSS 1.27× the weights instead of 1.30-1.31×, docs/BENCHMARKS.md).
    /// </summary>
    public static IDisposable MapLargeBlocks(int elementSize = 4)
    {
        if (!_mallocTuned) return NoOp.Instance;
        long mb = LargeBlockMegabytes();
        if (mb == 0) return NoOp.Instance;
        int threshold = (int)Math.Clamp((mb << 20) * elementSize / 4, 1 << 20, int.MaxValue);
        mallopt(M_MMAP_THRESHOLD, threshold);
        Interlocked.Exchange(ref _mappedFrom, threshold);
        return new Restore(() =>
        {
            Interlocked.Exchange(ref _mappedFrom, 0);
            mallopt(M_MMAP_THRESHOLD, RaisedMmapThreshold);
        });
    }

    /// <summary>
    /// Inside a <see cref="MapLargeBlocks"/> scope, before a stage whose activations are of <paramref name="bytes"/>:
    /// when they are large enough to be mapped, the heap's free memory (the smaller activations of the stages before,
    /// which the mapped ones cannot reuse) goes back to the OS first, so that it does not stay resident under the
    /// stage's peak. SD 1.5 bf16 decode at 512², before the 256² and 512² up blocks: the process's peak 2.995 → 2.936 GB,
    /// no slower. Outside such a scope, or for smaller stages, a no-op.
    /// </summary>
    public static void TrimBeforeLargeStage(long bytes)
    {
        long from = Interlocked.Read(ref _mappedFrom);
        if (from > 0 && bytes >= from) malloc_trim(0);
    }

    /// <summary>The mmap threshold of the <see cref="MapLargeBlocks"/> scope in effect; 0 when none is.</summary>
    private static long _mappedFrom;

    /// <summary>
    /// The size from which <see cref="MapLargeBlocks"/> maps blocks of 4-byte elements: <c>DIFFUSERS_SHARP_LARGE_BLOCK_MB</c>
    /// (1-2047; 0 = do not map them: faster decodes, higher peak memory), 32 by default.
    /// </summary>
    private static int LargeBlockMegabytes() =>
        int.TryParse(Environment.GetEnvironmentVariable("DIFFUSERS_SHARP_LARGE_BLOCK_MB"), out int mb) && mb is >= 0 and < 2048 ? mb : 32;

    private const int M_TRIM_THRESHOLD = -1, M_MMAP_THRESHOLD = -3;
    private const int RaisedMmapThreshold = int.MaxValue;

    private sealed class NoOp : IDisposable
    {
        public static readonly NoOp Instance = new();
        public void Dispose() { }
    }

    private sealed class Restore(Action undo) : IDisposable
    {
        private Action? _undo = undo;
        public void Dispose() => Interlocked.Exchange(ref _undo, null)?.Invoke();
    }

    [DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int malloc_trim(nuint pad);

    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int mallopt(int param, int value);

    [DllImport("libc", EntryPoint = "gnu_get_libc_version")]
    private static extern IntPtr gnu_get_libc_version();

    [DllImport("libc", EntryPoint = "dlopen")]
    private static extern IntPtr dlopen([MarshalAs(UnmanagedType.LPUTF8Str)] string file, int mode);
}
