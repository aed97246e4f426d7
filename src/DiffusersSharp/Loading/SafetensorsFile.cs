using Microsoft.Win32.SafeHandles;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Loading;

/// <summary>One tensor entry of a safetensors header.</summary>
public sealed record SafetensorsEntry(string Name, string DType, long[] Shape, long Begin, long End)
{
    /// <summary>Size of the tensor's data in bytes.</summary>
    public long ByteLength => End - Begin;
}

/// <summary>
/// A safetensors file, open for positional reads. The header is validated in full before any tensor is made: JSON
/// shape, known dtypes, offsets inside the data section, no overlaps, dtype size × element count equal to
/// the byte length. Tensor bytes are read with <c>pread</c> (<see cref="RandomAccess.Read(Microsoft.Win32.SafeHandles.SafeFileHandle, Span{byte}, long)"/>)
/// straight into torch memory: one copy out of the page cache, no file page mapped into the process. A memory map
/// (what this class used before) made every 4 KB page of a multi-GB file a page fault plus a second copy, and a file
/// shortened while mapped killed the process (SIGBUS); reads of it now fail with an error naming the file and tensor.
/// Loading the SD 1.5 UNet in fp32 takes about half the time (docs/BENCHMARKS.md, 2026-12-04 night). A float8 tensor
/// (<c>F8_E4M3</c>, <c>F8_E5M2</c>; TorchSharp 0.107 has no float8 type) is read as Float32, its bytes decoded exactly
/// 64 KB at a time (<see cref="ReadElements"/>); the unsigned 16-64-bit dtypes are refused when read.
/// </summary>
public sealed class SafetensorsFile : IDisposable
{
    private readonly SafeFileHandle _handle;
    private readonly long _dataStart;
    private readonly Dictionary<string, SafetensorsEntry> _entries;

    /// <summary>The file's path.</summary>
    public string Path { get; }
    /// <summary>The header's <c>__metadata__</c> strings (empty when absent).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }
    /// <summary>The tensor names in the file.</summary>
    public IReadOnlyCollection<string> Keys => _entries.Keys;
    /// <summary>The header entry of every tensor, by name.</summary>
    public IReadOnlyDictionary<string, SafetensorsEntry> Entries => _entries;

    private SafetensorsFile(string path, SafeFileHandle handle, long dataStart,
        Dictionary<string, SafetensorsEntry> entries, Dictionary<string, string> metadata)
    {
        Path = path; _handle = handle; _dataStart = dataStart; _entries = entries; Metadata = metadata;
    }

