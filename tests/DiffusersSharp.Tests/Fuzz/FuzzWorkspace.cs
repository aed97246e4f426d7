using System.Text;
using System.Text.Json.Nodes;
using DiffusersSharp.Tests.Support;

namespace DiffusersSharp.Tests.Fuzz;

/// <summary>
/// The folder one fuzz case runs in: a copy of a golden model (<c>model/</c>) to mutate, an existing output file
/// (<c>out.npy</c> / <c>out.png</c>, sentinel bytes the CLI must not touch unless it succeeds) and, beside the
/// model, <c>outside/</c>: files holding <see cref="OutsideMarker"/>, which no run may read.
/// </summary>
internal sealed class FuzzWorkspace : IDisposable
{
    public const string OutsideMarker = "OUTSIDE-THE-MODEL-FOLDER-7f3a";
    public static readonly byte[] Sentinel = Encoding.ASCII.GetBytes("existing output, must stay as it is\n");

    private readonly TempDir _dir = new();

    public FuzzWorkspace(string baseModel)
    {
        Model = Path.Combine(_dir.Path, "model");
        CopyTree(Golden.Path(baseModel), Model);
        Outside = Path.Combine(_dir.Path, "outside");
        Directory.CreateDirectory(Outside);
        string json = $"{{\"_class_name\": \"UNet2DModel\", \"{OutsideMarker}\": \"{OutsideMarker}\"}}";
        foreach (var f in new[] { "config.json", "scheduler_config.json", "tokenizer_config.json" })
            System.IO.File.WriteAllText(Path.Combine(Outside, f), json);
        System.IO.File.WriteAllText(Path.Combine(Outside, "diffusion_pytorch_model.safetensors"), OutsideMarker);
        OutputNpy = Path.Combine(_dir.Path, "out.npy");
        OutputPng = Path.Combine(_dir.Path, "out.png");
        foreach (var o in new[] { OutputNpy, OutputPng })
        {
            System.IO.File.WriteAllBytes(o, Sentinel);
            System.IO.File.SetLastWriteTimeUtc(o, new DateTime(2001, 1, 1, 0, 0, 0, DateTimeKind.Utc));
        }
    }

    public string Root => _dir.Path;
    public string Model { get; }
    public string Outside { get; }
    public string OutputNpy { get; }
    public string OutputPng { get; }

    public string File(params string[] parts) => Path.Combine([Model, .. parts]);

    /// <summary>Sets <paramref name="key"/> of a JSON object file to <paramref name="rawJson"/> (any JSON text, also NaN / Infinity).</summary>
    public void SetJson(string relativePath, string key, string rawJson) => SetJson(relativePath, (key, rawJson));

    /// <summary>Sets several keys of a JSON object file at once (values are raw JSON text).</summary>
    public void SetJson(string relativePath, params (string Key, string RawJson)[] values)
    {
        string path = File(relativePath);
        var obj = (JsonObject)JsonNode.Parse(System.IO.File.ReadAllText(path))!;
        for (int i = 0; i < values.Length; i++) obj[values[i].Key] = $"@@RAW-VALUE-{i}@@";
        string text = obj.ToJsonString();
        for (int i = 0; i < values.Length; i++) text = text.Replace($"\"@@RAW-VALUE-{i}@@\"", values[i].RawJson);
        System.IO.File.WriteAllText(path, text);
    }

    /// <summary>Removes <paramref name="key"/> from a JSON object file.</summary>
    public void RemoveJson(string relativePath, string key)
    {
        string path = File(relativePath);
        var obj = (JsonObject)JsonNode.Parse(System.IO.File.ReadAllText(path))!;
        obj.Remove(key);
        System.IO.File.WriteAllText(path, obj.ToJsonString());
    }

    public void Write(string relativePath, string text) => System.IO.File.WriteAllText(File(relativePath), text);

    public void Write(string relativePath, byte[] bytes) => System.IO.File.WriteAllBytes(File(relativePath), bytes);

    public void Delete(string relativePath) => System.IO.File.Delete(File(relativePath));

    private static void CopyTree(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) System.IO.File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
        foreach (var d in Directory.GetDirectories(from)) CopyTree(d, Path.Combine(to, Path.GetFileName(d)));
    }

    public void Dispose() => _dir.Dispose();
}
