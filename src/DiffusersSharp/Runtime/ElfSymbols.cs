using System.IO.MemoryMappedFiles;

namespace DiffusersSharp.Runtime;

/// <summary>
/// Reads symbol values from an ELF64 little-endian shared object's full symbol table (.symtab). The file is mapped, not
/// read: libtorch_cpu.so's .symtab and .strtab are 92 MB, which reading into arrays cost 0.45-0.65 s and 96 MB of
/// fresh memory at every process's first model pass (<see cref="OneDnnCaches"/>); mapped, only the pages the scan
/// touches come in, from the page cache, uncopied.
/// </summary>
internal static class ElfSymbols
{
    private const int SymbolSize = 24, SectionHeaderSize = 64, ShtSymtab = 2;

    /// <summary>The value (address relative to the load base) of each of <paramref name="names"/> found in .symtab.</summary>
    public static unsafe Dictionary<string, ulong> Read(string path, IReadOnlyCollection<string> names)
    {
        long length = new FileInfo(path).Length;
        if (length < 64) throw new InvalidDataException($"{path} is not a little-endian ELF64 file");
        using var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        using var view = map.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
        byte* start = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref start);
        try
        {
            return Read(path, start + view.PointerOffset, length, names);
        }
        finally
        {
            view.SafeMemoryMappedViewHandle.ReleasePointer();
        }
    }

    private static unsafe Dictionary<string, ulong> Read(string path, byte* file, long length, IReadOnlyCollection<string> names)
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
            if (BitConverter.ToUInt32(sh[4..]) != ShtSymtab) continue;
            int link = (int)BitConverter.ToUInt32(sh[0x28..]);
            if (link >= shnum) throw new InvalidDataException($"{path}: .symtab links to section {link} of {shnum}");
            var str = sections[(link * SectionHeaderSize)..];
            return Find(At(BitConverter.ToInt64(sh[0x18..]), BitConverter.ToInt64(sh[0x20..])),
                At(BitConverter.ToInt64(str[0x18..]), BitConverter.ToInt64(str[0x20..])), names);
        }
        throw new InvalidDataException($"{path} has no .symtab (stripped)");
    }

    private static Dictionary<string, ulong> Find(ReadOnlySpan<byte> symtab, ReadOnlySpan<byte> strtab, IReadOnlyCollection<string> names)
    {
        var wanted = names.Select(n => (Name: n, Bytes: System.Text.Encoding.ASCII.GetBytes(n + "\0"))).ToArray();
        var found = new Dictionary<string, ulong>();
        for (int s = 0; s + SymbolSize <= symtab.Length && found.Count < wanted.Length; s += SymbolSize)
        {
            int type = symtab[s + 4] & 0xf; // STT_OBJECT 1, STT_FUNC 2
            if (type is not (1 or 2)) continue;
            uint at = BitConverter.ToUInt32(symtab[s..]);
            if (at >= strtab.Length) continue;
            var name = strtab[(int)at..];
            foreach (var (key, bytes) in wanted)
                if (name.StartsWith(bytes) && !found.ContainsKey(key))
                    found[key] = BitConverter.ToUInt64(symtab[(s + 8)..]);
        }
        return found;
    }
}