    /// <summary>
    /// Opens <paramref name="path"/> and validates its header; a missing or malformed file is a <see
    /// cref="WeightsException"/> naming it.
    /// </summary>
    public static SafetensorsFile Open(string path)
    {
        if (!File.Exists(path)) throw new WeightsException($"Weight file not found: {path}") { FilePath = path };
        long fileLength = (new FileInfo(path).ResolveLinkTarget(returnFinalTarget: true) as FileInfo ?? new FileInfo(path)).Length; // Hub cache: symlink → blob
        ThrowIfLfsPointer(path, fileLength);
        if (fileLength < 8)
            throw new WeightsException($"{path}: not a safetensors file (only {fileLength} bytes; the 8-byte header length is missing)") { FilePath = path };

        // one handle for the header and, later, every tensor's bytes
        var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        try
        {
            Span<byte> lenBytes = stackalloc byte[8];
            if (ReadAt(handle, lenBytes, 0) is var lenEnd and >= 0) throw Shortened(path, lenEnd, "the 8-byte header length");
            ulong n = BitConverter.ToUInt64(lenBytes);
            if (n == 0 || n > 100_000_000 || (long)n > fileLength - 8)
                throw new WeightsException($"{path}: corrupt safetensors header: header length {n} does not fit a file of {fileLength} bytes") { FilePath = path };
            byte[] header = new byte[n];
            if (ReadAt(handle, header, 8) is var headerEnd and >= 0) throw Shortened(path, headerEnd, "the header");
            long dataStart = 8 + header.Length;
            var (entries, metadata) = ParseHeader(path, header, fileLength - dataStart);
            return new SafetensorsFile(path, handle, dataStart, entries, metadata);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Fills <paramref name="dst"/> with the file's bytes from <paramref name="position"/> (<c>pread</c>, repeated until
    /// full); returns -1, or the position where the file ended first (<see cref="Open"/> checked the lengths, so the file
    /// was shortened since: the caller says what it was reading).
    /// </summary>
    private static long ReadAt(SafeFileHandle handle, Span<byte> dst, long position)
    {
        while (!dst.IsEmpty)
        {
            int read = RandomAccess.Read(handle, dst, position);
            if (read <= 0) return position;
            dst = dst[read..];
            position += read;
        }
        return -1;
    }

    private static WeightsException Shortened(string path, long end, string what, string? key = null) =>
        new($"{path}: the file ends at byte {end}, inside {what}: it was shortened after it was opened") { FilePath = path, Key = key };

    /// <summary>A Git LFS pointer (a clone without git-lfs) gets its own message, as diffusers gives it.</summary>
    internal static void ThrowIfLfsPointer(string path, long fileLength)
    {
        const string Magic = "version https://git-lfs";
        if (fileLength > 1024 || fileLength < Magic.Length) return;
        byte[] head = new byte[Magic.Length];
        using (var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read)) fs.ReadExactly(head);
        if (System.Text.Encoding.ASCII.GetString(head) == Magic)
            throw new WeightsException(
                $"{path} is a Git LFS pointer, not the weights: the repository was cloned without git-lfs. Run `git lfs install` and `git lfs pull` in its folder.")
            { FilePath = path };
    }

    internal static (Dictionary<string, SafetensorsEntry>, Dictionary<string, string>) ParseHeader(string path, byte[] header, long dataLength)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(header); }
        catch (JsonException e)
        {
            string where = e.LineNumber is { } line ? $" at line {line + 1}, column {(e.BytePositionInLine ?? 0) + 1}" : "";
            throw new WeightsException($"{path}: corrupt safetensors header: not valid JSON{where} ({e.Message})", e) { FilePath = path };
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new WeightsException($"{path}: corrupt safetensors header: the header is not a JSON object") { FilePath = path };
            var entries = new Dictionary<string, SafetensorsEntry>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>();
            try
            {
                foreach (var prop in doc.RootElement.EnumerateObject())
                {
                    if (prop.Name == "__metadata__")
                    {
                        if (prop.Value.ValueKind == JsonValueKind.Object)
                            foreach (var m in prop.Value.EnumerateObject())
                                metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : m.Value.GetRawText();
                        continue;
                    }
                    if (entries.ContainsKey(prop.Name))
                        throw new WeightsException($"{path}: corrupt safetensors header: tensor '{Printable.Text(prop.Name)}' is listed twice") { FilePath = path, Key = prop.Name };
                    entries[prop.Name] = ParseEntry(path, prop.Name, prop.Value, dataLength);
                }
            }
            catch (InvalidOperationException e)
            {
                // System.Text.Json validates UTF-8 only when a string is read: a name or value that is not UTF-8
                throw new WeightsException($"{path}: corrupt safetensors header: a tensor name or metadata string is not valid UTF-8 ({e.Message})", e) { FilePath = path };
            }
            var sorted = entries.Values.Where(e => e.ByteLength > 0).OrderBy(e => e.Begin).ToList();
            for (int i = 1; i < sorted.Count; i++)
                if (sorted[i].Begin < sorted[i - 1].End)
                    throw new WeightsException(
                        $"{path}: corrupt safetensors header: tensors '{Printable.Text(sorted[i - 1].Name)}' [{sorted[i - 1].Begin}, {sorted[i - 1].End}] and '{Printable.Text(sorted[i].Name)}' [{sorted[i].Begin}, {sorted[i].End}] overlap")
                    { FilePath = path, Key = sorted[i].Name };
            long covered = sorted.Sum(e => e.ByteLength);
            if (covered != dataLength)
                throw new WeightsException(
                    $"{path}: corrupt safetensors file: the data section is {dataLength} bytes but its tensors cover {covered} (holes or trailing bytes)")
                { FilePath = path };
            return (entries, metadata);
        }
    }

    private static SafetensorsEntry ParseEntry(string path, string name, JsonElement e, long dataLength)
    {
        WeightsException Bad(string what) => new($"{path}: corrupt safetensors header for tensor '{Printable.Text(name)}': {what}") { FilePath = path, Key = name };
        if (e.ValueKind != JsonValueKind.Object) throw Bad("entry is not an object");
        if (!e.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String) throw Bad("missing dtype");
        string dtype = dt.GetString()!;
        int elemSize = ElementSize(dtype) ?? throw Bad($"unknown dtype '{Printable.Text(dtype, 40)}'");
        if (!e.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array) throw Bad("missing shape");
        var shape = new List<long>();
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long v) || v < 0) throw Bad($"invalid dimension {Printable.Json(d)}");
            shape.Add(v);
        }
        if (!e.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw Bad("missing data_offsets");
        if (off[0].ValueKind != JsonValueKind.Number || off[1].ValueKind != JsonValueKind.Number
            || !off[0].TryGetInt64(out long begin) || !off[1].TryGetInt64(out long end) || begin < 0 || end < begin)
            throw Bad($"invalid data_offsets {Printable.Json(off)}");
        if (end > dataLength)
            throw Bad($"data_offsets [{begin}, {end}] run past the end of the data ({dataLength} bytes; the file is truncated)");
        long count = 1;
        try
        {
            foreach (var d in shape) count = checked(count * d);
            count = checked(count * elemSize);
        }
        catch (OverflowException) { throw Bad($"shape [{string.Join(", ", shape)}] is too large"); }
        if (count != end - begin)
            throw Bad($"dtype {dtype} × shape [{string.Join(", ", shape)}] = {count} bytes, but data_offsets span {end - begin}");
        return new SafetensorsEntry(name, dtype, shape.ToArray(), begin, end);
    }

    /// <summary>
    /// Bytes per element of a safetensors dtype name (<c>F32</c>, <c>BF16</c>, ...); null for an unknown one.
    /// </summary>
    public static int? ElementSize(string dtype) => dtype switch
    {
        "F64" or "I64" or "U64" => 8,
        "F32" or "I32" or "U32" => 4,
        "F16" or "BF16" or "I16" or "U16" => 2,
        "I8" or "U8" or "BOOL" or "F8_E4M3" or "F8_E5M2" => 1,
        _ => null,
    };

    /// <summary>
    /// The torch dtype a tensor of a safetensors dtype name is read as: its own, or Float32 for the float8 ones
    /// (<c>F8_E4M3</c>, <c>F8_E5M2</c>), which TorchSharp 0.107 has no type for: each value is decoded exactly
    /// (<see cref="Float8"/>). The unsigned 16-64-bit ones (<c>U16</c>, <c>U32</c>, <c>U64</c>), which it has no type
    /// for either, and unknown names throw.
    /// </summary>
    public static ScalarType ToScalarType(string dtype) => TryScalarType(dtype) ?? throw new WeightsException(dtype switch
    {
        "U16" or "U32" or "U64" => $"safetensors dtype '{dtype}' is not supported by DiffusersSharp: TorchSharp 0.107 has no unsigned {dtype[1..]}-bit tensor type",
        _ => $"safetensors dtype '{dtype}' is not supported by DiffusersSharp",
    });

    /// <summary>The torch dtype a safetensors dtype name is read as (<see cref="ToScalarType"/>), or null when there is none
    /// (the unsigned 16-64-bit ones, or an unknown name).</summary>
    internal static ScalarType? TryScalarType(string dtype) => dtype switch
    {
        "F64" => ScalarType.Float64,
        "F32" => ScalarType.Float32,
        "F16" => ScalarType.Float16,
        "BF16" => ScalarType.BFloat16,
        "F8_E4M3" or "F8_E5M2" => ScalarType.Float32,
        "I64" => ScalarType.Int64,
        "I32" => ScalarType.Int32,
        "I16" => ScalarType.Int16,
        "I8" => ScalarType.Int8,
        "U8" => ScalarType.Byte,
        "BOOL" => ScalarType.Bool,
        _ => null,
    };

    /// <summary>Whether a tensor of the safetensors dtype name is read as a torch dtype of the same values and bytes (not
    /// decoded, as float8 is, and not refused, as the unsigned 16-64-bit ones are).</summary>
    internal static bool ReadAsStored(string dtype) => TryScalarType(dtype) is not null && Float8.TableOf(dtype) is null;

    /// <summary>The safetensors dtype name of a torch dtype.</summary>
    public static string FromScalarType(ScalarType t) =>
        TryFromScalarType(t) ?? throw new WeightsException($"tensor dtype {t} cannot be written to safetensors");

    private static string? TryFromScalarType(ScalarType t) => t switch
    {
        ScalarType.Float64 => "F64",
        ScalarType.Float32 => "F32",
        ScalarType.Float16 => "F16",
        ScalarType.BFloat16 => "BF16",
        ScalarType.Int64 => "I64",
        ScalarType.Int32 => "I32",
        ScalarType.Int16 => "I16",
        ScalarType.Int8 => "I8",
        ScalarType.Byte => "U8",
        ScalarType.Bool => "BOOL",
        _ => null,
    };

    /// <summary>Whether the file holds a tensor named <paramref name="name"/>.</summary>
    public bool Contains(string name) => _entries.ContainsKey(name);

    /// <summary>
    /// Loads one tensor on the CPU in its stored dtype; a float8 one (<c>F8_E4M3</c>, <c>F8_E5M2</c>) as Float32, each
    /// value decoded exactly (<see cref="ToScalarType"/>).
    /// </summary>
    public Tensor Load(string name)
    {
        var e = Entry(name);
        using var scope = torch.NewDisposeScope();
        var t = torch.empty(e.Shape, ScalarTypeOf(e));
        if (e.ByteLength > 0) CopyInto(e, t);
        return t.MoveToOuterDisposeScope();
    }

    /// <summary>The header entry of <paramref name="name"/>; an absent name throws naming the file.</summary>
    internal SafetensorsEntry Entry(string name) => _entries.TryGetValue(name, out var e) ? e
        : throw new WeightsException($"{Path}: no tensor named '{Printable.Text(name)}'") { FilePath = Path, Key = name };

    /// <summary>The torch dtype an entry is read as (<see cref="ToScalarType"/>); a dtype DiffusersSharp does not support throws
    /// naming the file and the tensor.</summary>
    internal ScalarType ScalarTypeOf(SafetensorsEntry e)
    {
        try { return ToScalarType(e.DType); }
        catch (WeightsException x)
        {
            throw new WeightsException($"{Path}: tensor '{Printable.Text(e.Name)}': {x.Message}") { FilePath = Path, Key = e.Name };
        }
    }

    /// <summary>
    /// Reads the entry into <paramref name="t"/>, a contiguous CPU tensor of the entry's read dtype (<see
    /// cref="ScalarTypeOf"/>) and element count (the caller checks).
    /// </summary>
    internal void CopyInto(SafetensorsEntry e, Tensor t) => ReadElements(e, 0, t);

    /// <summary>Stored bytes of a float8 tensor read at a time, each part decoded before the next is read.</summary>
    internal const int DecodeChunkBytes = 64 << 10;

    /// <summary>
    /// Fills <paramref name="dst"/>, a contiguous CPU tensor of the entry's read dtype (<see cref="ScalarTypeOf"/>), with
    /// the entry's elements from element <paramref name="start"/> on (as many as it holds; the caller keeps them inside
    /// the entry). The one place a tensor's values are read: the stored bytes straight into its memory, or, for float8, at
    /// most <see cref="DecodeChunkBytes"/> of them at a time into a buffer and decoded into it (<see cref="Float8"/>).
    /// </summary>
    internal void ReadElements(SafetensorsEntry e, long start, Tensor dst)
    {
        long stored = ElementSize(e.DType)!.Value;
        if (Float8.TableOf(e.DType) is not { } table)
        {
            ForEachByteChunk(dst, (bytes, offset) => CopyBytes(e, start * stored + offset, bytes));
            return;
        }
        int decoded = (int)dst.element_size();
        byte[] codes = new byte[Math.Min(DecodeChunkBytes, dst.numel())];
        ForEachByteChunk(dst, (bytes, offset) =>
        {
            long first = start + offset / decoded;
            for (int at = 0; at < bytes.Length; at += codes.Length * decoded)
            {
                var part = bytes.Slice(at, Math.Min(bytes.Length - at, codes.Length * decoded));
                var src = codes.AsSpan(0, part.Length / decoded);
                CopyBytes(e, (first + at / decoded) * stored, src);
                Float8.Decode(table, src, part);
            }
        });
    }

    /// <summary>
    /// Reads <paramref name="dst"/>.Length bytes of the entry, from <paramref name="byteOffset"/>, into it (the caller keeps
    /// the range inside the entry). A file that ends before them (shortened since <see cref="Open"/> validated it) throws
    /// a <see cref="WeightsException"/> naming the file and the tensor.
    /// </summary>
    internal void CopyBytes(SafetensorsEntry e, long byteOffset, Span<byte> dst)
    {
        if (ReadAt(_handle, dst, _dataStart + e.Begin + byteOffset) is var end and >= 0)
            throw Shortened(Path, end, $"tensor '{Printable.Text(e.Name)}' (bytes {_dataStart + e.Begin}-{_dataStart + e.End})", e.Name);
    }

    internal delegate void ByteChunkAction(Span<byte> bytes, long byteOffset);

    /// <summary>
    /// Visits the memory of a contiguous CPU tensor as spans of at most 1 GiB (TorchSharp's <c>bytes</c>
    /// stops at 2 GiB); a tensor that fits is one span over its own memory, no copy.
    /// </summary>
    internal static void ForEachByteChunk(Tensor t, ByteChunkAction action)
    {
        const long MaxChunk = 1L << 30;
        long elem = t.element_size(), total = t.numel() * elem;
        if (total == 0) return;
        if (total <= MaxChunk) { action(t.bytes, 0); return; }
        using var flat = t.view(-1);
        long perChunk = MaxChunk / elem, n = t.numel();
        for (long start = 0; start < n; start += perChunk)
        {
            using var slice = flat.narrow(0, start, Math.Min(perChunk, n - start));
            action(slice.bytes, start * elem);
        }
    }

    /// <summary>Loads every tensor (CPU, stored dtype; float8 as Float32, as <see cref="Load"/>).</summary>
    public Dictionary<string, Tensor> LoadAll()
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var name in _entries.Keys) result[name] = Load(name);
        return result;
    }

    /// <summary>Writes tensors as a safetensors file (header padded to 8 bytes, entries sorted by name).</summary>
    public static void Save(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var names = tensors.Keys.OrderBy(k => k, StringComparer.Ordinal).ToList();
        var header = new Dictionary<string, object>();
        if (metadata is { Count: > 0 }) header["__metadata__"] = metadata;
        long offset = 0;
        if (tensors.ContainsKey("__metadata__"))
            throw new WeightsException($"{path}: a tensor cannot be named '__metadata__'") { FilePath = path, Key = "__metadata__" };
        var contiguous = new List<Tensor>();
        using var scope = torch.NewDisposeScope();
        foreach (var n in names)
        {
            string dtype = TryFromScalarType(tensors[n].dtype)
                ?? throw new WeightsException($"{path}: tensor '{n}' is {tensors[n].dtype}, which safetensors cannot hold (it holds F64, F32, F16, BF16, I64, I32, I16, I8, U8 and BOOL)")
                { FilePath = path, Key = n };
            var t = tensors[n].detach().cpu().contiguous();
            contiguous.Add(t);
            long len = t.numel() * t.element_size();
            header[n] = new Dictionary<string, object>
            {
                ["dtype"] = dtype,
                ["shape"] = t.shape,
                ["data_offsets"] = new[] { offset, offset + len },
            };
            offset += len;
        }
        byte[] json = JsonSerializer.SerializeToUtf8Bytes(header);
        int pad = (8 - json.Length % 8) % 8;
        // Written to a temp file beside the target and renamed over it: a failure leaves any existing file as it was.
        string tmp = $"{path}.{Guid.NewGuid():N}.tmp";
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write))
            {
                fs.Write(BitConverter.GetBytes((ulong)(json.Length + pad)));
                fs.Write(json);
                for (int i = 0; i < pad; i++) fs.WriteByte((byte)' ');
                foreach (var t in contiguous) ForEachByteChunk(t, (b, _) => fs.Write(b));
            }
            File.Move(tmp, path, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    /// <summary>Closes the file.</summary>
    public void Dispose() => _handle.Dispose();
}
