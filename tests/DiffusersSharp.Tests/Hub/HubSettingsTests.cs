using DiffusersSharp.Hub;
using DiffusersSharp.Tests.Support;

namespace DiffusersSharp.Tests.Hub;

public sealed class HubSettingsTests
{
    [Fact]
    public void EnvironmentRulesOfHuggingfaceHub()
    {
        using var tmp = new TempDir();
        string home = tmp.File("hf");
        Directory.CreateDirectory(home);
        File.WriteAllText(Path.Combine(home, "token"), "  hf_from_file \n");

        var s = HubSettings.FromEnvironment(environment: new Dictionary<string, string?> { ["HF_HOME"] = home });
        Assert.Equal("https://huggingface.co/", s.Endpoint.AbsoluteUri);
        Assert.Equal(Path.Combine(home, "hub"), s.CacheDir);
        Assert.Equal("hf_from_file", s.Token);
        Assert.False(s.Offline);

        s = HubSettings.FromEnvironment(environment: new Dictionary<string, string?>
        {
            ["HF_HOME"] = home, ["HF_HUB_CACHE"] = tmp.File("c1"), ["HUGGINGFACE_HUB_CACHE"] = tmp.File("c2"),
            ["HF_TOKEN"] = "hf_env", ["HF_HUB_OFFLINE"] = "yes", ["HF_ENDPOINT"] = "http://mirror.example:8080/",
        });
        Assert.Equal(tmp.File("c1"), s.CacheDir);
        Assert.Equal("hf_env", s.Token);
        Assert.True(s.Offline);
        Assert.Equal("http://mirror.example:8080/", s.Endpoint.AbsoluteUri);

        s = HubSettings.FromEnvironment(environment: new Dictionary<string, string?>
        {
            ["XDG_CACHE_HOME"] = tmp.File("xdg"), ["HUGGINGFACE_HUB_CACHE"] = tmp.File("c2"), ["HUGGING_FACE_HUB_TOKEN"] = "hf_legacy",
            ["HF_HUB_OFFLINE"] = "0", ["TRANSFORMERS_OFFLINE"] = "1",
        });
        Assert.Equal(tmp.File("c2"), s.CacheDir);
        Assert.Equal("hf_legacy", s.Token);
        Assert.False(s.Offline); // HF_HUB_OFFLINE set: TRANSFORMERS_OFFLINE is not consulted

        s = HubSettings.FromEnvironment(environment: new Dictionary<string, string?> { ["XDG_CACHE_HOME"] = tmp.File("xdg"), ["TRANSFORMERS_OFFLINE"] = "TRUE" });
        Assert.Equal(Path.Combine(tmp.File("xdg"), "huggingface", "hub"), s.CacheDir);
        Assert.Null(s.Token);
        Assert.True(s.Offline);

        // explicit arguments win over the environment
        s = HubSettings.FromEnvironment(endpoint: "http://127.0.0.1:1", token: "hf_arg", offline: false, cacheDir: tmp.File("arg"),
            environment: new Dictionary<string, string?> { ["HF_HOME"] = home, ["HF_TOKEN"] = "hf_env", ["HF_HUB_OFFLINE"] = "1", ["HF_ENDPOINT"] = "bad url" });
        Assert.Equal(("http://127.0.0.1:1/", "hf_arg", false, tmp.File("arg")), (s.Endpoint.AbsoluteUri, s.Token, s.Offline, s.CacheDir));
        var e = Assert.Throws<HubException>(() => HubSettings.FromEnvironment(endpoint: "nope", environment: new Dictionary<string, string?>()));
        Assert.Equal("endpoint is not a valid http(s) URL: 'nope'. Expected something like 'https://huggingface.co'.", e.Message);
    }

