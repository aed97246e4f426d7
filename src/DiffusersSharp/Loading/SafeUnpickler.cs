using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using System.Text;

namespace DiffusersSharp.Loading;

/// <summary>
/// A <c>module.name</c> global that the caller's allow-list accepted, or, in a training checkpoint, a foreign one
/// (<paramref name="Foreign"/>) kept as an inert name (never imported or called).
/// </summary>
internal sealed record PickleGlobal(string Module, string Name, bool Foreign = false)
{
    public string FullName => Module + "." + Name;
}

/// <summary>
/// What a foreign global "made" in a training checkpoint (a Lightning callback, an optimizer's or a config's object):
/// nothing is constructed; it stands where the object was, and is an error wherever a weight is read.
/// </summary>
internal sealed record ForeignObject(string TypeName);

/// <summary>A Python dict (or OrderedDict) in insertion order; keys compared by value.</summary>
internal sealed class PickleDict
{
    public List<KeyValuePair<object?, object?>> Items { get; } = new();
    /// <summary>The state a BUILD opcode gave it (OrderedDict's <c>_metadata</c>), kept but not used.</summary>
    public object? State { get; set; }
}

/// <summary>
/// A pickle reader that never executes anything: it interprets the opcodes of protocols 0–5 that plain
/// data needs (numbers, strings, bytes, tuples, lists, dicts, sets, memo, persistent ids), asks
/// <see cref="_resolveGlobal"/> about every <c>GLOBAL</c> (which refuses whatever is not allow-listed) and
/// <see cref="_reduce"/> about every <c>REDUCE</c> (and <c>NEWOBJ</c>, when the caller allows it: a training
/// checkpoint's foreign objects, which reduce makes inert). Opcodes that build arbitrary objects (INST, OBJ,
/// NEWOBJ otherwise, NEWOBJ_EX, EXT*, out-of-band buffers) are refused.
/// </summary>
internal sealed class SafeUnpickler
{
    private static readonly object Mark = new();
    private readonly byte[] _data;
    private readonly string _source;
    private readonly Func<string, string, PickleGlobal> _resolveGlobal;
    private readonly Func<PickleGlobal, object?[], object?> _reduce;
    private readonly Func<object?, object?> _persistentLoad;
    private readonly Action<object?, object?> _build;
    private readonly bool _newObj;
    private int _pos;
    private int _opStart;

    public SafeUnpickler(byte[] data, string source,
        Func<string, string, PickleGlobal> resolveGlobal,
        Func<PickleGlobal, object?[], object?> reduce,
        Func<object?, object?> persistentLoad,
        Action<object?, object?> build,
        bool newObj = false)
    {
        _data = data; _source = source; _resolveGlobal = resolveGlobal; _reduce = reduce;
        _persistentLoad = persistentLoad; _build = build; _newObj = newObj;
    }

    private WeightsException Bad(string what) =>
        new($"{_source}: corrupt or unsupported pickle at byte {_opStart}: {what}") { FilePath = _source };

    public object? Load()
    {
        var stack = new List<object?>();
        var marks = new Stack<int>();
        var memo = new Dictionary<long, object?>();

        object? Pop()
        {
            if (stack.Count == 0 || (marks.Count > 0 && stack.Count <= marks.Peek())) throw Bad("stack underflow");
            var v = stack[^1]; stack.RemoveAt(stack.Count - 1); return v;
        }
        object? Top() => stack.Count == 0 ? throw Bad("stack underflow") : stack[^1];
        List<object?> PopMark()
        {
            if (marks.Count == 0) throw Bad("no MARK on the stack");
            int m = marks.Pop();
            var items = stack.GetRange(m, stack.Count - m);
            stack.RemoveRange(m, stack.Count - m);
            return items;
        }
        object? Get(long key) => memo.TryGetValue(key, out var v) ? v : throw Bad($"memo key {key} was never stored");
        void Put(long key) => memo[key] = Top();

