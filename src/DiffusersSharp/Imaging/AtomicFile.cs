namespace DiffusersSharp.Imaging;

/// <summary>
/// Writes output files through a temporary file in the target folder that is renamed over the target,
/// so a failure leaves neither a partial file nor a damaged previous version.
/// </summary>
public static class AtomicFile
{
    /// <summary>Writes <paramref name="bytes"/> to <paramref name="path"/> atomically.</summary>
    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        string tmp = TempNameFor(path);
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
                fs.Write(bytes);
            File.Move(tmp, path, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            TryDelete(tmp);
            throw new DiffusersException($"Cannot write '{path}': {e.Message}", e) { FilePath = path };
        }
        catch
        {
            TryDelete(tmp);
            throw;
        }
    }

    /// <summary>
    /// Checks, before any expensive work, that <paramref name="path"/> can be written: its folder exists
    /// and a file can be created there, and the path is not a folder. Nothing is left behind.
    /// </summary>
    public static void EnsureWritable(string path)
    {
        string full;
        try
        {
            full = Path.GetFullPath(path);
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        {
            throw new DiffusersException($"Cannot write '{path}': {e.Message}", e) { FilePath = path };
        }
        if (Directory.Exists(full))
            throw new DiffusersException($"Cannot write '{path}': it is a directory") { FilePath = path };
        string? dir = Path.GetDirectoryName(full);
        if (dir is null || !Directory.Exists(dir))
            throw new DiffusersException($"Cannot write '{path}': the folder '{dir}' does not exist") { FilePath = path };
        if (File.Exists(full) && new FileInfo(full).IsReadOnly)
            throw new DiffusersException($"Cannot write '{path}': the file is read-only") { FilePath = path };
        string probe = TempNameFor(full);
        try
        {
            using (new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None)) { }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DiffusersException($"Cannot write '{path}': {e.Message}", e) { FilePath = path };
        }
        finally
        {
            TryDelete(probe);
        }
    }

    private static string TempNameFor(string path)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full) ?? ".";
        return Path.Combine(dir, "." + Path.GetFileName(full) + "." + Guid.NewGuid().ToString("N")[..12] + ".tmp");
    }

    private static void TryDelete(string path)
    {
        try { if (File.Exists(path)) File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
