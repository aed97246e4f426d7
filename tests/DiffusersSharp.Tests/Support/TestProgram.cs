using DiffusersSharp.Runtime;

namespace DiffusersSharp.Tests.Support;

/// <summary>
/// The test assembly's entry point (the csproj turns the test SDK's generated one off; test hosts never call it):
/// <c>dotnet DiffusersSharp.Tests.dll native-run ...</c> runs the child processes of the native fault tests;
/// <c>dotnet DiffusersSharp.Tests.dll fused-attention-status</c> prints <see cref="FusedAttention.Status"/> read before
/// any tensor exists (Runtime/FusedAttentionTests).
/// </summary>
public static class TestProgram
{
    public const string FusedAttentionStatusVerb = "fused-attention-status";
    public const string HugePagesVerb = "huge-pages";
    public const string OneDnnVerb = "onednn";

    /// <summary>The exit code of the <see cref="HugePagesVerb"/> child, which must survive its relaunch.</summary>
    public const int HugePagesExitCode = 7;

    public static int Main(string[] args)
    {
        if (args is [FusedAttentionStatusVerb])
        {
            Console.WriteLine(FusedAttention.Status);
            return 0;
        }
        if (args.Length > 0 && args[0] == HugePagesVerb) return HugePagesChild(args[1..]);
        if (args.Length > 0 && args[0] == OneDnnVerb) return OneDnnChild(args[1..]);
        if (args.Length > 0 && args[0] == NativeRun.Verb)
        {
            try
            {
                return NativeRun.Run(args[1..]);
            }
            catch (Exception e) // a managed error exits 1; only native faults end in a signal
            {
                Console.Error.WriteLine(e);
                return 1;
            }
        }
        Console.Error.WriteLine($"usage: dotnet DiffusersSharp.Tests.dll {NativeRun.Verb} [options] SPEC... (see Support/NativeRun.cs)");
        return 2;
    }

    /// <summary>
    /// <see cref="OneDnnConvolutions"/> in a fresh process (Runtime/OneDnnConvolutionsTests): the check, a pass without risk
    /// (oneDNN stays on), a pass at risk (off where the check failed), and every probe case's error after that.
    /// </summary>
    private static int OneDnnChild(string[] args)
    {
        var warnings = new List<string>();
        OneDnnConvolutions.Warn = warnings.Add;
        using (TorchSharp.torch.zeros(1)) { }   // libtorch loaded, whatever the check does
        if (args.Contains("--repair-only"))
        {
            OneDnnCaches.EnsureRepaired();
            Console.WriteLine($"caches [{OneDnnCaches.Status}]");
            return 0;
        }
        if (args.Contains("--shrink-caches"))
        {
            // oneDNN as on a CPU whose CPUID describes no caches (built by one convolution first)
            using (var x = TorchSharp.torch.ones(1, 16, 2, 2))
            using (var w = TorchSharp.torch.ones(16, 16, 1, 1))
            using (TorchSharp.torch.nn.functional.conv2d(x, w)) { }
            Console.WriteLine($"shrunk [{LibTorchInternals.ShrinkOneDnnCaches()}]");
        }
        Console.WriteLine($"failures [{string.Join("; ", OneDnnConvolutions.Check())}]");
        OneDnnConvolutions.BeforePass(atRisk: false);
        Console.WriteLine($"after a pass without risk: off {OneDnnConvolutions.SwitchedOff}, mkldnn {NativeSetup.SetLibTorchMkldnn(true)}");
        if (OneDnnConvolutions.SwitchedOff) NativeSetup.SetLibTorchMkldnn(false);
        OneDnnConvolutions.BeforePass(atRisk: true);
        OneDnnConvolutions.BeforePass(atRisk: true);
        bool? enabled = NativeSetup.SetLibTorchMkldnn(false);
        NativeSetup.SetLibTorchMkldnn(enabled ?? true);
        Console.WriteLine($"after passes at risk: off {OneDnnConvolutions.SwitchedOff}, mkldnn {enabled}, warnings {warnings.Count}");
        foreach (var w in warnings) Console.WriteLine($"warning [{w}]");
        Console.WriteLine($"status [{OneDnnConvolutions.Status}]");
        Console.WriteLine($"caches [{OneDnnCaches.Status}]");
        foreach (var c in OneDnnConvolutions.Cases)
            Console.WriteLine($"case {OneDnnConvolutions.Describe(c)}: error {OneDnnConvolutions.Error(c).ToString("E2", System.Globalization.CultureInfo.InvariantCulture)}");
        return 0;
    }

    /// <summary>
    /// Relaunches with huge pages where it can (Runtime/HugePagesTests), then prints its process id, its arguments,
    /// GLIBC_TUNABLES, <see cref="HugePages.Status"/> and how much of 64 MB of touched malloc memory the kernel backs
    /// with huge pages.
    /// </summary>
    private static int HugePagesChild(string[] rest)
    {
        Console.WriteLine($"before pid {Environment.ProcessId}");   // printed twice where the child relaunched
        HugePages.RelaunchIfOff();
        Console.WriteLine($"pid {Environment.ProcessId}");
        foreach (var a in rest) Console.WriteLine($"arg [{a}]");
        Console.WriteLine($"tunables [{Environment.GetEnvironmentVariable("GLIBC_TUNABLES")}]");
        Console.WriteLine($"status [{HugePages.Status}]");
        const int Size = 64 << 20;
        IntPtr block = System.Runtime.InteropServices.Marshal.AllocHGlobal(Size);
        var ones = Enumerable.Repeat((byte)1, 1 << 20).ToArray();
        for (int offset = 0; offset < Size; offset += ones.Length)
            System.Runtime.InteropServices.Marshal.Copy(ones, 0, block + offset, ones.Length);
        long hugeKb = 0;
        foreach (var line in File.ReadLines("/proc/self/smaps_rollup"))
            if (line.StartsWith("AnonHugePages:", StringComparison.Ordinal))
                hugeKb = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture);
        Console.WriteLine($"anon-huge-kb {hugeKb}");
        System.Runtime.InteropServices.Marshal.FreeHGlobal(block);
        Console.WriteLine($"aligned-block-places {AlignedBlockPlaces()}");
        return HugePagesExitCode;
    }

    /// <summary>
    /// As libtorch allocates tensors: a 64-byte-aligned 16 MB block (its data; <c>posix_memalign</c>), then a small
    /// object while it lives (its metadata), then the block freed; six times. Returns at how many different addresses
    /// the six blocks were: without the per-thread cache (<see cref="HugePages.NoThreadCache"/>) the freed block's place
    /// is taken again. With it, a C program doing the same on glibc 2.36 got five places (each new block memory not
    /// touched before); in this process the runtime's own earlier allocations make that vary (1-5), so only the
    /// relaunched case is asserted.
    /// </summary>
    private static int AlignedBlockPlaces()
    {
        const int Block = 16 << 20;
        var places = new HashSet<IntPtr>();
        var small = new List<IntPtr>();
        for (int i = 0; i < 6; i++)
        {
            if (posix_memalign(out IntPtr p, 64, Block) != 0) throw new OutOfMemoryException();
            places.Add(p);
            small.Add(malloc(200));
            free(p);
        }
        foreach (var q in small) free(q);
        return places.Count;
    }

    [System.Runtime.InteropServices.DllImport("libc")] private static extern int posix_memalign(out IntPtr p, nuint alignment, nuint size);
    [System.Runtime.InteropServices.DllImport("libc")] private static extern IntPtr malloc(nuint size);
    [System.Runtime.InteropServices.DllImport("libc")] private static extern void free(IntPtr p);

}
