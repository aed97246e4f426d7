using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using System.Text.Json.Nodes;
using DiffusersSharp.Loading;
using TorchSharp;

namespace DiffusersSharp.Tests.Fuzz;

/// <summary>Edits weight files for the fuzz cases: safetensors headers and values, torch .bin zips.</summary>
internal static class WeightFiles
{
    public static (byte[] Header, byte[] Data) Split(string path)
    {
        byte[] all = File.ReadAllBytes(path);
        long n = BinaryPrimitives.ReadInt64LittleEndian(all);
        return (all[8..(int)(8 + n)], all[(int)(8 + n)..]);
    }

    /// <summary>Writes a safetensors file from raw header bytes and the data section.</summary>
    public static void Join(string path, byte[] header, byte[] data)
    {
        var bytes = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteInt64LittleEndian(bytes, header.Length);
        header.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + header.Length);
        File.WriteAllBytes(path, bytes);
    }

    /// <summary>Changes the header JSON of a safetensors file, keeping its data section.</summary>
    public static void EditHeader(string path, Action<JsonObject> edit)
    {
        var (header, data) = Split(path);
        var obj = (JsonObject)JsonNode.Parse(header)!;
        edit(obj);
        Join(path, Encoding.UTF8.GetBytes(obj.ToJsonString()), data);
    }

    /// <summary>The header text with <paramref name="from"/> replaced by raw bytes (e.g. invalid UTF-8 in a name).</summary>
    public static void ReplaceInHeader(string path, string from, byte[] to)
    {
        var (header, data) = Split(path);
        byte[] f = Encoding.UTF8.GetBytes(from);
        int i = header.AsSpan().IndexOf(f);
        if (i < 0) throw new InvalidOperationException($"'{from}' not in the header of {path}");
        Join(path, [.. header[..i], .. to, .. header[(i + f.Length)..]], data);
    }

    /// <summary>The first tensor name of the file with the given dtype.</summary>
    public static string FirstTensor(string path)
    {
        using var f = SafetensorsFile.Open(path);
        return f.Entries.Values.OrderBy(e => e.Begin).First(e => e.DType is "F32" or "F16" or "BF16" && e.Shape.Length > 1).Name;
    }

    /// <summary>Sets one element (or every element) of a tensor of a safetensors file.</summary>
    public static void SetValues(string path, string name, float value, bool all)
    {
        Dictionary<string, torch.Tensor> tensors;
        using (var f = SafetensorsFile.Open(path)) tensors = f.LoadAll();
        try
        {
            var t = tensors[name];
            if (all) t.fill_(value);
            else t.view(-1)[t.numel() / 2] = torch.tensor(value, t.dtype);
            SafetensorsFile.Save(path, tensors, new Dictionary<string, string> { ["format"] = "pt" });
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    /// <summary>Rewrites a torch .bin zip, changing the bytes of entries whose name ends with <paramref name="suffix"/>.</summary>
    public static void EditZipEntry(string path, string suffix, Func<byte[], byte[]> edit, (string Suffix, byte[] Bytes)? add = null)
    {
        var entries = new List<(string Name, byte[] Bytes)>();
        using (var zip = ZipFile.OpenRead(path))
            foreach (var e in zip.Entries)
            {
                using var s = e.Open();
                using var m = new MemoryStream();
                s.CopyTo(m);
                entries.Add((e.FullName, m.ToArray()));
                if (add is { } a && e.FullName.EndsWith(suffix, StringComparison.Ordinal))
                    entries.Add((e.FullName[..^suffix.Length] + a.Suffix, a.Bytes));
            }
        File.Delete(path);
        using var output = ZipFile.Open(path, ZipArchiveMode.Create);
        foreach (var (name, bytes) in entries)
        {
            var entry = output.CreateEntry(name, CompressionLevel.NoCompression);
            using var s = entry.Open();
            s.Write(name.EndsWith(suffix, StringComparison.Ordinal) ? edit(bytes) : bytes);
        }
    }

    /// <summary>Overwrites bytes of a file at <paramref name="offset"/> (negative: from the end).</summary>
    public static void Poke(string path, long offset, byte[] bytes)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        fs.Position = offset >= 0 ? offset : fs.Length + offset;
        fs.Write(bytes);
    }

    /// <summary>The offset of the <paramref name="index"/>-th zip local file header (PK\x03\x04).</summary>
    public static long LocalHeader(string path, int index)
    {
        byte[] all = File.ReadAllBytes(path);
        int found = -1;
        for (int i = 0; i + 4 <= all.Length; i++)
            if (all[i] == 0x50 && all[i + 1] == 0x4B && all[i + 2] == 3 && all[i + 3] == 4 && ++found == index) return i;
        throw new InvalidOperationException($"{path} has fewer than {index + 1} local headers");
    }
}
