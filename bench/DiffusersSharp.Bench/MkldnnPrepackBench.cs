using System.Reflection;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Bench;

/// <summary>
/// <c>bench -- mkldnn-prepack [--runs 20]</c> (issue 14, item 4 ii): does converting a convolution's weight to oneDNN's
/// blocked layout once (instead of on every call) pay? TorchSharp 0.107 exposes no mkldnn layout or op (no
/// <c>to_mkldnn</c>, no <c>torch.ops</c>), so this calls libtorch's <c>at::_ops::mkldnn_reorder_conv2d_weight::call</c> and
/// <c>at::_ops::mkldnn_convolution::call</c> through the C++ ABI (x86-64 SysV, Itanium), an experiment only: fp32
/// convolutions of the ddpm-cat-256 UNet's shapes, NCHW, per call: <c>conv2d</c> (oneDNN reorders the weight every call),
/// <c>mkldnn_convolution</c> with the dense weight, and with the weight reordered once; CPU seconds per call (1 thread)
/// and the max |Δ| of the outputs.
/// </summary>
public static unsafe class MkldnnPrepackBench
{
    [StructLayout(LayoutKind.Sequential)]
    private struct ArrayRef { public long* Data; public nint Length; }

    [StructLayout(LayoutKind.Sequential)]
    private struct OptionalArrayRef { public ArrayRef Value; public byte Engaged; }

    [StructLayout(LayoutKind.Sequential)]
    private struct OptionalTensor { public IntPtr Impl; public byte Engaged; }

    private static delegate* unmanaged<IntPtr, IntPtr, long*, nint, long*, nint, ArrayRef, long*, OptionalArrayRef, IntPtr> _reorder;
    private static delegate* unmanaged<IntPtr, IntPtr, ushort, IntPtr> _toMkldnn;
    private static delegate* unmanaged<IntPtr, IntPtr, IntPtr, OptionalTensor*, long*, nint, ArrayRef, ArrayRef, long*, IntPtr> _conv;

    /// <summary>Compares the three ways to run each convolution shape, <paramref name="runs"/> samples each.</summary>
    public static int Run(int runs)
    {
        var lib = NativeLibrary.Load("libtorch_cpu.so");
        _reorder = (delegate* unmanaged<IntPtr, IntPtr, long*, nint, long*, nint, ArrayRef, long*, OptionalArrayRef, IntPtr>)NativeLibrary.GetExport(lib,
            "_ZN2at4_ops28mkldnn_reorder_conv2d_weight4callERKNS_6TensorEN3c108ArrayRefINS5_6SymIntEEES8_S8_S7_NS5_16OptionalArrayRefIS7_EE");
        _conv = (delegate* unmanaged<IntPtr, IntPtr, IntPtr, OptionalTensor*, long*, nint, ArrayRef, ArrayRef, long*, IntPtr>)NativeLibrary.GetExport(lib,
            "_ZN2at4_ops18mkldnn_convolution4callERKNS_6TensorES4_RKSt8optionalIS2_EN3c108ArrayRefINS9_6SymIntEEESC_SC_SB_");
        _toMkldnn = (delegate* unmanaged<IntPtr, IntPtr, ushort, IntPtr>)NativeLibrary.GetExport(lib,
            "_ZN2at4_ops9to_mkldnn4callERKNS_6TensorESt8optionalIN3c1010ScalarTypeEE");
        torch.set_num_threads(1);
        Console.WriteLine("fp32 3x3 convolutions (padding 1), NCHW, batch 1, 1 thread; CPU time per call (median of runs of 5 calls)");
        foreach (var (cin, cout, size) in new[] { (128, 128, 64), (256, 256, 32), (512, 512, 16), (512, 512, 8) })
            Compare(cin, cout, size, runs);
        return 0;
    }