    [Fact]
    public void TokenPathAndDisableImplicitTokenOfHuggingfaceHub()
    {
        using var tmp = new TempDir();
        string home = tmp.File("hf");
        Directory.CreateDirectory(home);
        File.WriteAllText(Path.Combine(home, "token"), "hf_home_file");
        File.WriteAllText(tmp.File("elsewhere"), "hf_token_path\n");

        // HF_TOKEN_PATH replaces $HF_HOME/token (huggingface_hub 0.23+)
        var s = HubSettings.FromEnvironment(environment: new Dictionary<string, string?> { ["HF_HOME"] = home, ["HF_TOKEN_PATH"] = tmp.File("elsewhere") });
        Assert.Equal("hf_token_path", s.Token);
        s = HubSettings.FromEnvironment(environment: new Dictionary<string, string?> { ["HF_HOME"] = home, ["HF_TOKEN_PATH"] = tmp.File("missing") });
        Assert.Null(s.Token);

        // HF_HUB_DISABLE_IMPLICIT_TOKEN: neither the environment's token nor the file's is sent; a token passed is
        var noImplicit = new Dictionary<string, string?> { ["HF_HOME"] = home, ["HF_TOKEN"] = "hf_env", ["HF_HUB_DISABLE_IMPLICIT_TOKEN"] = "1" };
        Assert.Null(HubSettings.FromEnvironment(environment: noImplicit).Token);
        Assert.Null(HubSettings.FromEnvironment(environment: new Dictionary<string, string?>(noImplicit) { ["HF_TOKEN"] = null }).Token);
        Assert.Equal("hf_arg", HubSettings.FromEnvironment(token: "hf_arg", environment: noImplicit).Token);
        Assert.Equal("hf_env", HubSettings.FromEnvironment(environment: new Dictionary<string, string?>(noImplicit) { ["HF_HUB_DISABLE_IMPLICIT_TOKEN"] = "0" }).Token);
    }

    [Fact]
    public void ATildeIsTheHomeOfTheEnvironmentAsExpanduserMakesIt()
    {
        // os.path.expanduser: HOME (Windows USERPROFILE) of the environment read, not a folder named '~'
        using var tmp = new TempDir();
        string home = tmp.File("home");
        Directory.CreateDirectory(Path.Combine(home, "tokens"));
        File.WriteAllText(Path.Combine(home, "tokens", "t"), "hf_under_home\n");
        string homeVar = OperatingSystem.IsWindows() ? "USERPROFILE" : "HOME";
        Dictionary<string, string?> Env(params (string Key, string Value)[] vars)
        {
            var env = new Dictionary<string, string?> { [homeVar] = home };
            foreach (var (k, v) in vars) env[k] = v;
            return env;
        }

        Assert.Equal(Path.Combine(home, "c"), HubSettings.FromEnvironment(environment: Env(("HF_HUB_CACHE", "~/c"))).CacheDir);
        Assert.Equal(Path.Combine(home, "legacy"), HubSettings.FromEnvironment(environment: Env(("HUGGINGFACE_HUB_CACHE", "~/legacy"))).CacheDir);
        Assert.Equal(Path.Combine(home, "h", "hub"), HubSettings.FromEnvironment(environment: Env(("HF_HOME", "~/h"))).CacheDir);
        Assert.Equal(Path.Combine(home, "x", "huggingface", "hub"), HubSettings.FromEnvironment(environment: Env(("XDG_CACHE_HOME", "~/x"))).CacheDir);
        Assert.Equal(Path.Combine(home, ".cache", "huggingface", "hub"), HubSettings.FromEnvironment(environment: Env()).CacheDir);
        Assert.Equal(home, HubSettings.FromEnvironment(environment: Env(("HF_HUB_CACHE", "~"))).CacheDir);
        Assert.Equal(Path.Combine(home, "arg"), HubSettings.FromEnvironment(cacheDir: "~/arg", environment: Env(("HF_HUB_CACHE", "~/c"))).CacheDir);
        Assert.Equal("hf_under_home", HubSettings.FromEnvironment(environment: Env(("HF_TOKEN_PATH", "~/tokens/t"))).Token);
        // '~user' and a '~' inside the path are not the home folder (expanduser leaves an unknown user as it is)
        Assert.Equal(Path.GetFullPath("~nobody-here/c"), HubSettings.FromEnvironment(environment: Env(("HF_HUB_CACHE", "~nobody-here/c"))).CacheDir);
        Assert.Equal(Path.Combine(tmp.Path, "~", "c"), HubSettings.FromEnvironment(environment: Env(("HF_HUB_CACHE", Path.Combine(tmp.Path, "~", "c")))).CacheDir);
    }

