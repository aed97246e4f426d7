using System.IO.Compression;
using DiffusersSharp.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Loading;

/// <summary>
/// Reads a PyTorch <c>torch.save</c> checkpoint (the zip format of torch ≥ 1.6: <c>&lt;name&gt;/data.pkl</c>
/// plus one raw little-endian storage per <c>&lt;name&gt;/data/&lt;key&gt;</c>) holding a state dict of tensors.
/// The pickle is read by <see cref="SafeUnpickler"/>, which executes nothing; only the globals a state
/// dict needs are accepted (<c>collections.OrderedDict</c>, <c>torch._utils._rebuild_tensor_v2</c>,
/// <c>torch._utils._rebuild_parameter</c>, <c>torch.Size</c>, the typed <c>torch.*Storage</c> classes),
/// any other global is refused before anything is made.
/// </summary>
public static class TorchBinFile
{
    private static readonly Dictionary<string, ScalarType> StorageTypes = new(StringComparer.Ordinal)
    {
        ["FloatStorage"] = ScalarType.Float32,
        ["DoubleStorage"] = ScalarType.Float64,
        ["HalfStorage"] = ScalarType.Float16,
        ["BFloat16Storage"] = ScalarType.BFloat16,
        ["LongStorage"] = ScalarType.Int64,
        ["IntStorage"] = ScalarType.Int32,
        ["ShortStorage"] = ScalarType.Int16,
        ["CharStorage"] = ScalarType.Int8,
        ["ByteStorage"] = ScalarType.Byte,
        ["BoolStorage"] = ScalarType.Bool,
    };

    private static readonly HashSet<string> AllowedFunctions = new(StringComparer.Ordinal)
    {
        "collections.OrderedDict",
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "torch.Size",
    };

    private sealed record StorageRef(string Key, ScalarType DType, long Numel);

    private sealed record TensorRef(StorageRef Storage, long Offset, long[] Size, long[] Stride);

    /// <summary>Loads every tensor of the checkpoint on the CPU, in its stored dtype, contiguous.</summary>
    public static Dictionary<string, Tensor> LoadAll(string path) =>
        TorchUtils.Scoped(() => Read(path, (root, zip, prefix) => Materialize(root, zip, prefix, path)), d => d.Values);

    /// <summary>
    /// Loads a training checkpoint (<c>.ckpt</c> of the original Stable Diffusion repositories): the state dict under
    /// its <c>"state_dict"</c> entry (nested ones unwrapped, as diffusers' <c>while "state_dict" in checkpoint</c>),
    /// or the root when it is a flat state dict. <paramref name="globalStep"/> is the root's <c>global_step</c>, when an integer.
    /// Other root entries (epoch, versions, Lightning's callbacks, optimizer states, hyper-parameters) are not used; the
    /// globals outside the allow-list that they pickle (the original <c>sd-v1-4.ckpt</c> keys its callbacks by
    /// <c>pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint</c>) are kept as inert names, never imported or
    /// called (<see cref="ForeignObject"/>), and refused wherever a weight would come from them.
    /// </summary>
    public static Dictionary<string, Tensor> LoadCheckpoint(string path, out long? globalStep)
    {
        long? step = null;
        var tensors = TorchUtils.Scoped(() => Read(path, (root, zip, prefix) =>
        {
            if (Entry(root, "global_step") is long s) step = s;
            // a pickle's memo can make a dict its own "state_dict": the nesting is bounded
            for (int depth = 0; Entry(root, "state_dict") is PickleDict inner; depth++)
            {
                if (depth >= MaxDepth || ReferenceEquals(inner, root))
                    throw new WeightsException($"{path}: the checkpoint's \"state_dict\" entries nest deeper than {MaxDepth} levels or contain themselves") { FilePath = path };
                root = inner;
            }
            return Materialize(root, zip, prefix, path);
        }, trainingCheckpoint: true), d => d.Values);
        globalStep = step;
        return tensors;
    }

