using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Runtime;

/// <summary>
/// Whether libtorch's convolution engine, oneDNN, computes correctly on this machine, and the fallback where it does not.
/// The cause found (oneDNN reading 1-byte caches from an empty CPUID leaf) is repaired first by <see cref="OneDnnCaches"/>;
/// this class is the second line: it checks the result, and covers machines where the repair cannot be made.
/// <para>
/// Unrepaired, on the VM this project was measured on from 2026-12-05 (AMD EPYC, family 26; CPUID reports no cache
/// topology: leaves 4 and 0x8000001D empty), libtorch 2.10's oneDNN v3.7.1 returns wrong values, off by whole units and deterministic for a
/// shape, for some convolutions: float32 3×3 convolutions of contiguous (NCHW) inputs whose input channels are above 16
/// and not a multiple of 16 (20, 24, 40, 56, 72: every output row after the first is wrong), bfloat16 3×3 convolutions of
/// NCHW inputs of any channel count, and some channels-last 1×1 float32 convolutions of such channel counts. Its other
/// paths (channels-last 3×3 in both dtypes, multiples of 16) are right there. Published models' convolutions have
/// channel counts that are multiples of 16 (apart from the first layer's 3, 4 or 9, which oneDNN handles apart), and
/// the pipelines run bfloat16 channels-last, so they are not affected; small or custom configurations are (the tiny
/// SDXL test model concatenates 16 + 8 channels).
/// </para>
/// <para>
/// <see cref="Check"/> runs such convolutions once per process (a few milliseconds) against the same sums computed by
/// <c>unfold</c> and a float64 matmul. Every model pass with convolutions first calls <see cref="BeforePass"/> with whether
/// its kernels are of the affected kinds (<see cref="AtRisk"/>). The first such pass on a machine where the check failed
/// switches libtorch's oneDNN off for the rest of the process (<c>torch.backends.mkldnn.enabled = False</c>: libtorch's
/// own convolutions, correct and slower) and prints a warning. Off for good rather than around each pass: the switch is
/// process-wide, and turning it back on would let passes running at the same time in other threads change path midway
/// (the same seed would give images that differ in the last bits). Passes of models without such kernels never trigger
/// it, so published models keep oneDNN's speed. <see cref="AvoidIfWrong"/> makes the switch at once (an application
/// that wants one path from its start; the test suite does this). <c>DIFFUSERS_SHARP_TRUST_ONEDNN=1</c> skips the check
/// (oneDNN always used).
/// </para>
/// </summary>
public static class OneDnnConvolutions
{
    private const string TrustVariable = "DIFFUSERS_SHARP_TRUST_ONEDNN";
    private static readonly Lazy<IReadOnlyList<string>> Failures = new(Probe, LazyThreadSafetyMode.ExecutionAndPublication);
    private static int _off;

    /// <summary>Where the warning goes (standard error by default); one line, once per process.</summary>
    public static Action<string> Warn { get; set; } = message => Console.Error.WriteLine("warning: " + message);

    /// <summary>
    /// The probe's failing cases (empty where oneDNN computed them all correctly, or when
    /// <c>DIFFUSERS_SHARP_TRUST_ONEDNN=1</c>); runs it on first use.
    /// </summary>
    public static IReadOnlyList<string> Check()
    {
        if (NativeSetup.OptedOut(TrustVariable)) return [];
        OneDnnCaches.EnsureRepaired();   // the probe judges oneDNN as the passes will use it
        return Failures.Value;
    }

    /// <summary>True where <see cref="Check"/> found no wrong convolution.</summary>
    public static bool Correct => Check().Count == 0;

    /// <summary>True once this process switched libtorch's oneDNN off (<see cref="BeforePass"/>, <see cref="AvoidIfWrong"/>).</summary>
    public static bool SwitchedOff => Volatile.Read(ref _off) == 1;

    /// <summary>One line for status reports; does not run the check.</summary>
    public static string Status =>
        SwitchedOff ? $"oneDNN: off (wrong on this CPU: {string.Join("; ", Check())})"
        : Failures.IsValueCreated ? (Correct ? "oneDNN: checked, correct" : "oneDNN: wrong on this CPU for kinds no model here has used")
        : "oneDNN: not checked yet (checked at the first pass of a model with convolution kinds it can get wrong)";

