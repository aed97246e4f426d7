using System.IO.Compression;
using System.Text;

namespace DiffusersSharp.Tests.Loading;

/// <summary>Writes pickle opcodes by hand (protocol 2), and torch-style zip checkpoints around them.</summary>
internal sealed class PickleBuilder
{
    private readonly MemoryStream _s = new();

    public PickleBuilder() { Op(0x80); Op(2); }

    public PickleBuilder Op(byte b) { _s.WriteByte(b); return this; }
    public PickleBuilder Op(char c) => Op((byte)c);
    public PickleBuilder Global(string module, string name) { Op('c'); Raw(module + "\n" + name + "\n"); return this; }
    public PickleBuilder Str(string s)
    {
        var b = Encoding.UTF8.GetBytes(s);
        Op('X'); _s.Write(BitConverter.GetBytes(b.Length)); _s.Write(b); return this;
    }
    public PickleBuilder Int(int v) { Op('J'); _s.Write(BitConverter.GetBytes(v)); return this; }
    public PickleBuilder Mark() => Op('(');
    public PickleBuilder Tuple() => Op('t');
    public PickleBuilder Reduce() => Op('R');
    public PickleBuilder Raw(string ascii) { _s.Write(Encoding.ASCII.GetBytes(ascii)); return this; }
    public byte[] Stop() { Op('.'); return _s.ToArray(); }

    /// <summary>Appends <c>_rebuild_tensor_v2(storage(key, type, numel), offset, size, stride, False, OrderedDict())</c>.</summary>
    public PickleBuilder Tensor(string storageType, string key, int numel, int offset, int[] size, int[] stride)
    {
        Global("torch._utils", "_rebuild_tensor_v2");
        Mark();
        Mark().Str("storage").Global("torch", storageType).Str(key).Str("cpu").Int(numel).Tuple().Op('Q');
        Int(offset);
        Mark(); foreach (var s in size) Int(s); Tuple();
        Mark(); foreach (var s in stride) Int(s); Tuple();
        Op(0x89);
        Global("collections", "OrderedDict").Op(')').Reduce();
        Tuple();
        return Reduce();
    }

    /// <summary>A torch.save-style zip: <c>archive/data.pkl</c>, <c>archive/data/&lt;key&gt;</c>, <c>archive/version</c>.</summary>
    public static void WriteZip(string path, byte[] pickle, IReadOnlyDictionary<string, byte[]> storages)
    {
        using var fs = File.Create(path);
        using var zip = new ZipArchive(fs, ZipArchiveMode.Create);
        void Add(string name, byte[] data)
        {
            var e = zip.CreateEntry(name, CompressionLevel.NoCompression);
            using var s = e.Open();
            s.Write(data);
        }
        Add("archive/data.pkl", pickle);
        foreach (var (k, v) in storages) Add("archive/data/" + k, v);
        Add("archive/version", Encoding.ASCII.GetBytes("3\n"));
    }
}
