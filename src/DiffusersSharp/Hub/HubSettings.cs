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
/// A variable set but empty is what huggingface_hub 0.20.3 makes of it: <c>HF_ENDPOINT</c> the default endpoint and
/// <c>HF_HUB_OFFLINE</c> deferring to <c>TRANSFORMERS_OFFLINE</c> (they are read with <c>or</c>), <c>HF_TOKEN</c> deferring to
/// <c>HUGGING_FACE_HUB_TOKEN</c> and an empty token none; but an empty <c>HF_HUB_CACHE</c> / <c>HUGGINGFACE_HUB_CACHE</c>,
/// <c>HF_HOME</c> or <c>XDG_CACHE_HOME</c> is a value (<c>os.getenv(name, default)</c>), a path relative to the current
/// folder (<see cref="DefaultCacheDir"/>), and an empty <c>HF_TOKEN_PATH</c> names the current folder, which is no token
/// file (an error, as in huggingface_hub 0.23+).
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
                      ?? (implicitToken ? TokenFromEnvironment(Env) : null)
                      ?? (implicitToken ? ReadTokenFile(Expand(Env("HF_TOKEN_PATH") ?? Path.Combine(hfHome, "token")), Env("HF_TOKEN_PATH") is not null) : null);

        // `os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")`: an empty HF_HUB_OFFLINE defers
        bool off = offline ?? IsTrue(NonEmpty(Env("HF_HUB_OFFLINE")) ?? Env("TRANSFORMERS_OFFLINE"));

        // `os.getenv("HF_ENDPOINT") or default`: an empty HF_ENDPOINT is the default
        string ep = endpoint ?? NonEmpty(Env("HF_ENDPOINT")) ?? DefaultEndpoint;
        return new HubSettings { Endpoint = ParseEndpoint(ep, endpoint is null), Token = tok, Offline = off, CacheDir = UserPath.FullPath(Expand(cacheDir ?? CacheDirOf(Env, hfHome))) };
    }

    /// <summary>
    /// The Hub cache folder <paramref name="getEnv"/> selects, as a full path: <c>HF_HUB_CACHE</c>, else
    /// <c>HUGGINGFACE_HUB_CACHE</c>, else <c>HF_HOME/hub</c>, else <c>XDG_CACHE_HOME/huggingface/hub</c>, else
    /// <c>~/.cache/huggingface/hub</c> (a leading <c>~</c> is the home folder). A variable set but empty is not unset, as
    /// huggingface_hub 0.20.3's <c>os.getenv(name, default)</c> returns "" for it: an empty cache variable is the current
    /// folder, an empty <c>HF_HOME</c> makes the cache <c>hub</c>, an empty <c>XDG_CACHE_HOME</c> <c>huggingface/hub</c>,
    /// both in the current folder. The one copy of huggingface_hub's rule: <see cref="FromEnvironment"/> and the loaders'
    /// default cache read it.
    /// </summary>
    public static string DefaultCacheDir(Func<string, string?>? getEnv = null)
    {
        getEnv ??= Environment.GetEnvironmentVariable;
        string home = UserPath.Home(getEnv);
        return UserPath.FullPath(UserPath.ExpandUser(CacheDirOf(getEnv, HfHome(getEnv, home)), home));
    }

    // constants.py: expanduser(os.getenv("HF_HOME", join(os.getenv("XDG_CACHE_HOME", join(expanduser("~"), ".cache")), "huggingface")))
    private static string HfHome(Func<string, string?> env, string home)
    {
        // "~/.cache" expanded rather than home + ".cache": an empty HOME gives /.cache, as Python's expanduser("~") is "/"
        string cache = env("XDG_CACHE_HOME") is { } xdg ? UserPath.ExpandUser(xdg, home)
                       : UserPath.ExpandUser("~" + Path.DirectorySeparatorChar + ".cache", home);
        return UserPath.ExpandUser(env("HF_HOME") ?? Path.Combine(cache, "huggingface"), home);
    }

    // os.getenv("HF_HUB_CACHE", os.getenv("HUGGINGFACE_HUB_CACHE", join(HF_HOME, "hub"))): "" is a value, not unset
    private static string CacheDirOf(Func<string, string?> env, string hfHome) =>
        env("HF_HUB_CACHE") ?? env("HUGGINGFACE_HUB_CACHE") ?? Path.Combine(hfHome, "hub");

    // _token.py: `os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")`, then _clean_token: an empty
    // HF_TOKEN defers to HUGGING_FACE_HUB_TOKEN; one of only blanks does not, and with it no token comes from the environment
    private static string? TokenFromEnvironment(Func<string, string?> env) =>
        CleanToken(env("HF_TOKEN") is { Length: > 0 } t ? t : env("HUGGING_FACE_HUB_TOKEN"));

    /// <summary>huggingface_hub's <c>_clean_token</c>: line breaks removed, blanks trimmed; empty is no token.</summary>
    private static string? CleanToken(string? token) =>
        token?.Replace("\r", "", StringComparison.Ordinal).Replace("\n", "", StringComparison.Ordinal).Trim() is { Length: > 0 } t ? t : null;

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

    /// <summary>
    /// The token in the file at <paramref name="path"/> (<see cref="CleanToken"/>), null when there is none. A folder there
    /// (an empty <c>HF_TOKEN_PATH</c> is the current folder, as Python's <c>Path("")</c> is <c>.</c>) is an error naming the
    /// variable, where huggingface_hub's <c>read_text</c> fails (IsADirectoryError), and so is a file that cannot be read
    /// (no permission, a link loop, …: huggingface_hub's PermissionError / OSError), never an unexpected crash.
    /// </summary>
    private static string? ReadTokenFile(string path, bool fromVariable)
    {
        string full = UserPath.FullPath(path);
        string fix = fromVariable ? "Set HF_TOKEN_PATH to the token file, or unset it (default $HF_HOME/token)." : "Remove that folder or set HF_TOKEN_PATH to the token file.";
        if (Directory.Exists(full))
        {
            string why = path.Length == 0 ? "HF_TOKEN_PATH is set but empty, which names the current folder" : $"{full} is a folder";
            throw new HubException(HubErrorKind.InvalidInput, $"Cannot read the Hub token file: {why}, not a file. {fix}")
            { Key = "HF_TOKEN_PATH", FilePath = full };
        }
        try
        {
            return CleanToken(File.ReadAllText(full));
        }
        catch (FileNotFoundException) { return null; }
        catch (DirectoryNotFoundException) { return null; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            string hint = fromVariable ? "Set HF_TOKEN_PATH to a readable token file, or unset it (default $HF_HOME/token)."
                : "Make it readable, or set HF_TOKEN_PATH to the token file.";
            throw new HubException(HubErrorKind.InvalidInput, $"Cannot read the Hub token file {full}: {e.Message} {hint}", e)
            { Key = "HF_TOKEN_PATH", FilePath = full };
        }
    }
}
