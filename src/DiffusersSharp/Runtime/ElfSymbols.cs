using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;

namespace DiffusersSharp.Runtime;

/// <summary>
/// A symbol <see cref="ElfSymbols"/> looks for: its name, its ELF type (<see cref="ElfSymbols.Object"/>,
/// <see cref="ElfSymbols.Function"/>) and the range its size must lie in, and the table it is in (the full .symtab, or
/// .dynsym for an exported one). The scan reads a symbol's name only where its type and size match, so the narrower
/// the query, the fewer of the string table's pages come in.
/// </summary>
internal readonly record struct ElfSymbol(string Name, int Type, ulong MinSize = 0, ulong MaxSize = ulong.MaxValue, bool Dynamic = false);

/// <summary>
/// Reads symbol values from an ELF64 little-endian shared object's symbol tables (.symtab, and .dynsym for exported
/// symbols). The file is mapped, not read: libtorch_cpu.so's .symtab and .strtab are 92 MB, which reading into arrays
/// cost 0.45-0.65 s and 96 MB of fresh memory at every process's first model pass (<see cref="OneDnnCaches"/>);
/// mapped, only the pages the scan touches come in, from the page cache, uncopied. A name is compared only for the
/// symbols whose type and size match the query (<see cref="ElfSymbol"/>): comparing the names of all 526,000 objects and
/// functions touched the whole 79 MB .strtab, 110 ms of a process's first model pass (bench -- symbol-scan); with the
/// oneDNN repair's queries (two objects by size, one export in .dynsym) 44,000 names are read, in 49 ms.
/// </summary>
internal static class ElfSymbols
{
    /// <summary>ELF symbol types (STT_OBJECT, STT_FUNC).</summary>
    public const int Object = 1, Function = 2;

    private const int SymbolSize = 24, SectionHeaderSize = 64, ShtSymtab = 2, ShtDynsym = 11;

    /// <summary>The value (address relative to the load base) of each of <paramref name="names"/> (objects or functions of
    /// any size) found in .symtab.</summary>
    public static Dictionary<string, ulong> Read(string path, IReadOnlyCollection<string> names) =>
        Read(path, [.. names.SelectMany(n => new[] { new ElfSymbol(n, Object), new ElfSymbol(n, Function) })]);

    /// <summary>The value (address relative to the load base) of each of <paramref name="symbols"/> found, by name.</summary>
    public static unsafe Dictionary<string, ulong> Read(string path, IReadOnlyCollection<ElfSymbol> symbols)
    {
        long length = new FileInfo(path).Length;
        if (length < 64) throw new InvalidDataException($"{path} is not a little-endian ELF64 file");
        using var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        using var view = map.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
        byte* start = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref start);
        try
        {
            var found = new Dictionary<string, ulong>();
            foreach (bool dynamic in new[] { false, true })
                if (symbols.Where(q => q.Dynamic == dynamic).ToArray() is { Length: > 0 } wanted)
                    Read(path, start + view.PointerOffset, length, dynamic, wanted, found);
            return found;
        }
        finally
        {
            view.SafeMemoryMappedViewHandle.ReleasePointer();
        }
    }

    private static unsafe void Read(string path, byte* file, long length, bool dynamic, ElfSymbol[] wanted, Dictionary<string, ulong> found)
    {
        ReadOnlySpan<byte> At(long offset, long count) =>
            offset >= 0 && count >= 0 && offset <= length - count && count <= int.MaxValue
                ? new ReadOnlySpan<byte>(file + offset, (int)count)
                : throw new InvalidDataException($"{path}: a section lies outside the file (offset {offset}, {count} bytes)");
        var header = At(0, 64);
        if (header[0] != 0x7f || header[1] != 'E' || header[2] != 'L' || header[3] != 'F' || header[4] != 2 || header[5] != 1)
            throw new InvalidDataException($"{path} is not a little-endian ELF64 file");
        long shoff = BitConverter.ToInt64(header[0x28..]);
        int shnum = BitConverter.ToUInt16(header[0x3C..]);
        var sections = At(shoff, (long)shnum * SectionHeaderSize);
        for (int i = 0; i < shnum; i++)
        {
            var sh = sections[(i * SectionHeaderSize)..];
            if (BitConverter.ToUInt32(sh[4..]) != (dynamic ? ShtDynsym : ShtSymtab)) continue;
            int link = (int)BitConverter.ToUInt32(sh[0x28..]);
            if (link >= shnum) throw new InvalidDataException($"{path}: {(dynamic ? ".dynsym" : ".symtab")} links to section {link} of {shnum}");
            var str = sections[(link * SectionHeaderSize)..];
            Find(At(BitConverter.ToInt64(sh[0x18..]), BitConverter.ToInt64(sh[0x20..])),
                At(BitConverter.ToInt64(str[0x18..]), BitConverter.ToInt64(str[0x20..])), wanted, found);
            return;
        }
        throw new InvalidDataException(dynamic ? $"{path} has no .dynsym" : $"{path} has no .symtab (stripped)");
    }

    // optimised at its first call (it runs once a process, over 500,000 symbols: unoptimised code took twice as long)
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static void Find(ReadOnlySpan<byte> symtab, ReadOnlySpan<byte> strtab, ElfSymbol[] wanted, Dictionary<string, ulong> found)
    {
        var names = wanted.Select(q => System.Text.Encoding.ASCII.GetBytes(q.Name + "\0")).ToArray();
        int types = wanted.Aggregate(0, (mask, q) => mask | 1 << (q.Type & 0xf));
        int left = wanted.Select(q => q.Name).Distinct().Count(n => !found.ContainsKey(n));
        for (int s = 0; s + SymbolSize <= symtab.Length && left > 0; s += SymbolSize)
        {
            int type = symtab[s + 4] & 0xf;
            if ((types & 1 << type) == 0) continue;
            ulong size = MemoryMarshal.Read<ulong>(symtab[(s + 16)..]);
            for (int i = 0; i < wanted.Length; i++)
            {
                if (type != wanted[i].Type || size < wanted[i].MinSize || size > wanted[i].MaxSize) continue;
                uint at = MemoryMarshal.Read<uint>(symtab[s..]);
                if (at >= strtab.Length || !strtab[(int)at..].StartsWith(names[i]) || found.ContainsKey(wanted[i].Name)) continue;
                found[wanted[i].Name] = MemoryMarshal.Read<ulong>(symtab[(s + 8)..]);
                left--;
            }
        }
    }
}
