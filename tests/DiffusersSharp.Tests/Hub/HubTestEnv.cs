using DiffusersSharp.Hub;
using DiffusersSharp.Tests.Support;

namespace DiffusersSharp.Tests.Hub;

/// <summary>A fake Hub serving tests/golden/tiny-ddpm as "google/ddpm-tiny", a temp cache, and client factories.</summary>
public sealed class HubTestEnv : IDisposable
{
    public const string TinyId = "google/ddpm-tiny";

    public HubTestEnv()
    {
        Server.Add(FakeRepo.FromFolder(TinyId, Support.Golden.Path("tiny-ddpm"), out string commit));
        TinyCommit = commit;
    }

    public TempDir Temp { get; } = new();

    public FakeHubServer Server { get; } = new();

    public string TinyCommit { get; }

    public string CacheDir => Temp.File("hub-cache");

    public string RepoFolder(string repoId) => Path.Combine(CacheDir, "models--" + repoId.Replace("/", "--"));

    public static byte[] Golden(string file) => File.ReadAllBytes(Support.Golden.Path("tiny-ddpm", file));

    /// <summary>Settings from a hermetic environment (HF_HOME in the temp folder), endpoint = the fake server.</summary>
    public HubSettings Settings(bool offline = false, string? token = null, string? endpoint = null) =>
        HubSettings.FromEnvironment(endpoint: endpoint ?? Server.Endpoint, token: token, offline: offline, cacheDir: CacheDir,
                                    environment: new Dictionary<string, string?> { ["HF_HOME"] = Temp.File("hf-home") });

    public static HubClientOptions FastOptions => new()
    {
        RetryBaseDelay = TimeSpan.FromMilliseconds(5), RetryMaxDelay = TimeSpan.FromMilliseconds(50), RequestTimeout = TimeSpan.FromSeconds(5),
    };

    public HubClient Client(bool offline = false, string? token = null, HubClientOptions? options = null, string? endpoint = null) =>
        new(Settings(offline, token, endpoint), options ?? FastOptions);

    public void Dispose()
    {
        Server.Dispose();
        Temp.Dispose();
    }
}
