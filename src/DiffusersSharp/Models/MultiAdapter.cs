using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>MultiAdapter</c> (models/adapter.py, v0.25.1): several <see cref="T2IAdapter"/>s, each with its own
/// control image; their states are summed with one weight per adapter (<c>w_0 · s_0 + w_1 · s_1 + …</c>). Weight names:
/// <c>adapters.{k}.…</c>. Disposing it disposes the adapters.
/// </summary>
public sealed class MultiAdapter : nn.Module
{
    private readonly ModuleList<T2IAdapter> adapters = new();

    /// <summary>
    /// Wraps <paramref name="t2iAdapters"/>: at least two (diffusers' messages), with the same downscaling
    /// (<c>downscale_factor</c> and <c>total_downscale_factor</c>), else <see cref="ArgumentException"/>.
    /// </summary>
    public MultiAdapter(IEnumerable<T2IAdapter> t2iAdapters) : base(nameof(MultiAdapter))
    {
        ArgumentNullException.ThrowIfNull(t2iAdapters);
        foreach (var a in t2iAdapters) adapters.Add(a ?? throw new ArgumentNullException(nameof(t2iAdapters), "MultiAdapter: an adapter is null"));
        if (adapters.Count == 0) throw new ArgumentException("MultiAdapter: Expecting at least one adapter", nameof(t2iAdapters));
        if (adapters.Count == 1)
            throw new ArgumentException("MultiAdapter: For a single adapter, please use the `T2IAdapter` class instead of `MultiAdapter`", nameof(t2iAdapters));
        var first = adapters[0];
        for (int k = 1; k < adapters.Count; k++)
        {
            if (adapters[k].TotalDownscaleFactor != first.TotalDownscaleFactor || adapters[k].DownscaleFactor != first.DownscaleFactor)
                throw new ArgumentException(
                    "MultiAdapter: Expecting all adapters to have the same downscaling behavior, but got: " +
                    $"adapters[0].total_downscale_factor={first.TotalDownscaleFactor}, adapters[0].downscale_factor={first.DownscaleFactor}, " +
                    $"adapters[{k}].total_downscale_factor={adapters[k].TotalDownscaleFactor}, adapters[{k}].downscale_factor={adapters[k].DownscaleFactor}",
                    nameof(t2iAdapters));
        }
        RegisterComponents();
    }

    /// <summary>The adapters, in order.</summary>
    public IReadOnlyList<T2IAdapter> Adapters => adapters.ToList();

    /// <summary>diffusers' <c>downscale_factor</c> (every adapter's).</summary>
    public int DownscaleFactor => adapters[0].DownscaleFactor;

    /// <summary>diffusers' <c>total_downscale_factor</c> (every adapter's).</summary>
    public int TotalDownscaleFactor => adapters[0].TotalDownscaleFactor;

    /// <summary>
    /// Runs adapter k on <paramref name="xs"/>[k] and sums the states weighted by <paramref name="adapterWeights"/>[k]
    /// (default 1 / number of adapters each, as diffusers). One image and one weight per adapter, or
    /// <see cref="ArgumentException"/>; adapters whose states differ in shape cannot be summed (also an
    /// <see cref="ArgumentException"/>, naming the adapter and the state).
    /// </summary>
    public Tensor[] Forward(IReadOnlyList<Tensor> xs, IReadOnlyList<double>? adapterWeights = null)
    {
        ArgumentNullException.ThrowIfNull(xs);
        int n = adapters.Count;
        if (xs.Count != n)
            throw new ArgumentException($"MultiAdapter: {xs.Count} control images for {n} adapters; pass one per adapter", nameof(xs));
        // diffusers builds torch.tensor(weights): float32 values
        var weights = (adapterWeights ?? Enumerable.Repeat(1.0 / n, n).ToList()).Select(w => (double)(float)w).ToArray();
        if (weights.Length != n)
            throw new ArgumentException($"MultiAdapter: {weights.Length} adapter weights for {n} adapters; pass one per adapter", nameof(adapterWeights));
        using var scope = torch.NewDisposeScope();
        Tensor[]? sum = null;
        for (int k = 0; k < n; k++)
        {
            var features = adapters[k].Forward(xs[k]);
            if (sum is null)
            {
                sum = features.Select(f => f.mul_(weights[k])).ToArray();
                continue;
            }
            if (features.Length != sum.Length)
                throw new ArgumentException($"MultiAdapter: adapter {k} gives {features.Length} states, adapter 0 {sum.Length}; the adapters of one pipeline must fit the same UNet", nameof(xs));
            for (int i = 0; i < sum.Length; i++)
            {
                if (!features[i].shape.SequenceEqual(sum[i].shape))
                    throw new ArgumentException(
                        $"MultiAdapter: state {i} of adapter {k} has shape {Layers.Shape(features[i])}, adapter 0's {Layers.Shape(sum[i])}; the adapters of one pipeline must fit the same UNet", nameof(xs));
                sum[i] = sum[i].add_(features[i].mul_(weights[k]));
            }
        }
        scope.MoveToOuter(sum!);
        return sum!;
    }
}
