namespace DiffusersSharp.Hub;

/// <summary>
/// An exclusive lock on a file under <c>.locks/</c>. .NET implements <see cref="FileShare.None"/> on Unix with
/// <c>flock(LOCK_EX)</c>, the same advisory lock Python's <c>filelock</c> takes, so C# and Python downloaders
/// exclude each other, and two threads of one process do too (flock is per open file description).
/// </summary>
internal sealed class FileLockHandle : IDisposable
{
    private readonly FileStream _stream;

    private FileLockHandle(FileStream stream) => _stream = stream;

    public static async Task<FileLockHandle> AcquireAsync(string lockPath, CancellationToken ct)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(lockPath)!);
        int delayMs = 10;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            try
            {
                return new FileLockHandle(new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
            }
            catch (IOException e) when (!ct.IsCancellationRequested && IsHeldByAnother(e))
            {
                // Held by another process or thread: poll (filelock polls every 50 ms). Any other failure (a read-only
                // file system, a broken link, a full disk) is thrown: waiting would never end.
                await Task.Delay(delayMs, ct).ConfigureAwait(false);
                delayMs = Math.Min(delayMs * 2, 50);
            }
        }
    }

    /// <summary>
    /// True when opening failed because another handle holds the lock: on Unix .NET reports flock's EWOULDBLOCK with
    /// the raw errno as HResult (11 on Linux, 35 on macOS and the BSDs), on Windows a sharing or lock violation.
    /// </summary>
    internal static bool IsHeldByAnother(IOException e) =>
        e.GetType() == typeof(IOException)
        && (OperatingSystem.IsWindows()
            ? e.HResult is unchecked((int)0x80070020) or unchecked((int)0x80070021)
            : e.HResult == (OperatingSystem.IsLinux() ? 11 : 35));

    public void Dispose() => _stream.Dispose();
}
