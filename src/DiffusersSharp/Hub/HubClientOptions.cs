namespace DiffusersSharp.Hub;

/// <summary>Tuning of <see cref="HubClient"/>: retries, timeouts, parallelism.</summary>
public sealed record HubClientOptions
{
    /// <summary>The defaults, with the timeouts of the process environment (<c>HF_HUB_DOWNLOAD_TIMEOUT</c>, <c>HF_HUB_ETAG_TIMEOUT</c>).</summary>
    public HubClientOptions()
        : this(Environment.GetEnvironmentVariable)
    {
    }

    private HubClientOptions(Func<string, string?> env)
    {
        RequestTimeout = EnvTimeout(env, "HF_HUB_DOWNLOAD_TIMEOUT");
        EtagTimeout = EnvTimeout(env, "HF_HUB_ETAG_TIMEOUT");
    }

    /// <summary>Retries of a request or of a broken download stream (huggingface_hub: 5) before giving up.</summary>
    public int MaxRetries { get; init; } = 5;

    /// <summary>First backoff delay; doubles on each retry up to <see cref="RetryMaxDelay"/>.</summary>
    public TimeSpan RetryBaseDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest wait between two retries of a failed request (the waits double up to it).</summary>
    public TimeSpan RetryMaxDelay { get; init; } = TimeSpan.FromSeconds(8);

    /// <summary>
    /// Time to wait for the response headers of a download or API call, and between two reads of a body; default
    /// <c>HF_HUB_DOWNLOAD_TIMEOUT</c> seconds, else 10 s (huggingface_hub's download timeout).
    /// </summary>
    public TimeSpan RequestTimeout { get; init; }

    /// <summary>
    /// Time to wait for the answer to a file's metadata request (the HEAD before a download); default
    /// <c>HF_HUB_ETAG_TIMEOUT</c> seconds, else 10 s (huggingface_hub's etag timeout).
    /// </summary>
    public TimeSpan EtagTimeout { get; init; }

    /// <summary>Files downloaded at the same time by a snapshot download (snapshot_download's max_workers: 8).</summary>
    public int MaxParallelDownloads { get; init; } = 8;

    /// <summary>Minimum time between two progress reports of one file (the last one is always reported).</summary>
    public TimeSpan ProgressInterval { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// The defaults with the timeouts of <paramref name="environment"/> (<c>HF_HUB_DOWNLOAD_TIMEOUT</c>,
    /// <c>HF_HUB_ETAG_TIMEOUT</c>) instead of the process environment's, which is not read (an invalid value there is
    /// no error here).
    /// </summary>
    public static HubClientOptions FromEnvironment(IReadOnlyDictionary<string, string?> environment)
    {
        string? Env(string key) => environment.TryGetValue(key, out var v) ? v : null;
        return new HubClientOptions(Env);
    }

    /// <summary>
    /// huggingface_hub's <c>_as_int(os.environ.get(name)) or 10</c>: whole seconds; unset or 0 is the default 10 s;
    /// anything else, empty included (Python's <c>int("")</c> fails as huggingface_hub is imported), is an error naming
    /// the variable.
    /// </summary>
    private static TimeSpan EnvTimeout(Func<string, string?> env, string name)
    {
        string? value = env(name);
        if (value is null) return TimeSpan.FromSeconds(10);
        if (!int.TryParse(value, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out int seconds) || seconds < 0)
            throw new HubException(HubErrorKind.InvalidInput, $"{name} must be a whole number of seconds, got '{value}'.") { Key = name };
        return TimeSpan.FromSeconds(seconds == 0 ? 10 : seconds);
    }

    /// <summary>Test hook: opens the <c>.incomplete</c> file for writing (path, position to write at).</summary>
    internal Func<string, long, Stream>? OpenPartialFile { get; init; }
}