    [Fact]
    public void AnEmptyCacheVariableIsAFolderRelativeToTheCurrentOneAsInHuggingfaceHub()
    {
        // os.getenv(name, default) returns "" for a variable set but empty: os.path.join("", "hub") is the relative 'hub',
        // and an empty cache folder the current one (join("", "models--org--name")). They were taken as unset.
        using var tmp = new TempDir();
        string cwd = Directory.GetCurrentDirectory();
        Dictionary<string, string?> Env(params (string Key, string? Value)[] vars)
        {
            var env = new Dictionary<string, string?> { ["HF_TOKEN"] = "hf_env" }; // no token file read from the current folder
            foreach (var (k, v) in vars) env[k] = v;
            return env;
        }
        string Cache(Dictionary<string, string?> env)
        {
            string dir = HubSettings.FromEnvironment(environment: env).CacheDir;
            Assert.Equal(dir, HubSettings.DefaultCacheDir(env.GetValueOrDefault));
            return dir;
        }

        Assert.Equal(cwd, Cache(Env(("HF_HUB_CACHE", ""), ("HUGGINGFACE_HUB_CACHE", tmp.File("legacy")), ("HF_HOME", tmp.File("h")))));
        Assert.Equal(cwd, Cache(Env(("HUGGINGFACE_HUB_CACHE", ""), ("HF_HOME", tmp.File("h")))));
        Assert.Equal(Path.Combine(cwd, "hub"), Cache(Env(("HF_HOME", ""), ("XDG_CACHE_HOME", tmp.File("x")))));
        Assert.Equal(Path.Combine(cwd, "huggingface", "hub"), Cache(Env(("XDG_CACHE_HOME", ""))));
        Assert.Equal(Path.Combine(tmp.File("h"), "hub"), Cache(Env(("XDG_CACHE_HOME", ""), ("HF_HOME", tmp.File("h")))));
        // an empty cacheDir argument too (hf_hub_download(cache_dir="") joins it the same way)
        Assert.Equal(cwd, HubSettings.FromEnvironment(cacheDir: "", environment: Env()).CacheDir);
    }

    [Fact]
    public void AnEmptyTokenEndpointOrOfflineVariableIsReadAsHuggingfaceHubReadsIt()
    {
        using var tmp = new TempDir();
        string home = tmp.File("hf");
        Directory.CreateDirectory(home);
        File.WriteAllText(Path.Combine(home, "token"), "hf_from\r\n_file\n");
        Dictionary<string, string?> Env(params (string Key, string? Value)[] vars)
        {
            var env = new Dictionary<string, string?> { ["HF_HOME"] = home };
            foreach (var (k, v) in vars) env[k] = v;
            return env;
        }
        HubSettings Of(params (string Key, string? Value)[] vars) => HubSettings.FromEnvironment(environment: Env(vars));

        // `os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")`, then _clean_token (line breaks removed,
        // blanks trimmed, "" is None), then the token file: an empty HF_TOKEN defers to the legacy name, one of blanks does not
        Assert.Equal("hf_legacy", Of(("HF_TOKEN", ""), ("HUGGING_FACE_HUB_TOKEN", "hf_legacy")).Token);
        Assert.Equal("hf_from_file", Of(("HF_TOKEN", "  "), ("HUGGING_FACE_HUB_TOKEN", "hf_legacy")).Token);
        Assert.Equal("hf_from_file", Of(("HF_TOKEN", ""), ("HUGGING_FACE_HUB_TOKEN", "")).Token);
        Assert.Equal("hf_ab", Of(("HF_TOKEN", " hf_a\r\nb\n")).Token);
        // `os.getenv("HF_ENDPOINT") or default`; `os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")`
        Assert.Equal("https://huggingface.co/", Of(("HF_ENDPOINT", "")).Endpoint.AbsoluteUri);
        Assert.True(Of(("HF_HUB_OFFLINE", ""), ("TRANSFORMERS_OFFLINE", "1")).Offline);
        Assert.False(Of(("HF_HUB_OFFLINE", "")).Offline);
        Assert.False(Of(("HF_HUB_OFFLINE", ""), ("TRANSFORMERS_OFFLINE", "")).Offline);

        // HF_TOKEN_PATH (0.23+: os.environ.get("HF_TOKEN_PATH", default)) set but empty: Path("") is the current folder,
        // whose read_text fails; it was taken as unset ($HF_HOME/token)
        var e = Assert.Throws<HubException>(() => Of(("HF_TOKEN_PATH", "")));
        Assert.Equal(HubErrorKind.InvalidInput, e.Kind);
        Assert.Equal("HF_TOKEN_PATH", e.Key);
        Assert.Equal("Cannot read the Hub token file: HF_TOKEN_PATH is set but empty, which names the current folder, not a file. "
                     + "Set HF_TOKEN_PATH to the token file, or unset it (default $HF_HOME/token).", e.Message);
        Assert.Equal("hf_env", Of(("HF_TOKEN_PATH", ""), ("HF_TOKEN", "hf_env")).Token); // not read when the environment has one
        e = Assert.Throws<HubException>(() => Of(("HF_TOKEN_PATH", tmp.Path)));
        Assert.Equal($"Cannot read the Hub token file: {tmp.Path} is a folder, not a file. "
                     + "Set HF_TOKEN_PATH to the token file, or unset it (default $HF_HOME/token).", e.Message);
    }

