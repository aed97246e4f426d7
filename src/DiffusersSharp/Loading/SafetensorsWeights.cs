using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Loading;

/// <summary>
/// A model's safetensors weights (one file, or a shard index whose shards are all safetensors), open but not read: the
/// streaming half of <see cref="ModelLoading.LoadWeights"/>. <see cref="Placeholders"/> holds, per tensor name, a
/// meta tensor of the stored shape and dtype (no data), so that the key renames and every check of
/// <see cref="WeightLoader.LoadInto"/> run as on read tensors; <see cref="CopyInto"/> then fills one target from the
/// file at a time, 16 MB at a time: a load holds the model and one chunk's conversion, never a second copy of the file.
/// </summary>
internal sealed class SafetensorsWeights : IDisposable
{
    private readonly List<SafetensorsFile> _files = [];
    private readonly Dictionary<Tensor, (SafetensorsFile File, SafetensorsEntry Entry)> _sources =
        new(ReferenceEqualityComparer.Instance);

    private SafetensorsWeights() { }

    /// <summary>
    /// Every tensor of the file(s) as a meta placeholder of its read dtype (<see cref="SafetensorsFile.ToScalarType"/>:
    /// Float32 for float8), by name (the caller may rename or remove entries). An unsigned 16-64-bit tensor (U16, U32,
    /// U64), which TorchSharp has no type for, has an Int64 placeholder; <see cref="CopyInto"/> refuses it, and
    /// <see cref="StoredDType"/> names its real dtype in the load's messages.
    /// </summary>
    public Dictionary<string, Tensor> Placeholders { get; private set; } = new(StringComparer.Ordinal);

    /// <summary>
    /// Whether <paramref name="path"/> (what <see cref="WeightLoader.FindWeights(string, CheckpointFormat, string?)"/>
    /// found) can be streamed: a <c>.safetensors</c> file, or a shard index whose shards all are. A malformed index
    /// throws as <see cref="WeightLoader.ReadFile"/> would.
    /// </summary>
    public static bool CanStream(string path)
    {
        string file = Path.GetFileName(path);
        if (file.EndsWith(".safetensors", StringComparison.Ordinal)) return true;
        return file.EndsWith(".json", StringComparison.Ordinal)
            && ShardIndex.ReadWeightMap(path).Values.All(s => s.EndsWith(".safetensors", StringComparison.Ordinal));
    }

    /// <summary>
    /// Maps the file, or every shard of the index (with the index's checks and messages), and validates their headers.
    /// </summary>
    public static SafetensorsWeights Open(string path)
    {
        var w = new SafetensorsWeights();
        try
        {
            w.Placeholders = Path.GetFileName(path).EndsWith(".json", StringComparison.Ordinal)
                ? ShardIndex.Read(path, w.OpenFile)
                : w.OpenFile(path);
            return w;
        }
        catch
        {
            w.Dispose();
            throw;
        }
    }

