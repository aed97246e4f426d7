using System.Diagnostics;
using System.Runtime.InteropServices;

namespace DiffusersSharp.Bench;

/// <summary>
/// <c>bench -- fresh-memory [--mb 3000] [--chunk 100]</c>: what this machine charges for memory a process touches for the
/// first time. Maps <c>--mb</c> of anonymous memory in chunks (transparent huge pages asked for, as our programs' heap
/// gets them), writes each chunk once and times it; then unmaps everything, maps and writes it again at once. On a
/// virtual machine whose free memory goes back to the host (virtio-balloon's free page reporting, after ~2 s), the
/// first pass pays the host's fault for every page beyond the few hundred MB it still holds, and the second pass,
/// reusing what was freed a moment ago, does not. Measured 2026-12-05 on this project's VM: 100 MB in 9 ms warm against
/// 170-190 ms cold (0.55 GB/s); with 4 KB pages 276 ms warm, 420-450 ms cold. That cold rate is what a one-shot
/// generation's first UNet pass pays for its activations (docs/BENCHMARKS.md).
/// </summary>
public static class FreshMemoryBench
{
    /// <summary>Prints the two passes' per-chunk times and their medians.</summary>
    public static int Run(long megabytes, long chunkMegabytes)
    {
        int chunks = (int)Math.Max(1, megabytes / chunkMegabytes);
        nuint size = (nuint)(chunkMegabytes << 20);
        Console.WriteLine($"fresh memory: {chunks} chunks of {chunkMegabytes} MB, MADV_HUGEPAGE, each written once (ms per chunk)");
        foreach (string pass in new[] { "first touch", "again at once" })
        {
            var blocks = new IntPtr[chunks];
            var times = new List<double>();
            for (int i = 0; i < chunks; i++)
            {
                blocks[i] = mmap(IntPtr.Zero, size, ProtRead | ProtWrite, MapPrivate | MapAnonymous, -1, 0);
                if (blocks[i] == new IntPtr(-1)) throw new InvalidOperationException($"mmap of {chunkMegabytes} MB failed (chunk {i})");
                madvise(blocks[i], size, MadvHugepage);
                var sw = Stopwatch.StartNew();
                unsafe { NativeMemory.Fill((void*)blocks[i], size, 1); }
                times.Add(sw.Elapsed.TotalMilliseconds);
            }
            foreach (var b in blocks) munmap(b, size);
            Console.WriteLine($"  {pass,-14} median {Harness.Median(times),6:F0} ms, {chunkMegabytes / Harness.Median(times),5:F2} GB/s; " +
                              string.Join(" ", times.Select(t => t.ToString("F0"))));
        }
        return 0;
    }

    private const int ProtRead = 1, ProtWrite = 2, MapPrivate = 2, MapAnonymous = 0x20, MadvHugepage = 14;

    [DllImport("libc", SetLastError = true)]
    private static extern IntPtr mmap(IntPtr addr, nuint length, int prot, int flags, int fd, long offset);

    [DllImport("libc")]
    private static extern int munmap(IntPtr addr, nuint length);

    [DllImport("libc")]
    private static extern int madvise(IntPtr addr, nuint length, int advice);
}
