using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Runtime;

/// <summary>diffusers' <c>utils/torch_utils.py</c> (v0.25.1) helpers that every layer shares, and <see cref="Scoped{T}(Func{T})"/> (tensor work in a dispose scope of its own).</summary>
public static class TorchUtils
{
    /// <summary>
    /// <paramref name="compute"/>'s result, computed in a dispose scope of its own: its temporaries are held while libtorch
    /// reads them and freed when it returns; a tensor result is moved out to the caller (docs/ARCHITECTURE.md, "Tensor
    /// ownership": code that may run with no scope open, where a dropped temporary could be finalised mid-call).
    /// </summary>
    internal static T Scoped<T>(Func<T> compute)
    {
        using var scope = torch.NewDisposeScope();
        var result = compute();
        if (result is Tensor t) scope.MoveToOuter(t);
        return result;
    }

    /// <summary>
    /// <paramref name="compute"/>'s result, computed in a dispose scope of its own, for a result that holds tensors (a
    /// state dict, a loaded file): the tensors <paramref name="tensorsOf"/> lists are moved out to the caller, everything
    /// else made in the scope is freed when it returns (or throws).
    /// </summary>
    internal static T Scoped<T>(Func<T> compute, Func<T, IEnumerable<Tensor>> tensorsOf)
    {
        using var scope = torch.NewDisposeScope();
        var result = compute();
        scope.MoveToOuter(tensorsOf(result));
        return result;
    }

    /// <summary>
    /// diffusers' <c>fourier_filter(x_in, threshold, scale)</c> (FreeU): the 2-D FFT over the last two dims of the
    /// (B, C, H, W) <paramref name="x"/>, shifted so the zero frequency sits at (H // 2, W // 2); the rows and columns
    /// <c>[centre - threshold, centre + threshold)</c> (Python's slice rules) multiplied by <paramref name="scale"/> (as
    /// a float32 mask, as diffusers' <c>torch.ones</c> mask is); shifted back, inverse FFT, the real part in
    /// <paramref name="x"/>'s dtype. As diffusers, an H or W that is not a power of 2 is transformed in float32 (float64
    /// included). One difference: bfloat16 and float16 are transformed in float32 at every size (the CPU's FFT has
    /// neither, where diffusers' call fails). A new tensor; <paramref name="x"/> is not changed.
    /// </summary>
    public static Tensor FourierFilter(Tensor x, int threshold, double scale) => Scoped(() =>
    {
        if (x.dim() != 4)
            throw new ArgumentException($"fourier_filter: x must be (B, C, H, W), got shape [{string.Join(", ", x.shape)}]", nameof(x));
        long h = x.shape[2], w = x.shape[3];
        bool powersOf2 = (w & (w - 1)) == 0 && (h & (h - 1)) == 0;
        var input = powersOf2 && x.dtype is ScalarType.Float32 or ScalarType.Float64 ? x : x.to(ScalarType.Float32);
        long[] dims = [-2, -1];
        var freq = torch.fft.fftshift(torch.fft.fftn(input, dim: dims), dims);
        var mask = torch.ones([1, 1, h, w], ScalarType.Float32, x.device);
        var (rows, cols) = (PySlice(h / 2 - threshold, h / 2 + threshold, h), PySlice(w / 2 - threshold, w / 2 + threshold, w));
        mask[TensorIndex.Ellipsis, TensorIndex.Slice(rows.Start, rows.Stop), TensorIndex.Slice(cols.Start, cols.Stop)].fill_(scale);
        var filtered = torch.fft.ifftn(torch.fft.ifftshift(freq * mask, dims), dim: dims).real;
        return filtered.to(x.dtype);
    });

    /// <summary>Python's <c>[start:stop]</c> on a dimension of <paramref name="length"/>: negative ends count from the end, both clamped.</summary>
    private static (long Start, long Stop) PySlice(long start, long stop, long length)
    {
        static long Clamp(long i, long n) => Math.Clamp(i < 0 ? i + n : i, 0, n);
        long s = Clamp(start, length), e = Clamp(stop, length);
        return (s, Math.Max(s, e));
    }

    /// <summary>
    /// diffusers' <c>randn_tensor(shape, generator, device, dtype)</c>. No generator: torch's global generator draws
    /// on <paramref name="device"/>. One generator (or a list of one): it draws the whole tensor, on the CPU when it is
    /// a CPU generator, and the result moves to <paramref name="device"/>. A list: item i of the batch (dim 0) is
    /// <c>randn((1,) + shape[1:])</c> from generator i, the items concatenated.
    /// One difference from diffusers: a bfloat16 / float16 <paramref name="dtype"/> is drawn in float32 and rounded.
    /// torch's own bf16/fp16 normals come from uniforms first rounded to that precision, so a seed would start a
    /// bf16 run from other noise than the fp32 run (for Stable Diffusion, another image); rounded float32 normals keep
    /// the seed's image in every dtype. float32 and float64 draws are torch's.
    /// </summary>
    public static Tensor RandnTensor(long[] shape, IReadOnlyList<Generator>? generators, ScalarType dtype, Device device) =>
        Scoped(() => Draw(shape, generators, dtype, device));

    private static Tensor Draw(long[] shape, IReadOnlyList<Generator>? generators, ScalarType dtype, Device device)
    {
        if (dtype is ScalarType.BFloat16 or ScalarType.Float16)
        {
            using var full = Draw(shape, generators, ScalarType.Float32, device);
            return full.to(dtype);
        }
        if (generators is null)
            return torch.randn(shape, dtype, device);
        // diffusers fails on an empty list (IndexError); read as "none" it would draw from the global generator unseen
        if (generators.Count == 0)
            throw new DiffusersException("randn_tensor: the list of generators is empty; pass null for torch's global generator, or one generator (or one per sample)");
        var genType = generators[0].device.type;
        if (generators.Any(g => g.device.type != genType))
            throw new DiffusersException("randn_tensor: the generators of one call must all be on the same device");
        Device randDevice = device;
        if (genType != device.type)
        {
            if (genType != DeviceType.CPU)
                throw new DiffusersException($"Cannot generate a {device.type} tensor from a generator of type {genType}.");
            randDevice = CPU;
        }
        if (generators.Count == 1)
            return Moved(torch.randn(shape, dtype, randDevice, generator: generators[0]), device);
        if (shape.Length == 0 || generators.Count != shape[0])
            throw new DiffusersException(
                $"You have passed a list of generators of length {generators.Count}, but requested an effective batch size of " +
                $"{(shape.Length == 0 ? 0 : shape[0])}. Make sure the batch size matches the length of the generators.");
        var itemShape = (long[])shape.Clone();
        itemShape[0] = 1;
        var items = new Tensor[generators.Count];
        try
        {
            for (int i = 0; i < items.Length; i++)
                items[i] = torch.randn(itemShape, dtype, randDevice, generator: generators[i]);
            return Moved(torch.cat(items, dim: 0), device);
        }
        finally
        {
            foreach (var t in items) t?.Dispose();
        }
    }

    /// <summary><see cref="RandnTensor(long[], IReadOnlyList{Generator}?, ScalarType, Device)"/> with one generator (or none).</summary>
    public static Tensor RandnTensor(long[] shape, Generator? generator, ScalarType dtype, Device device) =>
        RandnTensor(shape, generator is null ? null : [generator], dtype, device);

    private static Tensor Moved(Tensor t, Device device)
    {
        if (t.device.type == device.type && t.device.index == device.index) return t;
        using (t) return t.to(device);
    }
}