    private static object? Entry(object? dict, string key) =>
        dict is PickleDict d ? d.Items.FirstOrDefault(kv => kv.Key as string == key).Value : null;

    /// <summary>
    /// Loads a <c>torch.save</c> file that holds plain data rather than a flat state dict (nested dicts, lists, tuples,
    /// strings, numbers, None and tensors, as A1111's textual-inversion embeddings): dicts come back as
    /// <see cref="PickleDict"/>, tuples as <c>object?[]</c>, lists as <c>List&lt;object?&gt;</c>, tensors as CPU
    /// <see cref="Tensor"/>s (the caller's to dispose, see <see cref="DisposeTensors"/>). The same allow-list applies.
    /// </summary>
    internal static object? LoadTree(string path) =>
        TorchUtils.Scoped(() => Read(path, (root, zip, prefix) =>
        {
            var storages = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            var made = new List<Tensor>();
            try
            {
                return Tree(root, zip, prefix, path, storages, made, "", 0);
            }
            catch
            {
                foreach (var t in made) t.Dispose();
                throw;
            }
            finally
            {
                foreach (var st in storages.Values) st.Dispose();
            }
        }), TreeTensors);

    /// <summary>How deep containers may nest in a pickle's tree (a cycle the memo makes would otherwise recurse forever).</summary>
    private const int MaxDepth = 256;

    /// <summary>Disposes every tensor in a tree returned by <see cref="LoadTree"/>.</summary>
    internal static void DisposeTensors(object? node)
    {
        foreach (var t in TreeTensors(node)) t.Dispose();
    }

    /// <summary>Every tensor in a tree returned by <see cref="LoadTree"/>, once (iteratively: any depth, shared or cyclic nodes).</summary>
    private static List<Tensor> TreeTensors(object? node)
    {
        var tensors = new List<Tensor>();
        var seen = new HashSet<object>(ReferenceEqualityComparer.Instance);
        var pending = new Stack<object?>();
        pending.Push(node);
        while (pending.Count > 0)
        {
            var n = pending.Pop();
            if (n is null || !seen.Add(n)) continue;
            switch (n)
            {
                case Tensor t: tensors.Add(t); break;
                case PickleDict d: foreach (var (_, v) in d.Items) pending.Push(v); break;
                case object?[] a: foreach (var v in a) pending.Push(v); break;
                case List<object?> l: foreach (var v in l) pending.Push(v); break;
            }
        }
        return tensors;
    }

