namespace DiffusersSharp.Hub;

/// <summary>
/// Endpoint, token, offline flag and cache folder, resolved the way huggingface_hub does
/// (<c>constants.py</c>, <c>_token.py</c>): explicit arguments first, then the environment
/// (<c>HF_ENDPOINT</c>, <c>HF_TOKEN</c> / <c>HUGGING_FACE_HUB_TOKEN</c>, the token file <c>HF_TOKEN_PATH</c>, default
/// <c>$HF_HOME/token</c> (0.23+), none of those three with <c>HF_HUB_DISABLE_IMPLICIT_TOKEN</c>,
/// <c>HF_HUB_OFFLINE</c> / <c>TRANSFORMERS_OFFLINE</c>, <c>HF_HUB_CACHE</c> / <c>HUGGINGFACE_HUB_CACHE</c>,
/// <c>HF_HOME</c>, <c>XDG_CACHE_HOME</c>), then the defaults. A leading <c>~</c> of the cache folder (argument or
/// variable), <c>HF_HOME</c>, <c>XDG_CACHE_HOME</c> and <c>HF_TOKEN_PATH</c> is the home folder (<see cref="UserPath.ExpandUser"/>,
/// <c>HOME</c> from the same environment): huggingface_hub 0.20.3 expands <c>HF_HOME</c> (with the <c>XDG_CACHE_HOME</c>
/// default) and <c>scan_cache_dir</c>'s folder, later versions the cache variables and arguments too. The timeouts (<c>HF_HUB_DOWNLOAD_TIMEOUT</c>,
/// <c>HF_HUB_ETAG_TIMEOUT</c>) are <see cref="HubClientOptions"/>' defaults.
/// </summary>
public sealed record HubSettings
{
    /// <summary>huggingface_hub's default endpoint, used when <c>HF_ENDPOINT</c> is not set.</summary>
    public const string DefaultEndpoint = "https://huggingface.co";

    /// <summary>The Hub root URL, without a trailing slash.</summary>
    public required Uri Endpoint { get; init; }

    /// <summary>
    /// Sent as <c>Authorization: Bearer</c>; null for anonymous access (also when <c>HF_HUB_DISABLE_IMPLICIT_TOKEN</c>
    /// is set and no token is passed: the environment's and the token file's are then not sent implicitly).
    /// </summary>
    public string? Token { get; init; }

    /// <summary>No network at all: everything comes from the cache.</summary>
    public bool Offline { get; init; }

    /// <summary>The hub cache folder holding <c>models--org--name</c> folders.</summary>
    public required string CacheDir { get; init; }

    /// <summary>Resolves the settings. <paramref name="environment"/> replaces the process environment when given (tests).</summary>
    public static HubSettings FromEnvironment(
        string? endpoint = null, string? token = null, bool? offline = null, string? cacheDir = null,
        IReadOnlyDictionary<string, string?>? environment = null)
    {
        string? Env(string key) =>
            environment is not null ? (environment.TryGetValue(key, out var v) ? v : null) : Environment.GetEnvironmentVariable(key);
        string? NonEmpty(string? s) => string.IsNullOrEmpty(s) ? null : s;

        // os.path.expanduser with the home of the environment read (HOME; Windows USERPROFILE)
        string home = UserPath.Home(Env);
        string Expand(string p) => UserPath.ExpandUser(p, home);
        string hfHome = HfHome(Env, home);

        bool implicitToken = !IsTrue(Env("HF_HUB_DISABLE_IMPLICIT_TOKEN"));
        string? tok = NonEmpty(token?.Trim())
                      ?? (implicitToken ? NonEmpty(Env("HF_TOKEN")?.Trim()) : null)
                      ?? (implicitToken ? NonEmpty(Env("HUGGING_FACE_HUB_TOKEN")?.Trim()) : null)
                      ?? (implicitToken ? ReadTokenFile(Expand(NonEmpty(Env("HF_TOKEN_PATH")) ?? Path.Combine(hfHome, "token"))) : null);

        bool off = offline ?? IsTrue(NonEmpty(Env("HF_HUB_OFFLINE")) ?? Env("TRANSFORMERS_OFFLINE"));

        string ep = endpoint ?? NonEmpty(Env("HF_ENDPOINT")) ?? DefaultEndpoint;
        return new HubSettings { Endpoint = ParseEndpoint(ep, endpoint is null), Token = tok, Offline = off, CacheDir = Path.GetFullPath(Expand(cacheDir ?? CacheDirOf(Env, hfHome))) };
    }

