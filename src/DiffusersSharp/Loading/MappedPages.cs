using System.Runtime.InteropServices;

namespace DiffusersSharp.Loading;

/// <summary>
/// Drops pages of a read-only file mapping from the process (<c>madvise(MADV_DONTNEED)</c> on Linux): pages a load has
/// copied out stop counting in its RSS instead of staying mapped until the file is closed. The page cache keeps them,
/// and touching them again maps them back, so it is always safe. A no-op elsewhere, or when libc refuses.
/// </summary>
internal static class MappedPages
{
    private const int MADV_DONTNEED = 4;
    private static volatile bool _unavailable = !OperatingSystem.IsLinux();

    /// <summary>Releases the whole pages inside [<paramref name="start"/>, start + <paramref name="length"/>).</summary>
    public static unsafe void Release(byte* start, long length)
    {
        if (_unavailable || length <= 0) return;
        long page = Environment.SystemPageSize;
        long first = ((long)start + page - 1) & ~(page - 1);
        long end = ((long)start + length) & ~(page - 1);
        if (end <= first) return;
        try { _ = madvise((nint)first, (nuint)(end - first), MADV_DONTNEED); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { _unavailable = true; }
    }

    [DllImport("libc", EntryPoint = "madvise")]
    private static extern int madvise(nint addr, nuint length, int advice);
}