    private static void Compare(int cin, int cout, int size, int runs)
    {
        using var noGrad = torch.inference_mode();
        using var x = torch.randn(1, cin, size, size);
        using var w = torch.randn(cout, cin, 3, 3) * 0.02;
        using var b = torch.randn(cout);
        using var packed = Reorder(w, x.shape);
        using var reference = nn.functional.conv2d(x, w, b, padding: new long[] { 1, 1 });
        using var viaDense = MkldnnConv(x, w, b);
        using var viaPacked = MkldnnConv(x, packed, b);
        double d1 = (viaDense - reference).abs().max().item<float>(), d2 = (viaPacked - reference).abs().max().item<float>();
        double t0 = PerCall(runs, () => nn.functional.conv2d(x, w, b, padding: new long[] { 1, 1 }).Dispose());
        double t1 = PerCall(runs, () => MkldnnConv(x, w, b).Dispose());
        double t2 = PerCall(runs, () => MkldnnConv(x, packed, b).Dispose());
        Console.WriteLine($"  {cin,4}->{cout,-4} {size,3}²  conv2d {t0 * 1e3,8:F2} ms   mkldnn dense w {t1 * 1e3,8:F2} ms   mkldnn prepacked w {t2 * 1e3,8:F2} ms" +
                          $"   (prepacked/conv2d {t2 / t0:F2}; max |Δ| {d1:E1}, {d2:E1}; weight {cin * cout * 9 * 4 / 1e6:F1} MB)");
    }

    private static double PerCall(int runs, Action call)
    {
        call(); call();
        var each = new double[runs];
        for (int i = 0; i < runs; i++)
        {
            double c0 = Harness.CpuSeconds();
            for (int k = 0; k < 5; k++) call();
            each[i] = (Harness.CpuSeconds() - c0) / 5;
        }
        return each.OrderBy(v => v).ElementAt(runs / 2);
    }

    private static Tensor Reorder(Tensor w, long[] inputShape)
    {
        long* pad = stackalloc long[] { 1, 1 };
        long* stride = stackalloc long[] { 1, 1 };
        long* dil = stackalloc long[] { 1, 1 };
        long groups = 1;
        long* input = stackalloc long[4];
        for (int i = 0; i < 4; i++) input[i] = inputShape[i];
        IntPtr mkldnn = (IntPtr)NativeMemory.Alloc(8);   // the at::Tensor the call constructs (freed by TorchSharp's delete)
        _toMkldnn(mkldnn, w.Handle, 0);                  // std::optional<ScalarType>: none
        using var wm = Wrap(mkldnn);
        IntPtr result = (IntPtr)NativeMemory.Alloc(8);
        _reorder(result, wm.Handle, pad, 2, stride, 2, new ArrayRef { Data = dil, Length = 2 }, &groups,
            new OptionalArrayRef { Value = new ArrayRef { Data = input, Length = 4 }, Engaged = 1 });
        return Wrap(result);
    }

    private static Tensor MkldnnConv(Tensor x, Tensor w, Tensor b)
    {
        long* pad = stackalloc long[] { 1, 1 };
        long* stride = stackalloc long[] { 1, 1 };
        long* dil = stackalloc long[] { 1, 1 };
        long groups = 1;
        var bias = new OptionalTensor { Impl = Marshal.ReadIntPtr(b.Handle), Engaged = 1 };
        IntPtr result = (IntPtr)NativeMemory.Alloc(8);
        _conv(result, x.Handle, w.Handle, &bias, pad, 2, new ArrayRef { Data = stride, Length = 2 }, new ArrayRef { Data = dil, Length = 2 }, &groups);
        return Wrap(result);
    }

    private static readonly ConstructorInfo TensorCtor = typeof(Tensor).GetConstructor(
        BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public, null, [typeof(IntPtr), typeof(bool)], null)
        ?? throw new InvalidOperationException("TorchSharp's Tensor(IntPtr, bool) constructor not found; it has: " + string.Join("; ",
            typeof(Tensor).GetConstructors(BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public)
                .Select(c => string.Join(",", c.GetParameters().Select(p => p.ParameterType.Name)))));

    private static Tensor Wrap(IntPtr handle) => (Tensor)TensorCtor.Invoke([handle, true]);
}
