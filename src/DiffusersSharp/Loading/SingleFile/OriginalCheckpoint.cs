using DiffusersSharp.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Loading.SingleFile;

/// <summary>
/// A single-file checkpoint in the original layout (CompVis/LDM, Stability's SGM, as A1111 and CivitAI share them):
/// <c>.safetensors</c> (header read up front, each tensor read from the file when asked for) or a
/// torch <c>.ckpt</c>/<c>.pt</c>/<c>.pth</c>/<c>.bin</c> (read through the allow-listed unpickler, its
/// <c>"state_dict"</c> entry unwrapped, <c>global_step</c> kept). Keys and shapes are known without loading a tensor.
/// </summary>
public sealed class OriginalCheckpoint : IDisposable
{
    private readonly SafetensorsFile? _safetensors;
    private readonly Dictionary<string, Tensor>? _loaded;
    private readonly Dictionary<string, long[]> _shapes;

    private OriginalCheckpoint(string path, SafetensorsFile? safetensors, Dictionary<string, Tensor>? loaded, long? globalStep,
        Dictionary<string, long[]>? shapes = null)
    {
        Path = path;
        _safetensors = safetensors;
        _loaded = loaded;
        GlobalStep = globalStep;
        _shapes = shapes ?? (safetensors is not null
            ? safetensors.Entries.ToDictionary(e => e.Key, e => e.Value.Shape, StringComparer.Ordinal)
            : loaded!.ToDictionary(e => e.Key, e => e.Value.shape, StringComparer.Ordinal));
    }

    /// <summary>A checkpoint of keys and shapes only (no tensor can be loaded): what architecture inference reads, for checks on
    /// published layouts too large to write.</summary>
    internal static OriginalCheckpoint ShapesOnly(string name, IReadOnlyDictionary<string, long[]> shapes, long? globalStep = null) =>
        new(name, null, new Dictionary<string, Tensor>(), globalStep, new Dictionary<string, long[]>(shapes, StringComparer.Ordinal));

    /// <summary>The file.</summary>
    public string Path { get; }

    /// <summary>The training step a <c>.ckpt</c> records (<c>global_step</c>); null for safetensors files and when absent.</summary>
    public long? GlobalStep { get; }

    /// <summary>Every tensor name in the file, with its shape.</summary>
    public IReadOnlyDictionary<string, long[]> Shapes => _shapes;

    /// <summary>The file extensions read as single-file checkpoints.</summary>
    public static readonly IReadOnlyList<string> Extensions = [".safetensors", ".ckpt", ".pt", ".pth", ".bin"];

    /// <summary>True for an existing file with one of the <see cref="Extensions"/> (a folder or a Hub id is not one).</summary>
    public static bool IsSingleFile(string path) =>
        File.Exists(path) && Extensions.Contains(System.IO.Path.GetExtension(path).ToLowerInvariant());

    /// <summary>Opens <paramref name="path"/>; a missing, truncated or corrupt file is a <see cref="WeightsException"/> naming it.</summary>
    public static OriginalCheckpoint Open(string path)
    {
        if (!File.Exists(path))
            throw new WeightsException(Directory.Exists(path)
                ? $"{path} is a folder; a single-file checkpoint is one .safetensors or .ckpt file"
                : $"Checkpoint file not found: {path}")
            { FilePath = path };
        string ext = System.IO.Path.GetExtension(path).ToLowerInvariant();
        if (ext == ".safetensors") return new OriginalCheckpoint(path, SafetensorsFile.Open(path), null, null);
        if (Extensions.Contains(ext))
        {
            var tensors = TorchBinFile.LoadCheckpoint(path, out long? step);
            return new OriginalCheckpoint(path, null, tensors, step);
        }
        throw new WeightsException(
            $"{path}: unknown checkpoint file type '{ext}' (expected {string.Join(", ", Extensions)})")
        { FilePath = path };
    }

    /// <summary>Whether the file holds a tensor named <paramref name="key"/>.</summary>
    public bool Contains(string key) => _shapes.ContainsKey(key);

    /// <summary>The shape of <paramref name="key"/>, or null when the file has no such tensor.</summary>
    public long[]? Shape(string key) => _shapes.GetValueOrDefault(key);

    /// <summary>Loads one tensor on the CPU in its stored dtype; the caller disposes it.</summary>
    public Tensor Load(string key)
    {
        if (_safetensors is not null) return _safetensors.Load(key);
        if (_loaded!.TryGetValue(key, out var t)) return TorchUtils.Scoped(() => t.alias());
        throw new WeightsException($"{Path}: no tensor named '{key}'") { FilePath = Path, Key = key };
    }

    /// <summary>Closes the file (and frees a .ckpt's tensors).</summary>
    public void Dispose()
    {
        _safetensors?.Dispose();
        if (_loaded is not null)
            foreach (var t in _loaded.Values) t.Dispose();
    }
}
