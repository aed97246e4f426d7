using TorchSharp;

namespace DiffusersSharp.Runtime;

/// <summary>
/// What the CPU can do natively, for choosing a dtype: bfloat16 pays on a CPU only where oneDNN has bf16
/// instructions (AVX512-BF16 dot products or AMX tiles); elsewhere libtorch emulates it and bf16 is slower than fp32.
/// Read from the <c>flags</c> line of <c>/proc/cpuinfo</c> (Linux); on other systems no native bf16 is reported.
/// </summary>
public static class CpuFeatures
{
    /// <summary>The x86 cpuinfo flags that mean native bf16 matrix arithmetic: AVX512-BF16, AMX-BF16.</summary>
    public static readonly IReadOnlyList<string> BFloat16Flags = ["avx512_bf16", "amx_bf16"];

    private static readonly Lazy<IReadOnlySet<string>> Flags = new(ReadFlags);

    /// <summary>The CPU flags of this machine (empty where /proc/cpuinfo is not readable).</summary>
    public static IReadOnlySet<string> CurrentFlags => Flags.Value;

    /// <summary>True when this CPU computes bfloat16 natively (see <see cref="BFloat16Flags"/>).</summary>
    public static bool HasNativeBFloat16 => NativeBFloat16Flag(CurrentFlags) is not null;

    /// <summary>The first of <see cref="BFloat16Flags"/> present in <paramref name="flags"/>, or null.</summary>
    public static string? NativeBFloat16Flag(IReadOnlySet<string> flags)
    {
        ArgumentNullException.ThrowIfNull(flags);
        return BFloat16Flags.FirstOrDefault(flags.Contains);
    }

    /// <summary>
    /// The dtype <c>--dtype auto</c> means: bfloat16 where the CPU has native bf16 (<see cref="HasNativeBFloat16"/>),
    /// else float32.
    /// </summary>
    public static torch.ScalarType AutoDtype() => HasNativeBFloat16 ? torch.ScalarType.BFloat16 : torch.ScalarType.Float32;

    /// <summary>
    /// The flags of the first processor in a <c>/proc/cpuinfo</c> text (the <c>flags</c> line on x86, <c>Features</c>
    /// on ARM); empty when there is none.
    /// </summary>
    public static IReadOnlySet<string> ParseCpuInfo(string cpuinfo)
    {
        ArgumentNullException.ThrowIfNull(cpuinfo);
        foreach (var line in cpuinfo.Split('\n'))
        {
            int colon = line.IndexOf(':');
            if (colon < 0) continue;
            string key = line[..colon].Trim();
            if (key is "flags" or "Features")
                return new HashSet<string>(line[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries), StringComparer.Ordinal);
        }
        return new HashSet<string>(StringComparer.Ordinal);
    }

    private static IReadOnlySet<string> ReadFlags()
    {
        try
        {
            return OperatingSystem.IsLinux() && File.Exists("/proc/cpuinfo")
                ? ParseCpuInfo(File.ReadAllText("/proc/cpuinfo"))
                : new HashSet<string>(StringComparer.Ordinal);
        }
        catch (IOException)
        {
            return new HashSet<string>(StringComparer.Ordinal);
        }
        catch (UnauthorizedAccessException)
        {
            return new HashSet<string>(StringComparer.Ordinal);
        }
    }
}
