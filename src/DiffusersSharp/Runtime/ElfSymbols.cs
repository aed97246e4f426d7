namespace DiffusersSharp.Runtime;

/// <summary>Reads symbol values from an ELF64 little-endian shared object's full symbol table (.symtab).</summary>
internal static class ElfSymbols
{
    private const int SymbolSize = 24, SectionHeaderSize = 64, ShtSymtab = 2;

    /// <summary>The value (address relative to the load base) of each of <paramref name="names"/> found in .symtab.</summary>
    public static Dictionary<string, ulong> Read(string path, IReadOnlyCollection<string> names)
    {
        using var file = File.OpenHandle(path);
        byte[] header = ReadAt(file, 0, 64);
        if (header[0] != 0x7f || header[1] != 'E' || header[2] != 'L' || header[3] != 'F' || header[4] != 2 || header[5] != 1)
            throw new InvalidDataException($"{path} is not a little-endian ELF64 file");
        long shoff = BitConverter.ToInt64(header, 0x28);
        int shnum = BitConverter.ToUInt16(header, 0x3C);
        byte[] sections = ReadAt(file, shoff, shnum * SectionHeaderSize);
        for (int i = 0; i < shnum; i++)
        {
            int sh = i * SectionHeaderSize;
            if (BitConverter.ToUInt32(sections, sh + 4) != ShtSymtab) continue;
            long symOff = BitConverter.ToInt64(sections, sh + 0x18), symSize = BitConverter.ToInt64(sections, sh + 0x20);
            int link = (int)BitConverter.ToUInt32(sections, sh + 0x28);
            long strOff = BitConverter.ToInt64(sections, link * SectionHeaderSize + 0x18);
            long strSize = BitConverter.ToInt64(sections, link * SectionHeaderSize + 0x20);
            return Find(ReadAt(file, symOff, checked((int)symSize)), ReadAt(file, strOff, checked((int)strSize)), names);
        }
        throw new InvalidDataException($"{path} has no .symtab (stripped)");
    }

    private static Dictionary<string, ulong> Find(byte[] symtab, byte[] strtab, IReadOnlyCollection<string> names)
    {
        var wanted = names.ToDictionary(n => n, n => System.Text.Encoding.ASCII.GetBytes(n + "\0"));
        var found = new Dictionary<string, ulong>();
        for (int s = 0; s + SymbolSize <= symtab.Length && found.Count < wanted.Count; s += SymbolSize)
        {
            int type = symtab[s + 4] & 0xf; // STT_OBJECT 1, STT_FUNC 2
            if (type is not (1 or 2)) continue;
            var name = strtab.AsSpan((int)BitConverter.ToUInt32(symtab, s));
            foreach (var (key, bytes) in wanted)
                if (name.StartsWith(bytes) && !found.ContainsKey(key))
                    found[key] = BitConverter.ToUInt64(symtab, s + 8);
        }
        return found;
    }

    private static byte[] ReadAt(Microsoft.Win32.SafeHandles.SafeFileHandle file, long offset, int count)
    {
        var b = new byte[count];
        int done = 0;
        while (done < count)
        {
            int n = RandomAccess.Read(file, b.AsSpan(done), offset + done);
            if (n <= 0) throw new EndOfStreamException();
            done += n;
        }
        return b;
    }
}
