using System.Runtime.InteropServices;
using DiffusersSharp.Runtime;
using DiffusersSharp.Tests.Support;
using TorchSharp;

namespace DiffusersSharp.Tests.Runtime;

/// <summary>The .symtab reader behind the oneDNN cache repair (Runtime/ElfSymbols, on a mapped file).</summary>
public class ElfSymbolsTests
{
    [Fact]
    public void LibTorchsSymbolsAreFoundAtTheirLoadedAddresses()
    {
        using (torch.zeros(1)) { }   // libtorch loaded
        var (path, loadBase) = OneDnnCaches.MappedLibTorch();
        var symbols = ElfSymbols.Read(path, [OneDnnCaches.GlobalContext, OneDnnCaches.CpuObject, OneDnnCaches.CpuGuard, "no_such_symbol_here"]);
        Assert.True(NativeLibrary.TryGetExport(NativeLibrary.Load(path), OneDnnCaches.GlobalContext, out var exported));
        Assert.Equal((ulong)(exported - loadBase), symbols[OneDnnCaches.GlobalContext]);
        // oneDNN's CPU description and its guard: 8 bytes apart or more, both in the library's writable data
        Assert.True(symbols[OneDnnCaches.CpuObject] > symbols[OneDnnCaches.GlobalContext]);
        Assert.True(symbols[OneDnnCaches.CpuObject] - symbols[OneDnnCaches.CpuGuard] >= 8);
        Assert.False(symbols.ContainsKey("no_such_symbol_here"));
    }

    [Fact]
    public void TypedQueriesFindWhatTheNameScanFindsAndNothingOfAnotherTypeOrSize()
    {
        using (torch.zeros(1)) { }
        var (path, loadBase) = OneDnnCaches.MappedLibTorch();
        var byName = ElfSymbols.Read(path, [OneDnnCaches.GlobalContext, OneDnnCaches.CpuObject, OneDnnCaches.CpuGuard]);
        // the repair's queries: the two objects by size in .symtab, the export in .dynsym
        var queried = ElfSymbols.Read(path, OneDnnCaches.Symbols);
        Assert.Equal(byName.OrderBy(p => p.Key), queried.OrderBy(p => p.Key));
        Assert.True(NativeLibrary.TryGetExport(NativeLibrary.Load(path), OneDnnCaches.GlobalContext, out var exported));
        Assert.Equal((ulong)(exported - loadBase), queried[OneDnnCaches.GlobalContext]);

        // a query of another type, or a size range the symbol is outside of, does not match it
        var missed = ElfSymbols.Read(path, [
            new ElfSymbol(OneDnnCaches.CpuObject, ElfSymbols.Function),
            new ElfSymbol(OneDnnCaches.CpuGuard, ElfSymbols.Object, MinSize: 16),
            new ElfSymbol(OneDnnCaches.GlobalContext, ElfSymbols.Object, Dynamic: true),
        ]);
        Assert.Empty(missed);
        // the guard's own size, 8 bytes, matches
        Assert.Equal(byName[OneDnnCaches.CpuGuard],
            ElfSymbols.Read(path, [new ElfSymbol(OneDnnCaches.CpuGuard, ElfSymbols.Object, MinSize: 8, MaxSize: 8)])[OneDnnCaches.CpuGuard]);
    }

    [Fact]
    public void BadFilesAreClearErrorsNamingTheFile()
    {
        using var dir = new TempDir();
        string text = dir.File("not-elf.so");
        File.WriteAllText(text, new string('x', 100));
        Assert.Equal($"{text} is not a little-endian ELF64 file", Assert.Throws<InvalidDataException>(() => ElfSymbols.Read(text, ["x"])).Message);

        string small = dir.File("small.so");
        File.WriteAllBytes(small, [0x7f, (byte)'E', (byte)'L', (byte)'F']);
        Assert.Equal($"{small} is not a little-endian ELF64 file", Assert.Throws<InvalidDataException>(() => ElfSymbols.Read(small, ["x"])).Message);

        // a real ELF64 header whose section headers lie past the end (a truncated library)
        string truncated = dir.File("truncated.so");
        var (path, _) = OneDnnCaches.MappedLibTorch();
        using (var source = File.OpenRead(path))
        {
            var head = new byte[4096];
            source.ReadExactly(head);
            File.WriteAllBytes(truncated, head);
        }
        var e = Assert.Throws<InvalidDataException>(() => ElfSymbols.Read(truncated, ["x"]));
        Assert.StartsWith($"{truncated}: a section lies outside the file (offset ", e.Message);

        Assert.Equal("/bin/true has no .symtab (stripped)", Assert.Throws<InvalidDataException>(() => ElfSymbols.Read("/bin/true", ["x"])).Message);
        // a stripped file still has its exports' table
        Assert.Empty(ElfSymbols.Read("/bin/true", [new ElfSymbol("no_such_export", ElfSymbols.Function, Dynamic: true)]));
    }
}