        while (true)
        {
            if (_pos >= _data.Length) throw Bad("the pickle ends without STOP (file truncated?)");
            _opStart = _pos;
            byte op = _data[_pos++];
            switch (op)
            {
                case 0x80: ReadBytes(1); break;                                        // PROTO
                case 0x95: ReadBytes(8); break;                                        // FRAME
                case (byte)'.':                                                        // STOP
                    if (stack.Count != 1 || marks.Count != 0) throw Bad($"STOP with {stack.Count} items on the stack");
                    return stack[0];
                case (byte)'(': marks.Push(stack.Count); break;                       // MARK
                case (byte)'0': Pop(); break;                                          // POP
                case (byte)'1': PopMark(); break;                                      // POP_MARK
                case (byte)'2': stack.Add(Top()); break;                               // DUP
                case (byte)'N': stack.Add(null); break;
                case 0x88: stack.Add(true); break;
                case 0x89: stack.Add(false); break;
                case (byte)'I':                                                        // INT (text)
                {
                    string s = ReadLine();
                    stack.Add(s == "01" ? true : s == "00" ? false : ParseLong(s));
                    break;
                }
                case (byte)'J': stack.Add((long)BinaryPrimitives.ReadInt32LittleEndian(ReadBytes(4))); break;
                case (byte)'K': stack.Add((long)ReadBytes(1)[0]); break;
                case (byte)'M': stack.Add((long)BinaryPrimitives.ReadUInt16LittleEndian(ReadBytes(2))); break;
                case (byte)'L': stack.Add(ParseLong(ReadLine().TrimEnd('L'))); break;  // LONG (text)
                case 0x8a: stack.Add(LongFromBytes(ReadBytes(ReadBytes(1)[0]))); break; // LONG1
                case 0x8b: stack.Add(LongFromBytes(ReadBytes(ReadLength(4)))); break;   // LONG4
                case (byte)'F':
                    stack.Add(double.TryParse(ReadLine(), NumberStyles.Float, CultureInfo.InvariantCulture, out double f) ? f : throw Bad("bad FLOAT"));
                    break;
                case (byte)'G': stack.Add(BinaryPrimitives.ReadDoubleBigEndian(ReadBytes(8))); break;
                case (byte)'S': stack.Add(ParseQuoted(ReadLine())); break;             // STRING (py2 str)
                case (byte)'T': stack.Add(Encoding.Latin1.GetString(ReadBytes(ReadLength(4)))); break;
                case (byte)'U': stack.Add(Encoding.Latin1.GetString(ReadBytes(ReadBytes(1)[0]))); break;
                case (byte)'B': stack.Add(ReadBytes(ReadLength(4)).ToArray()); break;  // BINBYTES
                case (byte)'C': stack.Add(ReadBytes(ReadBytes(1)[0]).ToArray()); break;
                case 0x8e: stack.Add(ReadBytes(ReadLength(8)).ToArray()); break;       // BINBYTES8
                case 0x96: stack.Add(ReadBytes(ReadLength(8)).ToArray()); break;       // BYTEARRAY8
                case (byte)'V': stack.Add(ReadLine()); break;                          // UNICODE (raw-unicode-escape; ASCII names)
                case (byte)'X': stack.Add(Utf8(ReadBytes(ReadLength(4)))); break;
                case 0x8c: stack.Add(Utf8(ReadBytes(ReadBytes(1)[0]))); break;
                case 0x8d: stack.Add(Utf8(ReadBytes(ReadLength(8)))); break;
                case (byte)')': stack.Add(Array.Empty<object?>()); break;
                case (byte)'t': stack.Add(PopMark().ToArray()); break;
                case 0x85: { var a = Pop(); stack.Add(new[] { a }); break; }
                case 0x86: { var b = Pop(); var a = Pop(); stack.Add(new[] { a, b }); break; }
                case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); stack.Add(new[] { a, b, c }); break; }
                case (byte)']': stack.Add(new List<object?>()); break;
                case (byte)'l': stack.Add(PopMark()); break;
                case (byte)'a': { var v = Pop(); AsList(Top()).Add(v); break; }
                case (byte)'e': { var items = PopMark(); AsList(Top()).AddRange(items); break; }
                case (byte)'}': stack.Add(new PickleDict()); break;
                case (byte)'d':
                {
                    var items = PopMark();
                    var d = new PickleDict();
                    AddPairs(d, items);
                    stack.Add(d);
                    break;
                }
                case (byte)'s': { var v = Pop(); var k = Pop(); AsDict(Top()).Items.Add(new(k, v)); break; }
                case (byte)'u': { var items = PopMark(); AddPairs(AsDict(Top()), items); break; }
                case 0x8f: stack.Add(new List<object?>()); break;                     // EMPTY_SET (as a list)
                case 0x90: { var items = PopMark(); AsList(Top()).AddRange(items); break; } // ADDITEMS
                case 0x91: stack.Add(PopMark()); break;                                // FROZENSET
                case (byte)'g': stack.Add(Get(ParseLong(ReadLine()))); break;
                case (byte)'h': stack.Add(Get(ReadBytes(1)[0])); break;
                case (byte)'j': stack.Add(Get(BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(4)))); break;
                case (byte)'p': Put(ParseLong(ReadLine())); break;
                case (byte)'q': Put(ReadBytes(1)[0]); break;
                case (byte)'r': Put(BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(4))); break;
                case 0x94: Put(memo.Count); break;                                     // MEMOIZE
                case (byte)'c':                                                        // GLOBAL
                {
                    string module = ReadLine(), name = ReadLine();
                    stack.Add(_resolveGlobal(module, name));
                    break;
                }
                case 0x93:                                                             // STACK_GLOBAL
                {
                    var name = Pop() as string ?? throw Bad("STACK_GLOBAL name is not a string");
                    var module = Pop() as string ?? throw Bad("STACK_GLOBAL module is not a string");
                    stack.Add(_resolveGlobal(module, name));
                    break;
                }
                case (byte)'R':                                                        // REDUCE
                {
                    var args = Pop() as object?[] ?? throw Bad("REDUCE arguments are not a tuple");
                    var callable = Pop() as PickleGlobal ?? throw Bad("REDUCE of something that is not an allowed global");
                    stack.Add(_reduce(callable, args));
                    break;
                }
                case 0x81 when _newObj:                                                // NEWOBJ, handed to reduce
                {
                    var args = Pop() as object?[] ?? throw Bad("NEWOBJ arguments are not a tuple");
                    var cls = Pop() as PickleGlobal ?? throw Bad("NEWOBJ of something that is not a global");
                    stack.Add(_reduce(cls, args));
                    break;
                }
                case (byte)'b': { var state = Pop(); _build(Top(), state); break; }   // BUILD
                case (byte)'P': stack.Add(_persistentLoad(ReadLine())); break;         // PERSID
                case (byte)'Q': stack.Add(_persistentLoad(Pop())); break;              // BINPERSID
                default:
                    throw Bad($"opcode 0x{op:x2} ({OpName(op)}) is not allowed in a weights file");
            }
        }
    }

    private static string OpName(byte op) => op switch
    {
        (byte)'i' => "INST",
        (byte)'o' => "OBJ",
        0x81 => "NEWOBJ",
        0x92 => "NEWOBJ_EX",
        0x82 or 0x83 or 0x84 => "EXT",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => "unknown",
    };

    private void AddPairs(PickleDict d, List<object?> items)
    {
        if (items.Count % 2 != 0) throw Bad("odd number of items for a dict");
        for (int i = 0; i < items.Count; i += 2) d.Items.Add(new(items[i], items[i + 1]));
    }

    private List<object?> AsList(object? o) => o as List<object?> ?? throw Bad($"APPEND to a {o?.GetType().Name ?? "None"}, not a list");
    private PickleDict AsDict(object? o) => o as PickleDict ?? throw Bad($"SETITEM on a {o?.GetType().Name ?? "None"}, not a dict");

    private ReadOnlySpan<byte> ReadBytes(long n)
    {
        if (n < 0 || n > _data.Length - _pos) throw Bad($"a length of {n} runs past the end of the pickle");
        var s = new ReadOnlySpan<byte>(_data, _pos, (int)n);
        _pos += (int)n;
        return s;
    }

    private long ReadLength(int width)
    {
        var b = ReadBytes(width);
        long n = width == 4 ? BinaryPrimitives.ReadUInt32LittleEndian(b) : (long)Math.Min(BinaryPrimitives.ReadUInt64LittleEndian(b), long.MaxValue);
        if (n > _data.Length - _pos) throw Bad($"a length of {n} runs past the end of the pickle");
        return n;
    }

    private string ReadLine()
    {
        int end = Array.IndexOf(_data, (byte)'\n', _pos);
        if (end < 0) throw Bad("unterminated text argument");
        string s = Encoding.UTF8.GetString(_data, _pos, end - _pos);
        _pos = end + 1;
        return s;
    }

    private string Utf8(ReadOnlySpan<byte> b)
    {
        try { return new UTF8Encoding(false, true).GetString(b); }
        catch (DecoderFallbackException) { throw Bad("invalid UTF-8 in a string"); }
    }

    private long ParseLong(string s) =>
        long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long v) ? v : throw Bad($"bad integer '{s}'");

    private object LongFromBytes(ReadOnlySpan<byte> b)
    {
        if (b.Length == 0) return 0L;
        var big = new BigInteger(b, isUnsigned: false, isBigEndian: false);
        return big >= long.MinValue && big <= long.MaxValue ? (long)big : throw Bad("integer too large");
    }

    private string ParseQuoted(string s)
    {
        if (s.Length >= 2 && (s[0] == '\'' || s[0] == '"') && s[^1] == s[0]) return s[1..^1];
        throw Bad("bad STRING argument");
    }
}
