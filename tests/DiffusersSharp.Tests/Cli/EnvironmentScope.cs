namespace DiffusersSharp.Tests.Cli;

/// <summary>
/// Tests that set process environment variables (HF_ENDPOINT, HF_HUB_OFFLINE, …) for an in-process CLI run. They run
/// in this collection, which xunit runs alone (no other test in parallel reads the environment meanwhile).
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class EnvironmentCollection
{
    public const string Name = "Process environment";
}

/// <summary>
/// Sets the Hugging Face variables for its lifetime (all others of the list cleared) and restores the previous values;
/// <c>HOME</c> / <c>USERPROFILE</c> may be set too (kept as they are unless given).
/// </summary>
public sealed class EnvironmentScope : IDisposable
{
    private static readonly string[] HubVariables =
    [
        "HF_ENDPOINT", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME",
        "XDG_CACHE_HOME", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_DOWNLOAD_TIMEOUT", "HF_HUB_ETAG_TIMEOUT",
    ];

    /// <summary>Restored on dispose but not cleared: the home folder (what <c>~</c> expands to).</summary>
    private static readonly string[] KeptVariables = ["HOME", "USERPROFILE"];

    private readonly Dictionary<string, string?> _saved = HubVariables.Concat(KeptVariables).ToDictionary(k => k, Environment.GetEnvironmentVariable);

    public EnvironmentScope(IReadOnlyDictionary<string, string?> values)
    {
        foreach (var k in HubVariables) Environment.SetEnvironmentVariable(k, null);
        foreach (var (k, v) in values)
        {
            if (!_saved.ContainsKey(k)) throw new ArgumentException($"{k} is not one of the variables this scope restores");
            Environment.SetEnvironmentVariable(k, v);
        }
    }

    /// <summary>Changes one of the variables (restored with the rest on dispose).</summary>
    public void Set(string key, string? value)
    {
        if (!_saved.ContainsKey(key)) throw new ArgumentException($"{key} is not one of the variables this scope restores");
        Environment.SetEnvironmentVariable(key, value);
    }

    public void Dispose()
    {
        foreach (var (k, v) in _saved) Environment.SetEnvironmentVariable(k, v);
    }
}