    [Fact]
    public void ATokenFileThatCannotBeReadIsAnErrorNamingItNotACrash()
    {
        // a link loop (ELOOP: an IOException, as a file without read permission is an UnauthorizedAccessException) at
        // HF_TOKEN_PATH or at the default $HF_HOME/token; it escaped FromEnvironment as a bare IOException
        using var tmp = new TempDir();
        string loop = tmp.File("loop");
        File.CreateSymbolicLink(loop, loop);
        var e = Assert.Throws<HubException>(() => HubSettings.FromEnvironment(environment: new Dictionary<string, string?> { ["HF_TOKEN_PATH"] = loop }));
        Assert.Equal((HubErrorKind.InvalidInput, "HF_TOKEN_PATH", loop), (e.Kind, e.Key, e.FilePath));
        Assert.StartsWith($"Cannot read the Hub token file {loop}: ", e.Message);
        Assert.EndsWith(" Set HF_TOKEN_PATH to a readable token file, or unset it (default $HF_HOME/token).", e.Message);
        Assert.IsAssignableFrom<IOException>(e.InnerException);

        string home = tmp.File("hf");
        Directory.CreateDirectory(home);
        File.CreateSymbolicLink(Path.Combine(home, "token"), Path.Combine(home, "token"));
        e = Assert.Throws<HubException>(() => HubSettings.FromEnvironment(environment: new Dictionary<string, string?> { ["HF_HOME"] = home }));
        Assert.Equal(("HF_TOKEN_PATH", Path.Combine(home, "token")), (e.Key, e.FilePath));
        Assert.EndsWith(" Make it readable, or set HF_TOKEN_PATH to the token file.", e.Message);
        // not read when the environment gives a token
        Assert.Equal("hf_env", HubSettings.FromEnvironment(environment: new Dictionary<string, string?> { ["HF_HOME"] = home, ["HF_TOKEN"] = "hf_env" }).Token);
    }

    [Fact]
    public void TimeoutsComeFromTheEnvironment()
    {
        var o = HubClientOptions.FromEnvironment(new Dictionary<string, string?> { ["HF_HUB_DOWNLOAD_TIMEOUT"] = "30", ["HF_HUB_ETAG_TIMEOUT"] = " 3 " });
        Assert.Equal((TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(3)), (o.RequestTimeout, o.EtagTimeout));
        o = HubClientOptions.FromEnvironment(new Dictionary<string, string?> { ["HF_HUB_DOWNLOAD_TIMEOUT"] = "0" }); // `or DEFAULT`
        Assert.Equal((TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(10)), (o.RequestTimeout, o.EtagTimeout));
        var e = Assert.Throws<HubException>(() => HubClientOptions.FromEnvironment(new Dictionary<string, string?> { ["HF_HUB_ETAG_TIMEOUT"] = "2.5s" }));
        Assert.Equal(HubErrorKind.InvalidInput, e.Kind);
        Assert.Equal("HF_HUB_ETAG_TIMEOUT", e.Key);
        Assert.Equal("HF_HUB_ETAG_TIMEOUT must be a whole number of seconds, got '2.5s'.", e.Message);
        // set but empty: int("") fails as huggingface_hub is imported; it was the default
        e = Assert.Throws<HubException>(() => HubClientOptions.FromEnvironment(new Dictionary<string, string?> { ["HF_HUB_DOWNLOAD_TIMEOUT"] = "" }));
        Assert.Equal(("HF_HUB_DOWNLOAD_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT must be a whole number of seconds, got ''."), (e.Key, e.Message));
    }

    [Theory]
    [InlineData("*.bin", "unet/diffusion_pytorch_model.bin", true)]      // * crosses '/' as in fnmatch
    [InlineData("unet/*", "unet/sub/config.json", true)]
    [InlineData("*.bin", "x.bin.index.json", false)]
    [InlineData("*.bin.index.*json", "text_encoder/pytorch_model.bin.index.json", true)]
    [InlineData("config.json", "unet/config.json", false)]
    [InlineData("model_?ndex.json", "model_index.json", true)]
    [InlineData("[!a]*.json", "b.json", true)]
    [InlineData("[!a]*.json", "a.json", false)]
    [InlineData("*.SAFETENSORS", "x.safetensors", false)]                // POSIX fnmatch is case-sensitive
    public void FnMatchFollowsPythonsFnmatch(string pattern, string name, bool expected) => Assert.Equal(expected, FnMatch.IsMatch(name, pattern));
}
