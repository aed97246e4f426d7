using System.Text.Json;
using DiffusersSharp.Loading;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Support;

/// <summary>
/// A golden/model-transcripts-* folder: the index its make.py writes (<c>&lt;name&gt;.json</c>), the inputs and outputs
/// next to it (<c>&lt;name&gt;.safetensors</c>) and one model folder per config variant. The transcript test classes read
/// their cases, theory data and variant folders through it.
/// </summary>
public sealed class TranscriptFolder
{
    private readonly Lazy<JsonDocument> _index;

    /// <param name="folder">The folder under tests/golden.</param>
    /// <param name="name">The index and tensor files' name without extension (<c>cases</c>, or <c>expected</c>).</param>
    public TranscriptFolder(string folder, string name = "cases")
    {
        Folder = folder;
        Tensors = System.IO.Path.Combine(folder, name + ".safetensors");
        _index = new(() => Golden.Json(System.IO.Path.Combine(folder, name + ".json")));
    }

    /// <summary>The folder under tests/golden.</summary>
    public string Folder { get; }

    /// <summary>The tensor file, relative to tests/golden (for <see cref="Golden.Open"/>).</summary>
    public string Tensors { get; }

    /// <summary>The index's root object (parsed once).</summary>
    public JsonElement Root => _index.Value.RootElement;

    /// <summary>Opens the tensor file.</summary>
    public SafetensorsFile Open() => Golden.Open(Tensors);

    /// <summary>The full path of a variant's model folder (or of a file in it).</summary>
    public string Path(params string[] parts) => Golden.Path([Folder, .. parts]);

    /// <summary>The entries of one of the index's case arrays.</summary>
    public IEnumerable<JsonElement> Cases(string array = "cases") => Root.GetProperty(array).EnumerateArray();

    /// <summary>The entry of <paramref name="array"/> whose <c>id</c> is <paramref name="id"/>.</summary>
    public JsonElement Case(string id, string array = "cases") => Cases(array).Single(c => c.GetProperty("id").GetString() == id);

    /// <summary>The <c>id</c> of every entry of <paramref name="array"/> (those <paramref name="where"/> keeps), as theory data.</summary>
    public TheoryData<string> Ids(string array = "cases", Func<JsonElement, bool>? where = null)
    {
        var data = new TheoryData<string>();
        foreach (var c in Cases(array))
            if (where is null || where(c))
                data.Add(c.GetProperty("id").GetString()!);
        return data;
    }

    /// <summary>The <c>model</c> of every entry of the given case arrays.</summary>
    public IEnumerable<string> Models(string array, params string[] more) =>
        more.Prepend(array).SelectMany(a => Cases(a)).Select(c => c.GetProperty("model").GetString()!);

    /// <summary>
    /// Asserts that the folder's subfolders are exactly the <paramref name="models"/> the cases name (no variant folder
    /// without a case, no case without its folder) and returns those models.
    /// </summary>
    public HashSet<string> AssertEveryVariantFolderHasCases(IEnumerable<string> models)
    {
        var set = models.ToHashSet();
        var folders = Directory.GetDirectories(Golden.Path(Folder)).Select(System.IO.Path.GetFileName).ToHashSet();
        Assert.Equal(folders.OrderBy(x => x), set.OrderBy(x => x));
        return set;
    }

    /// <summary>Logs the max |actual - expected| of one output, then asserts it is within <paramref name="tol"/>.</summary>
    public static void Close(ITestOutputHelper log, string what, Tensor actual, Tensor expected, double tol = Tol.ModelAbs)
    {
        log.WriteLine($"{what}: max |diff| = {Tol.MaxAbsDiff(actual, expected):E3}");
        Tol.Close(actual, expected, tol, what);
    }
}
