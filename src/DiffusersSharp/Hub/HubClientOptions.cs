namespace DiffusersSharp.Hub;

/// <summary>Tuning of <see cref="HubClient"/>: retries, timeouts, parallelism.</summary>
public sealed record HubClientOptions
{
    /// <summary>Retries of a request or of a broken download stream (huggingface_hub: 5) before giving up.</summary>
    public int MaxRetries { get; init; } = 5;

    /// <summary>First backoff delay; doubles on each retry up to <see cref="RetryMaxDelay"/>.</summary>
    public TimeSpan RetryBaseDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest wait between two retries of a failed request (the waits double up to it).</summary>
    public TimeSpan RetryMaxDelay { get; init; } = TimeSpan.FromSeconds(8);

    /// <summary>Time to wait for response headers, and between two reads of a body (HF_HUB_DOWNLOAD_TIMEOUT: 10 s).</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Files downloaded at the same time by a snapshot download (snapshot_download's max_workers: 8).</summary>
    public int MaxParallelDownloads { get; init; } = 8;

    /// <summary>Minimum time between two progress reports of one file (the last one is always reported).</summary>
    public TimeSpan ProgressInterval { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Test hook: opens the <c>.incomplete</c> file for writing (path, position to write at).</summary>
    internal Func<string, long, Stream>? OpenPartialFile { get; init; }
}
