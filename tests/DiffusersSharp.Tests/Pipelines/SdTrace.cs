using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>Collects what a Stable Diffusion pipeline records (its internal Trace) and compares it with golden keys.</summary>
internal sealed class SdTrace : IDisposable
{
    private readonly Dictionary<string, List<Tensor>> _items = new(StringComparer.Ordinal);

    public SdTrace(StableDiffusionPipelineBase pipe) => pipe.Trace = Add;

    public SdTrace(StableDiffusionXLPipelineBase pipe) => pipe.Trace = Add;

    private void Add(string name, int step, Tensor t)
    {
        if (!_items.TryGetValue(name, out var list)) _items[name] = list = [];
        list.Add(t.detach().to(ScalarType.Float32).cpu().clone().DetachFromDisposeScope());
    }

    public bool Has(string name) => _items.ContainsKey(name);

    /// <summary>One recorded tensor (the single one, or the last).</summary>
    public Tensor One(string name) => _items[name][^1];

    /// <summary>The first recorded tensor (step 0's).</summary>
    public Tensor First(string name) => _items[name][0];

    /// <summary>Per-step records stacked on a new dim 0.</summary>
    public Tensor Stacked(string name) => torch.stack(_items[name], 0);

    public int Count(string name) => _items.TryGetValue(name, out var l) ? l.Count : 0;

    public void Dispose()
    {
        foreach (var l in _items.Values) foreach (var t in l) t.Dispose();
    }

    /// <summary>Max abs error of <paramref name="actual"/> vs golden <paramref name="key"/>, logged and asserted.</summary>
    public static double Check(ITestOutputHelper log, SafetensorsLike file, string key, Tensor actual, double tol)
    {
        using var expected = file.Load(key).to(ScalarType.Float32);
        double err = Tol.MaxAbsDiff(actual.reshape(expected.shape), expected);
        log.WriteLine($"{key}: max abs error {err:E3}");
        Assert.True(err <= tol, $"{key}: max |actual - expected| = {err:E3} > {tol:E1}");
        return err;
    }

    /// <summary>Images within 1/255 on ≥ 99.9 % of values (the pipeline tolerance).</summary>
    public static void CheckImages(ITestOutputHelper log, SafetensorsLike file, string key, Tensor actual)
    {
        using var expected = file.Load(key);
        Assert.Equal(expected.shape, actual.shape);
        double maxErr = Tol.MaxAbsDiff(actual, expected);
        using var within = ((actual - expected).abs() <= 1.0 / 255).to(ScalarType.Float64).mean();
        double fraction = within.item<double>();
        log.WriteLine($"{key}: max abs error {maxErr:E3}, within 1/255: {fraction:P3}");
        Assert.True(fraction >= 0.999, $"{key}: only {fraction:P3} of values within 1/255 (max error {maxErr:E3})");
    }
}

/// <summary>A golden safetensors file kept open for many loads.</summary>
internal sealed class SafetensorsLike(string file) : IDisposable
{
    private readonly DiffusersSharp.Loading.SafetensorsFile _f = Golden.Open(file);
    public Tensor Load(string key) => _f.Load(key);
    public bool Contains(string key) => _f.Contains(key);
    public void Dispose() => _f.Dispose();
}
