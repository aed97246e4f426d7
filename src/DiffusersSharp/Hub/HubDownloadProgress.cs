using System.Globalization;

namespace DiffusersSharp.Hub;

/// <summary>Progress of one file download: bytes so far (resumed bytes included), total, rate and ETA.</summary>
public sealed record HubDownloadProgress(
    string RepoId,
    string FileName,
    long BytesDownloaded,
    long? TotalBytes,
    double BytesPerSecond,
    TimeSpan? Eta,
    bool Completed)
{
    /// <summary>A progress-bar line: <c>unet/x.safetensors  12.3MB/45.6MB  3.2MB/s  ETA 00:00:10</c>.</summary>
    public override string ToString()
    {
        string total = TotalBytes is { } t ? "/" + FormatSize(t) : "";
        string eta = Completed ? "done" : Eta is { } e ? "ETA " + e.ToString(@"hh\:mm\:ss", CultureInfo.InvariantCulture) : "ETA ?";
        return $"{FileName}  {FormatSize(BytesDownloaded)}{total}  {FormatSize((long)BytesPerSecond)}/s  {eta}";
    }

    /// <summary>huggingface_hub's <c>_format_size</c>: 1000-based units, one decimal ("1.2M").</summary>
    public static string FormatSize(long bytes)
    {
        double n = bytes;
        foreach (string unit in new[] { "", "K", "M", "G", "T", "P", "E" })
        {
            if (Math.Abs(n) < 1000.0) return n.ToString("0.0", CultureInfo.InvariantCulture) + unit + "B";
            n /= 1000.0;
        }
        return n.ToString("0.0", CultureInfo.InvariantCulture) + "ZB";
    }
}
