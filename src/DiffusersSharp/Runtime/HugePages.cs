using System.Runtime.InteropServices;
using System.Text;

namespace DiffusersSharp.Runtime;

/// <summary>
/// Transparent huge pages for the native heap, where every tensor lives. Linux's usual setting ("madvise") gives
/// huge pages only to memory that asks for them, and glibc's malloc asks only when the process starts with
/// <c>GLIBC_TUNABLES=glibc.malloc.hugetlb=1</c> (glibc 2.35 and later). Without it every 4 KB page of the weights and
/// of each step's activations is one page fault when first touched: on this project's 2-core VM, SD-Turbo's weights
/// loaded in 9.5 s instead of 3.3 s, its first UNet step took 1.91 s instead of 1.63 s (docs/BENCHMARKS.md).
/// The tunable is read once, by glibc, when the process starts, so it cannot be switched on from inside:
/// <see cref="RelaunchIfOff"/> starts the same program again (same arguments, same environment plus the tunable)
/// in place of the running one, as the first thing in <c>Main</c>. The <c>diffusers</c> command does this; an
/// application of yours can call it too, or set the variable before it starts.
/// <para>
/// The relaunch also turns glibc's per-thread cache off (<c>glibc.malloc.tcache_count=0</c>, <see cref="NoThreadCache"/>)
/// unless the variable already names it. libtorch allocates every tensor with <c>posix_memalign(64)</c>, and glibc
/// 2.36 serves that by taking 96 bytes more and freeing the unaligned slivers before and after the block; in the thread
/// cache those slivers count as in use, so a freed tensor never merges with them, and the next tensor of the same size
/// (which again asks for 96 bytes more) does not fit in its place: the heap grows and the new block is fresh memory,
/// faulted in page by page. Freed into glibc's fast bins instead, the slivers merge back before the next large
/// request. Measured on this project's VM: a loop of one fp32 linear layer (8192×320 → 2560) whose 84 MB output is
/// freed each time ended with a heap of 176-679 MB in 8 processes, growing by 84 MB a call while it grew (35 → 120-140 ms
/// a call), and with 260-262 MB in all 8 without the cache; a one-shot SD-Turbo image's first UNet step took 93-106 MB
/// of fresh memory instead of 120-151 (its peak of live tensors is 71 MB); steady-state steps alike either way
/// (docs/BENCHMARKS.md, 2026-12-05 (late evening)).
/// </para>
/// Opt out: <c>DIFFUSERS_SHARP_NO_HUGEPAGES=1</c> (no relaunch: neither tunable).
/// </summary>
public static class HugePages
{
    /// <summary>The glibc tunable and the value that turns huge pages on for malloc (madvise mode).</summary>
    public const string Tunable = "glibc.malloc.hugetlb";

    /// <summary>The glibc tunable, with its value, that the relaunch adds to turn malloc's per-thread cache off (see the class).</summary>
    public const string NoThreadCache = ThreadCacheCount + "=0";

    private const string ThreadCacheCount = "glibc.malloc.tcache_count";

    private const string OptOut = "DIFFUSERS_SHARP_NO_HUGEPAGES";
    private const string Relaunched = "DIFFUSERS_SHARP_RELAUNCHED";

    /// <summary>Whether this process's malloc asks for huge pages (the tunable was set when it started).</summary>
    public static bool On => OperatingSystem.IsLinux() && TunableValue(Environment.GetEnvironmentVariable("GLIBC_TUNABLES")) is { } v &&
                             v != "0" && MachineWhyNot() is null;

    /// <summary>Whether this process started with malloc's per-thread cache off (<see cref="NoThreadCache"/>).</summary>
    public static bool ThreadCacheOff => OperatingSystem.IsLinux() &&
                                         TunableValue(Environment.GetEnvironmentVariable("GLIBC_TUNABLES"), ThreadCacheCount) == "0";

    /// <summary>One line for <see cref="NativeSetup.Summary"/>.</summary>
    public static string Status
    {
        get
        {
            if (!OperatingSystem.IsLinux()) return "";
            if (On) return ThreadCacheOff ? $"huge pages: on ({Tunable}); malloc thread cache: off" : $"huge pages: on ({Tunable})";
            string why = WhyNot() ?? $"GLIBC_TUNABLES={Tunable}=1 at start turns them on";
            return $"huge pages: off ({why})";
        }
    }