    private Dictionary<string, Tensor> OpenFile(string path)
    {
        var file = SafetensorsFile.Open(path);
        _files.Add(file);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var name in file.Keys)
        {
            var e = file.Entry(name);
            // float8 is read as Float32; an unsigned 16-64-bit dtype, which TorchSharp cannot hold, gets an Int64 stand-in:
            // the file opens, and only reading that tensor (CopyInto) fails, naming the file, the tensor and the dtype
            var dtype = SafetensorsFile.TryScalarType(e.DType) ?? ScalarType.Int64;
            var placeholder = torch.empty(e.Shape, dtype, device: torch.META);
            _sources[placeholder] = (file, e);
            result[name] = placeholder;
        }
        return result;
    }

    /// <summary>
    /// The dtype <paramref name="weight"/> is stored as, for messages: a placeholder's safetensors dtype name (<c>F8_E4M3</c>,
    /// <c>U16</c>) where its torch dtype is a stand-in (decoded or refused), else its torch dtype.
    /// </summary>
    public string StoredDType(Tensor weight) =>
        _sources.TryGetValue(weight, out var source) && !SafetensorsFile.ReadAsStored(source.Entry.DType)
            ? source.Entry.DType
            : weight.dtype.ToString();

    /// <summary>Bytes copied (and converted) at a time: of the stored tensor, or of the read one where that is larger
    /// (float8, read as Float32).</summary>
    internal const long ChunkBytes = 16L << 20;

    /// <summary>
    /// Fills <paramref name="target"/> with <paramref name="weight"/>. A placeholder is read from the file in chunks of at
    /// most <see cref="ChunkBytes"/> (<see cref="SafetensorsFile.ReadElements"/>: float8 decoded to Float32): each chunk
    /// read straight into the target's memory when the target is a contiguous CPU tensor of the read dtype, else through
    /// one chunk-sized temporary of the read dtype that
    /// <c>copy_</c> converts into the target's slice (element by element, as for a whole read tensor). A channels-last
    /// target (a convolution kernel in NHWC strides) is filled a block of output channels at a time through such a
    /// temporary; a column-major 2-D target (a linear weight kept transposed) gets a temporary of the whole tensor copied
    /// transposing, and any other non-contiguous target gets one temporary of the whole tensor. Any other tensor is
    /// copied as it is.
    /// </summary>
    public void CopyInto(Tensor target, Tensor weight)
    {
        if (!_sources.TryGetValue(weight, out var source))
        {
            WeightLoader.CopyWeight(target, weight);
            return;
        }
        var (file, e) = source;
        var dtype = file.ScalarTypeOf(e); // the read dtype; one TorchSharp has no type for throws here, before any read
        long n = target.numel();
        if (e.ByteLength == 0 || n == 0) return;
        long elem = Math.Max(e.ByteLength / n, weight.element_size());
        if (!target.is_contiguous())
        {
            if (IsChannelsLast(target) && target.shape.SequenceEqual(e.Shape))
            {
                // a convolution kernel kept in NHWC strides (Models/ConvKernelLayout): each run of output channels is
                // one block of its memory, filled from the stored NCHW rows through a chunk-sized temporary
                long rowElements = n / target.shape[0], rows = Math.Max(1, ChunkBytes / (rowElements * elem));
                for (long start = 0; start < target.shape[0]; start += rows)
                {
                    long count = Math.Min(rows, target.shape[0] - start);
                    using var block = target.narrow(0, start, count);
                    using var temp = torch.empty([count, .. e.Shape[1..]], dtype);
                    file.ReadElements(e, start * rowElements, temp);
                    block.copy_(temp);
                }
                return;
            }
            using var whole = torch.empty(e.Shape, dtype);
            file.CopyInto(e, whole);
            WeightLoader.CopyWeight(target, whole);   // transposing where the target is a column-major linear weight
            return;
        }
        bool direct = target.dtype == dtype && target.device_type == DeviceType.CPU;
        long perChunk = Math.Max(1, ChunkBytes / elem);
        using var flat = target.view(-1);
        for (long start = 0; start < n; start += perChunk)
        {
            long count = Math.Min(perChunk, n - start);
            using var slice = flat.narrow(0, start, count);
            if (direct)
            {
                file.ReadElements(e, start, slice);
            }
            else
            {
                using var temp = torch.empty(count, dtype);
                file.ReadElements(e, start, temp);
                slice.copy_(temp);
            }
        }
    }

    /// <summary>A 4-D tensor with NHWC strides (torch's channels_last, every dimension dense).</summary>
    private static bool IsChannelsLast(Tensor t) =>
        t.dim() == 4 && t.stride(1) == 1 && t.stride(3) == t.shape[1] && t.stride(2) == t.shape[1] * t.shape[3]
        && t.stride(0) == t.shape[1] * t.shape[2] * t.shape[3];

    /// <summary>Frees the placeholders and unmaps the files.</summary>
    public void Dispose()
    {
        foreach (var t in _sources.Keys) t.Dispose();
        _sources.Clear();
        foreach (var f in _files) f.Dispose();
        _files.Clear();
    }
}