    private static T Read<T>(string path, Func<object?, ZipArchive, string, T> materialize, bool trainingCheckpoint = false)
    {
        if (!File.Exists(path)) throw new WeightsException($"Weight file not found: {path}") { FilePath = path };
        SafetensorsFile.ThrowIfLfsPointer(path, new FileInfo(path).Length);
        ZipArchive zip;
        try { zip = ZipFile.OpenRead(path); }
        catch (InvalidDataException e)
        {
            throw new WeightsException(
                $"{path}: not a PyTorch zip checkpoint (truncated, corrupt, or saved in the pre-1.6 legacy format; re-save it with a recent torch or convert it to safetensors): {e.Message}", e)
            { FilePath = path };
        }
        using (zip)
        {
            IReadOnlyCollection<ZipArchiveEntry> entries;
            try { entries = zip.Entries; }
            catch (InvalidDataException e)
            {
                throw new WeightsException($"{path}: the zip's central directory is corrupt: {e.Message}", e) { FilePath = path };
            }
            var pkl = entries.Where(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal) && e.FullName.Count(c => c == '/') == 1).ToList();
            if (pkl.Count != 1)
                throw new WeightsException($"{path}: not a PyTorch checkpoint: expected one '<name>/data.pkl' in the zip, found {pkl.Count}") { FilePath = path };
            string prefix = pkl[0].FullName[..^"data.pkl".Length];
            var byteOrder = zip.GetEntry(prefix + "byteorder");
            if (byteOrder != null)
            {
                string order = System.Text.Encoding.ASCII.GetString(ReadEntry(byteOrder, path, maxBytes: 64)).Trim();
                if (order != "little")
                    throw new WeightsException($"{path}: byte order '{Printable.Text(order, 20)}' is not supported (only little-endian checkpoints)") { FilePath = path };
            }
            byte[] pickle = ReadEntry(pkl[0], path);
            object? root = Unpickle(pickle, path, trainingCheckpoint);
            return materialize(root, zip, prefix);
        }
    }

    private static object? Tree(object? node, ZipArchive zip, string prefix, string path, Dictionary<string, Tensor> storages,
        List<Tensor> made, string where, int depth)
    {
        if (depth > MaxDepth)
            throw new WeightsException($"{path}: the pickle's containers nest deeper than {MaxDepth} levels (or contain themselves) at '{Printable.Text(where)}'") { FilePath = path };
        switch (node)
        {
            case TensorRef tr:
            {
                using var view = View(tr, where.Length == 0 ? "(root)" : where, zip, prefix, path, storages, out _);
                var t = TorchUtils.Scoped(() => view.contiguous().clone());
                made.Add(t);
                return t;
            }
            case PickleDict d:
            {
                var copy = new PickleDict { State = d.State };
                foreach (var (k, v) in d.Items)
                    copy.Items.Add(new(k, Tree(v, zip, prefix, path, storages, made, where.Length == 0 ? $"{k}" : $"{where}.{k}", depth + 1)));
                return copy;
            }
            case object?[] a:
                return a.Select((v, i) => Tree(v, zip, prefix, path, storages, made, $"{where}[{i}]", depth + 1)).ToArray();
            case List<object?> l:
                return l.Select((v, i) => Tree(v, zip, prefix, path, storages, made, $"{where}[{i}]", depth + 1)).ToList();
            case StorageRef:
                throw new WeightsException($"{path}: '{where}' is a bare storage, not a tensor") { FilePath = path, Key = where };
            default:
                return node;
        }
    }

    private static byte[] ReadEntry(ZipArchiveEntry entry, string path, long maxBytes = 1L << 28)
    {
        if (entry.Length > maxBytes)
            throw new WeightsException($"{path}: '{Printable.Text(entry.FullName)}' is {entry.Length} bytes, too large for a state-dict pickle") { FilePath = path };
        var buf = new byte[entry.Length];
        try
        {
            using var s = entry.Open();   // reads the local header, which may be corrupt
            s.ReadExactly(buf);
        }
        catch (Exception e) when (e is EndOfStreamException or InvalidDataException or IOException)
        {
            throw new WeightsException($"{path}: '{Printable.Text(entry.FullName)}' cannot be read (truncated or corrupt): {e.Message}", e) { FilePath = path };
        }
        return buf;
    }

    /// <summary>
    /// The pickle's object tree. <paramref name="trainingCheckpoint"/>: globals outside the allow-list become inert
    /// <see cref="PickleGlobal.Foreign"/> names, and what REDUCE, NEWOBJ and BUILD make of them an inert
    /// <see cref="ForeignObject"/> (nothing is imported or called either way).
    /// </summary>
    internal static object? Unpickle(byte[] pickle, string path, bool trainingCheckpoint = false)
    {
        PickleGlobal Resolve(string module, string name)
        {
            string full = module + "." + name;
            if (AllowedFunctions.Contains(full) || (module == "torch" && StorageTypes.ContainsKey(name)))
                return new PickleGlobal(module, name);
            if (trainingCheckpoint) return new PickleGlobal(module, name, Foreign: true);
            throw new WeightsException(
                $"{path}: refusing to load global '{full}' from the pickle: only the globals of a torch state dict are allowed (is this a weights file?)")
            { FilePath = path, Key = full };
        }

        WeightsException Bad(string what) => new($"{path}: unsupported checkpoint content: {what}") { FilePath = path };

        object? Reduce(PickleGlobal g, object?[] args)
        {
            if (g.Foreign) return new ForeignObject(g.FullName);
            switch (g.FullName)
            {
                case "collections.OrderedDict":
                    if (args.Length != 0) throw Bad("OrderedDict called with arguments");
                    return new PickleDict();
                case "torch.Size":
                    return args.Length == 1 && args[0] is object?[] dims ? dims : throw Bad("torch.Size without a tuple");
                case "torch._utils._rebuild_tensor":
                case "torch._utils._rebuild_tensor_v2":
                {
                    if (args.Length < 4 || args[0] is not StorageRef st || args[1] is not long off
                        || args[2] is not object?[] size || args[3] is not object?[] stride)
                        throw Bad($"{g.Name} with unexpected arguments");
                    return new TensorRef(st, off, Longs(size, "size"), Longs(stride, "stride"));
                }
                case "torch._utils._rebuild_parameter":
                case "torch._utils._rebuild_parameter_with_state":
                    return args.Length >= 1 && args[0] is TensorRef t ? t : throw Bad($"{g.Name} of something that is not a tensor");
                default:
                    throw Bad($"'{g.FullName}' cannot be called");
            }
        }

        long[] Longs(object?[] items, string what) =>
            items.Select(i => i is long l ? l : throw Bad($"non-integer tensor {what}")).ToArray();

        object? PersistentLoad(object? pid)
        {
            if (pid is not object?[] { Length: 5 } t || t[0] as string != "storage" || t[1] is not PickleGlobal { Foreign: false } type
                || !StorageTypes.TryGetValue(type.Name, out var dtype) || t[2] is not string key || t[4] is not long numel || numel < 0)
                throw Bad("a persistent id that is not a ('storage', torch.*Storage, key, location, numel) tuple");
            return new StorageRef(key, dtype, numel);
        }

        void Build(object? target, object? state)
        {
            if (target is ForeignObject) return;           // its state stays unread
            if (target is PickleDict d) d.State = state;   // OrderedDict._metadata of a state dict
            else throw Bad($"BUILD on a {target?.GetType().Name ?? "None"}");
        }

        return new SafeUnpickler(pickle, path, Resolve, Reduce, PersistentLoad, Build, newObj: trainingCheckpoint).Load();
    }

    private static Dictionary<string, Tensor> Materialize(object? root, ZipArchive zip, string prefix, string path)
    {
        if (root is not PickleDict dict)
            throw new WeightsException($"{path}: the checkpoint is not a state dict (its pickle holds a {root?.GetType().Name ?? "None"})") { FilePath = path };
        var storages = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var wholeUsed = new HashSet<string>(StringComparer.Ordinal);
        try
        {
            foreach (var (k, v) in dict.Items)
            {
                if (k is not string name || v is not TensorRef tr)
                    throw new WeightsException($"{path}: the checkpoint is not a flat state dict of tensors (entry '{Printable.Text(k?.ToString())}' holds {(v is ForeignObject f ? $"a {Printable.Text(f.TypeName)} object, which is not loaded" : "a " + (v?.GetType().Name ?? "None"))})") { FilePath = path, Key = k as string };
                using var view = View(tr, name, zip, prefix, path, storages, out var storage);
                // The usual case (a whole storage, contiguous) shares the storage's memory; anything else
                // (an offset, a transposed or strided view, a storage used twice) is copied out.
                bool whole = tr.Offset == 0 && view.is_contiguous() && view.numel() == storage.numel();
                result[name] = whole && wholeUsed.Add(tr.Storage.Key) ? view.alias() : view.is_contiguous() ? view.clone() : view.contiguous();
            }
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
        finally
        {
            foreach (var s in storages.Values) s.Dispose();
        }
        return result;
    }

    /// <summary>The tensor <paramref name="tr"/> as a view of its storage (read once, checked for consistency and bounds).</summary>
    private static Tensor View(TensorRef tr, string name, ZipArchive zip, string prefix, string path,
        Dictionary<string, Tensor> storages, out Tensor storage)
    {
        if (!storages.TryGetValue(tr.Storage.Key, out storage!))
            storages[tr.Storage.Key] = storage = ReadStorage(zip, prefix, tr.Storage, name, path);
        if (storage.dtype != tr.Storage.DType || storage.numel() != tr.Storage.Numel)
            throw new WeightsException($"{path}: tensor '{Printable.Text(name)}': storage {Printable.Text(tr.Storage.Key)} is referenced with two different dtypes or sizes") { FilePath = path, Key = name };
        CheckBounds(tr, name, path);
        return storage.as_strided(tr.Size, tr.Stride, tr.Offset);
    }

    private static void CheckBounds(TensorRef t, string name, string path)
    {
        if (t.Size.Length != t.Stride.Length || t.Offset < 0 || t.Size.Any(s => s < 0) || t.Stride.Any(s => s < 0))
            throw new WeightsException($"{path}: tensor '{Printable.Text(name)}' has an invalid size [{string.Join(", ", t.Size)}], stride [{string.Join(", ", t.Stride)}] or offset {t.Offset}") { FilePath = path, Key = name };
        if (t.Size.Any(s => s == 0)) return;
        long last = t.Offset;
        try
        {
            for (int i = 0; i < t.Size.Length; i++) last = checked(last + (t.Size[i] - 1) * t.Stride[i]);
        }
        catch (OverflowException)
        {
            last = long.MaxValue;   // beyond any storage: refused below with the tensor's name
        }
        if (last >= t.Storage.Numel)
            throw new WeightsException(
                $"{path}: tensor '{Printable.Text(name)}' (size [{string.Join(", ", t.Size)}], stride [{string.Join(", ", t.Stride)}], offset {t.Offset}) reaches element {last} of a storage of {t.Storage.Numel}")
            { FilePath = path, Key = name };
    }

    private static Tensor ReadStorage(ZipArchive zip, string prefix, StorageRef s, string tensorName, string path)
    {
        string entryName = prefix + "data/" + s.Key;
        var entry = zip.GetEntry(entryName)
            ?? throw new WeightsException($"{path}: tensor '{Printable.Text(tensorName)}': storage '{Printable.Text(entryName)}' is missing from the zip") { FilePath = path, Key = tensorName };
        long elemSize;
        using (var probe = torch.empty(0, s.DType)) elemSize = probe.element_size();
        long expected = s.Numel <= long.MaxValue / elemSize ? s.Numel * elemSize : -1;
        if (entry.Length != expected)
        {
            // checked before allocating, so a lying numel cannot make us allocate anything
            throw new WeightsException(
                $"{path}: tensor '{Printable.Text(tensorName)}': storage '{Printable.Text(entryName)}' holds {entry.Length} bytes but {s.Numel} × {s.DType} needs {(expected < 0 ? "more than 2^63" : expected)}")
            { FilePath = path, Key = tensorName };
        }
        var t = torch.empty(new[] { s.Numel }, s.DType);
        try
        {
            if (expected > 0)
            {
                using var stream = entry.Open();
                SafetensorsFile.ForEachByteChunk(t, (bytes, _) => stream.ReadExactly(bytes));
            }
            return t;
        }
        catch (Exception e) when (e is EndOfStreamException or InvalidDataException or IOException)
        {
            t.Dispose();
            throw new WeightsException($"{path}: tensor '{Printable.Text(tensorName)}': storage '{Printable.Text(entryName)}' cannot be read (truncated or corrupt): {e.Message}", e) { FilePath = path, Key = tensorName };
        }
    }
}
