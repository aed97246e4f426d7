using System.Runtime.InteropServices;

namespace DiffusersSharp.Runtime;

/// <summary>
/// The Scalar guard (Linux): closes TorchSharp 0.107's Scalar race for every thread of the process.
/// <para>
/// The race: TorchSharp turns a .NET number into a <c>Scalar</c> for many ops (the <c>alpha = 1</c> of every
/// <c>a + b</c>, the factor of <c>a * 0.5</c>) and hands only its native handle to libtorch, so the managed object is
/// garbage while the op still runs. <c>Scalar</c> has a finalizer: a garbage collection that another thread triggers
/// during the op lets the finalizer thread free the native Scalar under libtorch, which then reads freed memory
/// ("Expected false to be true … toFloat" from <c>at::add</c>, seen after ~3000 training steps beside a background
/// image loader).
/// </para>
/// <para>
/// The guard: <c>libdiffusers_scalarguard.so</c> (build/native/scalar_guard.c) needs <c>libLibTorchSharp.so</c> and
/// defines only TorchSharp's Scalar constructors and <c>THSTorch_dispose_scalar</c>; the import resolver that
/// <see cref="NativeSetup"/> installs on the TorchSharp assembly hands TorchSharp this library for
/// <c>LibTorchSharp</c>, so every other entry point still resolves to TorchSharp's own. A Scalar is freed at once when
/// the thread that made it disposes it (a <c>using</c>) or has ended; when another thread disposes it (the finalizer),
/// it waits until its maker makes its next Scalar, which is between two of the maker's native calls, or ends.
/// The cost is a table insert and remove under a lock per Scalar (well under a microsecond).
/// </para>
/// <para>
/// Not covered: a Scalar made on one thread, given to an op on another thread and dropped there (the maker may free
/// it while that op runs); Scalars TorchSharp makes from a tensor (<c>item</c>) are freed at once as before. Off
/// where the guard cannot load (not Linux, the library not found, TorchSharp's entry points not bound through the
/// resolver, e.g. an application that used TorchSharp before any DiffusersSharp type and without
/// <see cref="NativeSetup.EnsureInitialized"/>); <see cref="NoGcRegion"/> still holds collections off around the
/// steps of <c>GenerationService</c> and the trainer there. Opt out: <c>DIFFUSERS_SHARP_NO_SCALAR_GUARD=1</c>.
/// </para>
/// </summary>
public static class ScalarGuard
{
    internal const string FileName = "libdiffusers_scalarguard.so";
    private const string TorchSharpLibrary = "LibTorchSharp";

    private static readonly object Gate = new();
    private static IntPtr _handle;
    private const string NotLoadedYet = "scalar guard: loads with TorchSharp's first call";
    private const string OptedOutStatus = "scalar guard: opted out";
    private const string NotLoadedByTorchSharp = "scalar guard: libLibTorchSharp.so not loaded";
    private static string _status = NativeSetup.OptedOut("DIFFUSERS_SHARP_NO_SCALAR_GUARD") ? OptedOutStatus : NotLoadedYet;

    /// <summary>What the guard did: "scalar guard: on", or why it is off.</summary>
    public static string Status
    {
        get
        {
            lock (Gate) return _status;
        }
    }

    /// <summary>True once TorchSharp resolves its Scalar entry points to the guard.</summary>
    public static bool IsActive
    {
        get
        {
            lock (Gate) return _handle != IntPtr.Zero;
        }
    }

    /// <summary>
    /// What the import resolver hands TorchSharp for <paramref name="libraryName"/>: the guard for
    /// <c>LibTorchSharp</c> once it loads, else zero (the usual resolution).
    /// </summary>
    internal static IntPtr ResolveFor(string libraryName)
    {
        if (libraryName != TorchSharpLibrary) return IntPtr.Zero;
        lock (Gate)
        {
            // tried again until it loads or is off for good (libLibTorchSharp.so not loaded yet is the one passing state)
            if (_handle == IntPtr.Zero && _status is NotLoadedYet or NotLoadedByTorchSharp) _handle = Load(out _status);
            return _handle;
        }
    }

    /// <summary>The TorchSharp assembly already had an import resolver (not ours): the guard cannot be handed over.</summary>
    internal static void ResolverRefused()
    {
        lock (Gate) _status = "scalar guard: off (the TorchSharp assembly already has an import resolver)";
    }

    // Not reached when opted out: the status starts as OptedOutStatus then, which ResolveFor does not retry.
    private static IntPtr Load(out string status)
    {
        const int RTLD_NOW = 2, RTLD_NOLOAD = 4;
        IntPtr torchSharp;
        try
        {
            // only the copy TorchSharp has loaded: the guard's dependency must resolve to it, never to another one
            torchSharp = dlopen("libLibTorchSharp.so", RTLD_NOW | RTLD_NOLOAD);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            status = "scalar guard: no dlopen";
            return IntPtr.Zero;
        }
        if (torchSharp == IntPtr.Zero)
        {
            status = NotLoadedByTorchSharp;
            return IntPtr.Zero;
        }
        foreach (string path in NativeSetup.NativeCandidates(FileName).Distinct())
        {
            if (!File.Exists(path)) continue;
            IntPtr guard = dlopen(path, RTLD_NOW);
            if (guard == IntPtr.Zero)
            {
                status = "scalar guard: dlopen failed";
                return IntPtr.Zero;
            }
            // the guard must be ready and must hand every other entry point on to the same libLibTorchSharp.so
            if (!NativeLibrary.TryGetExport(guard, "dsg_ready", out var ready) || !IsReady(ready)
                || !NativeLibrary.TryGetExport(guard, "THSTensor_add", out var viaGuard)
                || !NativeLibrary.TryGetExport(torchSharp, "THSTensor_add", out var direct) || viaGuard != direct)
            {
                status = "scalar guard: not ready";
                return IntPtr.Zero;
            }
            status = "scalar guard: on";
            return guard;
        }
        status = "scalar guard: not found";
        return IntPtr.Zero;
    }

    private static unsafe bool IsReady(IntPtr ready) => ((delegate* unmanaged<int>)ready)() == 1;

    /// <summary>
    /// The guard's counters (for tests and diagnostics): Scalars that another thread disposed and that wait for their
    /// maker now, ever so deferred, and made but not yet disposed. Null while the guard is off.
    /// </summary>
    public static unsafe (long Waiting, long EverDeferred, long Tracked)? Statistics()
    {
        IntPtr handle;
        lock (Gate) handle = _handle;
        if (handle == IntPtr.Zero || !NativeLibrary.TryGetExport(handle, "dsg_stats", out var stats)) return null;
        long waiting, ever, tracked;
        ((delegate* unmanaged<long*, long*, long*, void>)stats)(&waiting, &ever, &tracked);
        return (waiting, ever, tracked);
    }

    [DllImport("libc", EntryPoint = "dlopen")]
    private static extern IntPtr dlopen([MarshalAs(UnmanagedType.LPUTF8Str)] string file, int mode);
}