    /// <summary>
    /// If huge pages are off but could be on (Linux, glibc 2.35+, transparent huge pages not "never", not opted out,
    /// not relaunched before, the tunable not already set to any value), replaces this process with the same program, arguments (byte for byte, from
    /// <c>/proc/self/cmdline</c>) and environment plus <c>GLIBC_TUNABLES=glibc.malloc.hugetlb=1</c> (and
    /// <see cref="NoThreadCache"/> where the variable does not name the thread cache's count), through
    /// <c>execve</c>: the process keeps its id, standard streams, and exit code. Returns only where it did not
    /// relaunch (or execve failed), and the program goes on as it was. Call it first in <c>Main</c>, before any
    /// thread or file of your own exists (execve ends every other thread).
    /// </summary>
    public static void RelaunchIfOff()
    {
        if (!OperatingSystem.IsLinux() || WhyNot() is not null) return;
        if (TunableValue(Environment.GetEnvironmentVariable("GLIBC_TUNABLES")) is not null) return;   // on, or the user's own choice
        if (System.Diagnostics.Debugger.IsAttached) return;
        byte[] cmdline, environ;
        try
        {
            cmdline = File.ReadAllBytes("/proc/self/cmdline");
            environ = File.ReadAllBytes("/proc/self/environ");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return;
        }
        var argv = SplitNul(cmdline);
        if (argv.Count == 0) return;
        var env = SplitNul(environ);
        string? tunables = null;
        int at = env.FindIndex(b => StartsWith(b, "GLIBC_TUNABLES="));
        if (at >= 0)
        {
            tunables = Encoding.UTF8.GetString(env[at], 15, env[at].Length - 15);
            env.RemoveAt(at);
        }
        string added = TunableValue(tunables, ThreadCacheCount) is null ? $"{Tunable}=1:{NoThreadCache}" : $"{Tunable}=1";
        string merged = string.IsNullOrEmpty(tunables) ? added : $"{tunables}:{added}";
        env.Add(Encoding.UTF8.GetBytes("GLIBC_TUNABLES=" + merged));
        env.Add(Encoding.UTF8.GetBytes(Relaunched + "=1"));
        Console.Out.Flush();
        Console.Error.Flush();
        Exec("/proc/self/exe", argv, env);   // returns only on failure: the program goes on without huge pages
    }

    /// <summary>Why huge pages cannot or must not be turned on here; null where they can.</summary>
    private static string? WhyNot()
    {
        if (NativeSetup.OptedOut(OptOut)) return $"{OptOut} is set";
        if (NativeSetup.OptedOut(Relaunched) && !On) return "relaunched once already";
        return MachineWhyNot();
    }

    /// <summary>Why this kernel and libc cannot give malloc huge pages; null where they can.</summary>
    private static string? MachineWhyNot()
    {
        string? mode = ThpMode();
        if (mode is null) return "the kernel has no transparent huge pages";
        if (mode == "never") return "transparent huge pages are off in this kernel (never)";
        if (!(NativeSetup.GlibcVersion() >= new Version(2, 35))) return "glibc older than 2.35, or not glibc";
        return null;
    }

    /// <summary>The bracketed mode of /sys/kernel/mm/transparent_hugepage/enabled, or null where it cannot be read.</summary>
    private static string? ThpMode()
    {
        try
        {
            string text = File.ReadAllText("/sys/kernel/mm/transparent_hugepage/enabled");
            int open = text.IndexOf('['), close = text.IndexOf(']');
            return open >= 0 && close > open ? text[(open + 1)..close] : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>The value <paramref name="tunables"/> (GLIBC_TUNABLES' colon-separated name=value list) gives
    /// <paramref name="name"/> (default: the huge-page switch); null if none.</summary>
    internal static string? TunableValue(string? tunables, string name = Tunable)
    {
        if (string.IsNullOrEmpty(tunables)) return null;
        string? value = null;
        foreach (string item in tunables.Split(':'))
            if (item.StartsWith(name + "=", StringComparison.Ordinal)) value = item[(name.Length + 1)..];
        return value;
    }

    /// <summary>The NUL-terminated entries of a /proc file (an empty entry, an empty argument, is kept).</summary>
    private static List<byte[]> SplitNul(byte[] data)
    {
        var parts = new List<byte[]>();
        int start = 0;
        for (int i = 0; i < data.Length; i++)
            if (data[i] == 0) { parts.Add(data[start..i]); start = i + 1; }
        if (start < data.Length) parts.Add(data[start..]);
        return parts;
    }

    private static bool StartsWith(byte[] bytes, string prefix) =>
        bytes.Length >= prefix.Length && Encoding.ASCII.GetString(bytes, 0, prefix.Length) == prefix;

    private static void Exec(string path, List<byte[]> argv, List<byte[]> env)
    {
        var blocks = new List<IntPtr>();
        IntPtr Block(byte[] bytes)
        {
            IntPtr p = Marshal.AllocHGlobal(bytes.Length + 1);
            Marshal.Copy(bytes, 0, p, bytes.Length);
            Marshal.WriteByte(p, bytes.Length, 0);
            blocks.Add(p);
            return p;
        }
        try
        {
            var argvPtrs = argv.Select(Block).Append(IntPtr.Zero).ToArray();
            var envPtrs = env.Select(Block).Append(IntPtr.Zero).ToArray();
            _ = execve(path, argvPtrs, envPtrs);
        }
        finally
        {
            foreach (var p in blocks) Marshal.FreeHGlobal(p);
        }
    }

    [DllImport("libc", EntryPoint = "execve")]
    private static extern int execve([MarshalAs(UnmanagedType.LPUTF8Str)] string path, IntPtr[] argv, IntPtr[] envp);
}
