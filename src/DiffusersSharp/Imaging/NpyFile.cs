using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using DiffusersSharp.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Imaging;

/// <summary>
/// NumPy <c>.npy</c> files (format version 1.0), written byte for byte as <c>np.save</c> (NumPy ≥ 1.23)
/// writes a C-contiguous little-endian array: the magic <c>\x93NUMPY</c>, version 1.0, a little-endian
/// u16 header length, the header dict <c>{'descr': '&lt;f4', 'fortran_order': False, 'shape': (…), }</c>
/// followed by 21 − len(repr(shape[0])) spaces of growth room, padded with spaces and a final newline so
/// that the data starts at a multiple of 64 bytes; then the raw data.
/// </summary>
public static class NpyFile
{
    private static readonly byte[] Magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];
    private const int ArrayAlign = 64;
    private const int GrowthAxisMaxDigits = 21;

    /// <summary>Writes <paramref name="tensor"/> (float32, float64, int64, int32, uint8 or bool) atomically.</summary>
    public static void Write(string path, Tensor tensor) => AtomicFile.WriteAllBytes(path, ToBytes(tensor));

    /// <summary>The complete .npy file contents for <paramref name="tensor"/>.</summary>
    public static byte[] ToBytes(Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        string descr = Descr(tensor.dtype);
        using var cpu = TorchUtils.Scoped(() => tensor.detach().cpu().contiguous());
        byte[] header = Header(descr, cpu.shape);
        long dataBytes = cpu.numel() * cpu.ElementSize;
        var result = new byte[header.Length + dataBytes];
        header.CopyTo(result, 0);
        if (dataBytes > 0) cpu.bytes.CopyTo(result.AsSpan(header.Length));
        if (!BitConverter.IsLittleEndian)
            throw new DiffusersException("Writing .npy files is only supported on little-endian machines");
        return result;
    }

    /// <summary>The header block (magic … newline) np.save writes for a C-order array.</summary>
    public static byte[] Header(string descr, long[] shape)
    {
        var sb = new StringBuilder();
        sb.Append("{'descr': '").Append(descr).Append("', 'fortran_order': False, 'shape': ")
          .Append(ShapeRepr(shape)).Append(", }");
        if (shape.Length > 0)
            sb.Append(' ', Math.Max(0, GrowthAxisMaxDigits - shape[0].ToString(CultureInfo.InvariantCulture).Length));
        int hlen = sb.Length + 1; // + the final newline
        int padlen = ArrayAlign - ((Magic.Length + 2 + 2 + hlen) % ArrayAlign); // 64 when already aligned, as numpy
        sb.Append(' ', padlen).Append('\n');
        byte[] text = Encoding.Latin1.GetBytes(sb.ToString());
        if (text.Length > ushort.MaxValue)
            throw new DiffusersException($"The .npy header for shape ({string.Join(", ", shape)}) is too long for format 1.0");
        var result = new byte[Magic.Length + 4 + text.Length];
        Magic.CopyTo(result, 0);
        result[6] = 1;
        result[7] = 0;
        BinaryPrimitives.WriteUInt16LittleEndian(result.AsSpan(8), (ushort)text.Length);
        text.CopyTo(result, 10);
        return result;
    }

    private static string ShapeRepr(long[] shape) => shape.Length switch
    {
        0 => "()",
        1 => $"({shape[0].ToString(CultureInfo.InvariantCulture)},)",
        _ => "(" + string.Join(", ", shape.Select(d => d.ToString(CultureInfo.InvariantCulture))) + ")",
    };

    private static string Descr(ScalarType t) => t switch
    {
        ScalarType.Float32 => "<f4",
        ScalarType.Float64 => "<f8",
        ScalarType.Float16 => "<f2",
        ScalarType.Int64 => "<i8",
        ScalarType.Int32 => "<i4",
        ScalarType.Int16 => "<i2",
        ScalarType.Int8 => "|i1",
        ScalarType.Byte => "|u1",
        ScalarType.Bool => "|b1",
        _ => throw new DiffusersException($"Cannot write a {t} tensor as .npy (no NumPy equivalent)"),
    };

    private static ScalarType FromDescr(string descr, string path) => descr switch
    {
        "<f4" => ScalarType.Float32,
        "<f8" => ScalarType.Float64,
        "<f2" => ScalarType.Float16,
        "<i8" => ScalarType.Int64,
        "<i4" => ScalarType.Int32,
        "<i2" => ScalarType.Int16,
        "|i1" => ScalarType.Int8,
        "|u1" => ScalarType.Byte,
        "|b1" => ScalarType.Bool,
        _ => throw new DiffusersException($"{path}: unsupported .npy dtype '{descr}'") { FilePath = path, Key = "descr" },
    };

    /// <summary>Reads a C-order little-endian .npy file (versions 1.0–3.0) into a CPU tensor.</summary>
    public static Tensor Read(string path)
    {
        if (!File.Exists(path)) throw new DiffusersException($".npy file not found: {path}") { FilePath = path };
        return Parse(File.ReadAllBytes(path), path);
    }

    /// <summary>Parses .npy bytes; <paramref name="source"/> names the file in error messages.</summary>
    public static Tensor Parse(byte[] bytes, string source = "<bytes>")
    {
        if (bytes.Length < 10 || !bytes.AsSpan(0, 6).SequenceEqual(Magic))
            throw new DiffusersException($"{source}: not a .npy file (bad magic)") { FilePath = source };
        int major = bytes[6];
        int headerLen, start;
        if (major == 1) { headerLen = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(8)); start = 10; }
        else if (major is 2 or 3)
        {
            if (bytes.Length < 12) throw new DiffusersException($"{source}: truncated .npy header") { FilePath = source };
            headerLen = checked((int)BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(8)));
            start = 12;
        }
        else throw new DiffusersException($"{source}: unsupported .npy version {major}.{bytes[7]}") { FilePath = source };
        if (start + headerLen > bytes.Length)
            throw new DiffusersException($"{source}: truncated .npy header") { FilePath = source };
        string header = (major == 3 ? Encoding.UTF8 : Encoding.Latin1).GetString(bytes, start, headerLen);
        string descr = ParseString(header, "descr", source);
        string fortran = ParseRaw(header, "fortran_order", source);
        if (fortran != "False")
            throw new DiffusersException($"{source}: Fortran-order .npy files are not supported") { FilePath = source };
        long[] shape = ParseShape(ParseRaw(header, "shape", source), source);
        ScalarType dtype = FromDescr(descr, source);
        int dataStart = start + headerLen;
        long count = shape.Aggregate(1L, (a, b) => a * b);
        using var scope = torch.NewDisposeScope();
        using var probe = torch.empty(0, dtype);
        long need = count * probe.ElementSize;
        if (bytes.LongLength - dataStart != need)
            throw new DiffusersException(
                $"{source}: data has {bytes.LongLength - dataStart} bytes, shape ({string.Join(", ", shape)}) of {descr} needs {need}")
            { FilePath = source };
        var t = torch.empty(shape, dtype);
        if (need > 0) bytes.AsSpan(dataStart, (int)need).CopyTo(t.bytes);
        return t.MoveToOuterDisposeScope();
    }

    private static string ParseRaw(string header, string key, string source)
    {
        string k = "'" + key + "':";
        int i = header.IndexOf(k, StringComparison.Ordinal);
        if (i < 0) throw new DiffusersException($"{source}: .npy header has no '{key}'") { FilePath = source, Key = key };
        i += k.Length;
        while (i < header.Length && header[i] == ' ') i++;
        int end;
        if (i < header.Length && header[i] == '(')
            end = header.IndexOf(')', i) + 1;
        else if (i < header.Length && header[i] == '\'')
            end = header.IndexOf('\'', i + 1) + 1;
        else
        {
            end = i;
            while (end < header.Length && header[end] != ',' && header[end] != '}') end++;
        }
        if (end <= i) throw new DiffusersException($"{source}: malformed .npy header value for '{key}'") { FilePath = source, Key = key };
        return header[i..end].Trim();
    }

    private static string ParseString(string header, string key, string source)
    {
        string raw = ParseRaw(header, key, source);
        if (raw.Length < 2 || raw[0] != '\'' || raw[^1] != '\'')
            throw new DiffusersException($"{source}: .npy header '{key}' is not a string: {raw}") { FilePath = source, Key = key };
        return raw[1..^1];
    }

    private static long[] ParseShape(string raw, string source)
    {
        string inner = raw.Trim('(', ')');
        var parts = inner.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var shape = new long[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!long.TryParse(parts[i].TrimEnd('L'), NumberStyles.None, CultureInfo.InvariantCulture, out shape[i]))
                throw new DiffusersException($"{source}: bad .npy shape {raw}") { FilePath = source, Key = "shape" };
        return shape;
    }
}