    /// <summary>
    /// The Hub cache folder <paramref name="getEnv"/> selects, as a full path: <c>HF_HUB_CACHE</c>, else
    /// <c>HUGGINGFACE_HUB_CACHE</c>, else <c>HF_HOME/hub</c>, else <c>XDG_CACHE_HOME/huggingface/hub</c>, else
    /// <c>~/.cache/huggingface/hub</c> (empty values are unset; a leading <c>~</c> is the home folder). The one copy of
    /// huggingface_hub's rule: <see cref="FromEnvironment"/> and the loaders' default cache read it.
    /// </summary>
    public static string DefaultCacheDir(Func<string, string?>? getEnv = null)
    {
        getEnv ??= Environment.GetEnvironmentVariable;
        string home = UserPath.Home(getEnv);
        return Path.GetFullPath(UserPath.ExpandUser(CacheDirOf(getEnv, HfHome(getEnv, home)), home));
    }

    private static string? NonEmptyEnv(Func<string, string?> env, string key) => env(key) is { Length: > 0 } v ? v : null;

    // constants.py: expanduser(HF_HOME, else join(XDG_CACHE_HOME, else join(expanduser("~"), ".cache"), "huggingface"))
    private static string HfHome(Func<string, string?> env, string home)
    {
        // "~/.cache" expanded rather than home + ".cache": an empty HOME gives /.cache, as Python's expanduser("~") is "/"
        string cache = NonEmptyEnv(env, "XDG_CACHE_HOME") is { } xdg ? UserPath.ExpandUser(xdg, home)
                       : UserPath.ExpandUser("~" + Path.DirectorySeparatorChar + ".cache", home);
        return UserPath.ExpandUser(NonEmptyEnv(env, "HF_HOME") ?? Path.Combine(cache, "huggingface"), home);
    }

    private static string CacheDirOf(Func<string, string?> env, string hfHome) =>
        NonEmptyEnv(env, "HF_HUB_CACHE") ?? NonEmptyEnv(env, "HUGGINGFACE_HUB_CACHE") ?? Path.Combine(hfHome, "hub");

    /// <summary>huggingface_hub's <c>_is_true</c>: "1", "ON", "YES", "TRUE" in any case.</summary>
    public static bool IsTrue(string? value) => value is not null && value.ToUpperInvariant() is "1" or "ON" or "YES" or "TRUE";

    /// <summary>Checks that <paramref name="value"/> is an absolute http(s) URL; the result has no trailing slash.</summary>
    public static Uri ParseEndpoint(string value, bool fromEnvironment = false)
    {
        string name = fromEnvironment ? "HF_ENDPOINT" : "endpoint";
        if (!Uri.TryCreate(value.Trim().TrimEnd('/'), UriKind.Absolute, out var uri)
            || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps) || string.IsNullOrEmpty(uri.Host))
            throw new HubException(HubErrorKind.InvalidInput,
                $"{name} is not a valid http(s) URL: '{value}'. Expected something like '{DefaultEndpoint}'.")
            { Key = name };
        return uri;
    }

    private static string? ReadTokenFile(string path)
    {
        try
        {
            string t = File.ReadAllText(path).Trim();
            return t.Length == 0 ? null : t;
        }
        catch (FileNotFoundException) { return null; }
        catch (DirectoryNotFoundException) { return null; }
    }
}