    /// <summary>
    /// Whether a model's convolution kernels (its 4-D parameters, [out, in, kh, kw]) include a kind oneDNN gets wrong on
    /// such machines: input channels above 16 and not a multiple of 16, or, for a pass in bfloat16 with NCHW inputs
    /// (<paramref name="bf16Nchw"/>), any kernel larger than 1×1.
    /// </summary>
    public static bool AtRisk(IEnumerable<long[]> kernelShapes, bool bf16Nchw) =>
        kernelShapes.Any(s => s.Length == 4 && ((s[1] > 16 && s[1] % 16 != 0) || (bf16Nchw && s[2] * s[3] > 1)));

    /// <summary>
    /// Called by every model pass with convolutions before it starts: where <paramref name="atRisk"/> and
    /// <see cref="Check"/> finds oneDNN wrong here, switches it off for the rest of the process (once, with a warning).
    /// </summary>
    public static void BeforePass(bool atRisk)
    {
        OneDnnCaches.EnsureRepaired();
        if (atRisk && !SwitchedOff && !Correct) SwitchOff("a model with such convolutions ran");
    }

    /// <summary>Switches libtorch's oneDNN off now where <see cref="Check"/> finds it wrong here; returns whether it is off.</summary>
    public static bool AvoidIfWrong()
    {
        if (!SwitchedOff && !Correct) SwitchOff("asked to at start");
        return SwitchedOff;
    }

    private static void SwitchOff(string why)
    {
        if (Interlocked.Exchange(ref _off, 1) == 1) return;
        NativeSetup.SetLibTorchMkldnn(false);
        Warn($"libtorch's oneDNN computes some convolutions wrongly on this CPU ({string.Join("; ", Check())}); {why}, so this " +
             $"process now uses libtorch's own convolutions (correct, slower). {TrustVariable}=1 keeps oneDNN.");
    }

    /// <summary>The probe's cases: (dtype, channels-last, batch, in, out, kernel, size), each a kind seen wrong.</summary>
    internal static readonly (ScalarType DType, bool ChannelsLast, int Batch, int In, int Out, int Kernel, int Size)[] Cases =
    [
        (ScalarType.Float32, false, 1, 24, 8, 3, 32),
        (ScalarType.Float32, false, 2, 40, 16, 3, 24),
        (ScalarType.BFloat16, false, 1, 16, 16, 3, 16),
        (ScalarType.Float32, true, 1, 72, 64, 1, 64),
    ];

    /// <summary>Describes one case, as the warning names it.</summary>
    internal static string Describe((ScalarType DType, bool ChannelsLast, int Batch, int In, int Out, int Kernel, int Size) c) =>
        $"{(c.DType == ScalarType.BFloat16 ? "bf16" : "fp32")} {(c.ChannelsLast ? "channels-last" : "NCHW")} {c.Kernel}x{c.Kernel} " +
        $"convolution of {c.In} channels";

    /// <summary>Runs every case with libtorch's convolution and compares it with unfold + float64 matmul of the same inputs.</summary>
    private static IReadOnlyList<string> Probe() =>
        Cases.Where(c => !(Error(c) <= (c.DType == ScalarType.BFloat16 ? 0.02 : 1e-3))).Select(Describe).ToList();

    /// <summary>
    /// The largest error of one case's convolution, relative to |expected| + 1, against unfold + float64 matmul of the same
    /// (dtype-rounded) inputs. The sums' own rounding gives ~1e-6 in fp32 and up to 2^-8 in bf16 (the output's rounding);
    /// the failures seen are off by whole units.
    /// </summary>
    internal static double Error((ScalarType DType, bool ChannelsLast, int Batch, int In, int Out, int Kernel, int Size) c)
    {
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var gen = new Generator(1234);
        var x = torch.randn([c.Batch, c.In, c.Size, c.Size], generator: gen).to(c.DType);
        var w = torch.randn([c.Out, c.In, c.Kernel, c.Kernel], generator: gen).to(c.DType);
        var b = torch.randn([c.Out], generator: gen).to(c.DType);
        int pad = c.Kernel / 2;
        var input = c.ChannelsLast ? x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2) : x;
        var y = torch.nn.functional.conv2d(input, w, b, padding: [pad, pad]).to(ScalarType.Float64);
        var cols = torch.nn.functional.unfold(x.to(ScalarType.Float64), (c.Kernel, c.Kernel), padding: (pad, pad));
        var expected = (w.to(ScalarType.Float64).view(c.Out, -1).matmul(cols) + b.to(ScalarType.Float64).view(1, c.Out, 1))
            .view(c.Batch, c.Out, c.Size, c.Size);
        return ((y - expected).abs() / (expected.abs() + 1)).max().item<double>();
    }
}
