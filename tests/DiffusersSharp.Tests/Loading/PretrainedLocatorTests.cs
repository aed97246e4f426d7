using DiffusersSharp.Hub;
using DiffusersSharp.Loading;
using DiffusersSharp.Tests.Support;

namespace DiffusersSharp.Tests.Loading;

/// <summary>Local folders and Hub ids resolved from a hand-built Hugging Face cache.</summary>
public class PretrainedLocatorTests
{
    private const string Sha = "0123456789abcdef0123456789abcdef01234567";
    private const string Sha2 = "fedcba9876543210fedcba9876543210fedcba98";

    /// <summary>A cache holding google/ddpm-cat-256 at main = Sha (with a unet/ subfolder) and a snapshot Sha2 tagged v1.</summary>
    private static TempDir Cache()
    {
        var dir = new TempDir();
        string repo = Path.Combine(dir.Path, "models--google--ddpm-cat-256");
        Directory.CreateDirectory(Path.Combine(repo, "refs"));
        File.WriteAllText(Path.Combine(repo, "refs", "main"), Sha);
        File.WriteAllText(Path.Combine(repo, "refs", "v1"), Sha2 + "\n");
        Directory.CreateDirectory(Path.Combine(repo, "snapshots", Sha, "unet"));
        Directory.CreateDirectory(Path.Combine(repo, "snapshots", Sha2));
        // complete snapshots (a partial one would be completed from the Hub)
        File.WriteAllText(Path.Combine(repo, "snapshots", Sha, "config.json"), "{}");
        File.WriteAllText(Path.Combine(repo, "snapshots", Sha2, "config.json"), "{}");
        return dir;
    }

    private static string Snap(TempDir cache, string sha) => Path.Combine(cache.Path, "models--google--ddpm-cat-256", "snapshots", sha);

    [Fact]
    public void ExistingFolderIsReturnedAsIs()
    {
        string folder = Golden.Path("tiny-ddpm");
        Assert.Equal(Path.GetFullPath(folder), PretrainedLocator.Resolve(folder));
        Assert.Equal(Path.Combine(Path.GetFullPath(folder), "unet"), PretrainedLocator.Resolve(folder, "unet"));
    }

    [Fact]
    public void MissingSubfolderOfALocalFolderIsAnError()
    {
        string folder = Golden.Path("tiny-ddpm");
        var e = Assert.Throws<DiffusersException>(() => PretrainedLocator.Resolve(folder, "vae"));
        Assert.Equal($"'{folder}' has no subfolder 'vae' ({Path.Combine(Path.GetFullPath(folder), "vae")} does not exist)", e.Message);
        e = Assert.Throws<DiffusersException>(() => PretrainedLocator.Resolve(folder, "../tiny-ddpm"));
        Assert.Equal($"Invalid subfolder '../tiny-ddpm' for '{folder}': expected a relative folder name like 'unet'", e.Message);
    }

    [Fact]
    public void HubIdResolvesThroughRefsToTheSnapshot()
    {
        using var cache = Cache();
        Assert.Equal(Snap(cache, Sha), PretrainedLocator.Resolve("google/ddpm-cat-256", options: new() { CacheDir = cache.Path }));
        Assert.Equal(Path.Combine(Snap(cache, Sha), "unet"), PretrainedLocator.Resolve("google/ddpm-cat-256", "unet", options: new() { CacheDir = cache.Path }));
        Assert.Equal(Snap(cache, Sha2), PretrainedLocator.Resolve("google/ddpm-cat-256", options: new() { Revision = "v1", CacheDir = cache.Path }));
        Assert.Equal(Snap(cache, Sha2), PretrainedLocator.Resolve("google/ddpm-cat-256", options: new() { Revision = Sha2, CacheDir = cache.Path }));
    }

    [Fact]
    public void IdNotInTheCacheSaysHowToGetIt()
    {
        using var cache = Cache();
        var e = Assert.Throws<DiffusersException>(() => PretrainedLocator.Resolve("google/ddpm-church-256", options: new() { CacheDir = cache.Path, LocalFilesOnly = true }));
        Assert.Equal(
            $"'google/ddpm-church-256' is not a local folder and is not in the Hugging Face cache ({Path.Combine(cache.Path, "models--google--ddpm-church-256")} does not exist). " +
            $"Download it first with `diffusers download google/ddpm-church-256 --cache-dir {cache.Path}` "
            + $"(or `huggingface-cli download google/ddpm-church-256 --cache-dir {cache.Path}`), or pass a local folder.",
            e.Message);
    }

    [Fact]
    public void ATildeCacheDirIsUnderTheHomeFolder()
    {
        // huggingface_hub expands cache_dir (os.path.expanduser); a folder literally named '~' is never made or read
        string name = $"ds-no-such-cache-{Guid.NewGuid():N}";
        var e = Assert.Throws<DiffusersException>(() => PretrainedLocator.Resolve("google/ddpm-church-256", options: new() { CacheDir = $"~/{name}", LocalFilesOnly = true }));
        string repo = Path.Combine(UserPath.Home(), name, "models--google--ddpm-church-256");
        Assert.Equal(repo, e.FilePath);
        Assert.Contains($"({repo} does not exist)", e.Message);
    }

    [Fact]
    public void UnknownRevisionAndMissingSnapshotAreErrors()
    {
        using var cache = Cache();
        var e = Assert.Throws<DiffusersException>(() => PretrainedLocator.Resolve("google/ddpm-cat-256", options: new() { Revision = "fp16", CacheDir = cache.Path, LocalFilesOnly = true }));
        Assert.StartsWith($"'google/ddpm-cat-256' is in the Hugging Face cache ({Path.Combine(cache.Path, "models--google--ddpm-cat-256")}) but revision 'fp16' is not", e.Message);
        Directory.Delete(Snap(cache, Sha2), recursive: true);
        var e2 = Assert.Throws<DiffusersException>(() => PretrainedLocator.Resolve("google/ddpm-cat-256", options: new() { Revision = "v1", CacheDir = cache.Path, LocalFilesOnly = true }));
        Assert.StartsWith($"'google/ddpm-cat-256' revision 'v1' points to commit {Sha2}, but the Hugging Face cache has no snapshot {Snap(cache, Sha2)}.", e2.Message);
        Assert.Contains("diffusers download google/ddpm-cat-256", e2.Message);
    }

    [Fact]
    public void CorruptRefIsAnErrorOffline()
    {
        // online the download rewrites it (LocatorDownloadTests.AnOnlineLoadRepairsACorruptRef)
        using var cache = Cache();
        string refFile = Path.Combine(cache.Path, "models--google--ddpm-cat-256", "refs", "main");
        File.WriteAllText(refFile, "../../etc");
        var offline = new LoadOptions
        {
            CacheDir = cache.Path,
            Hub = HubSettings.FromEnvironment(offline: true, cacheDir: cache.Path, environment: new Dictionary<string, string?>()),
        };
        var e = Assert.Throws<DiffusersException>(() => PretrainedLocator.Resolve("google/ddpm-cat-256", options: offline));
        Assert.Equal($"{refFile}: expected a 40-hex commit sha, found '../../etc' Offline mode is enabled (HF_HUB_OFFLINE=1), so nothing is downloaded.", e.Message);
        Assert.Equal(refFile, e.FilePath);
        e = Assert.Throws<DiffusersException>(() => PretrainedFileLocator.Resolve("google/ddpm-cat-256", ConfigRule, options: offline));
        Assert.Equal($"{refFile}: expected a 40-hex commit sha, found '../../etc' Offline mode is enabled (HF_HUB_OFFLINE=1), so nothing is downloaded.", e.Message);
        Assert.Equal(refFile, e.FilePath);
    }

    [Fact]
    public async Task ACommitShaRevisionIsThatCommitAsHfHubDownloadTakesIt()
    {
        // hf_hub_download reads a 40-hex revision as the commit itself; huggingface_hub never writes refs/<sha>, and one left
        // there by hand is not read: by the loaders as by the Hub client (one reader, CacheLayout.ResolveCommit)
        using var cache = Cache();
        File.WriteAllText(Path.Combine(cache.Path, "models--google--ddpm-cat-256", "refs", Sha2), Sha);
        File.WriteAllText(Path.Combine(Snap(cache, Sha2), "diffusion_pytorch_model.safetensors"), ""); // a complete model folder
        var options = new LoadOptions { Revision = Sha2, CacheDir = cache.Path, LocalFilesOnly = true };
        Assert.Equal(Snap(cache, Sha2), PretrainedLocator.Resolve("google/ddpm-cat-256", options: options));
        Assert.Equal(Path.Combine(Snap(cache, Sha2), "config.json"),
                     PretrainedFileLocator.Resolve("google/ddpm-cat-256", ConfigRule, options: options));
        using var client = new HubClient(HubSettings.FromEnvironment(offline: true, cacheDir: cache.Path, environment: new Dictionary<string, string?>()));
        Assert.Equal(Path.Combine(Snap(cache, Sha2), "config.json"),
                     await client.DownloadFileAsync("google/ddpm-cat-256", "config.json", Sha2, localFilesOnly: true));
    }

    [Fact]
    public async Task ACorruptRefIsTheSameErrorForTheHubClientAndTheLoaders()
    {
        using var cache = Cache();
        string refFile = Path.Combine(cache.Path, "models--google--ddpm-cat-256", "refs", "main");
        File.WriteAllText(refFile, "not-a-commit\n");
        using var client = new HubClient(HubSettings.FromEnvironment(offline: true, cacheDir: cache.Path, environment: new Dictionary<string, string?>()));
        var options = new LoadOptions { CacheDir = cache.Path, LocalFilesOnly = true };
        Exception?[] errors =
        [
            Record.Exception(() => PretrainedLocator.Resolve("google/ddpm-cat-256", options: options)),
            Record.Exception(() => PretrainedFileLocator.Resolve("google/ddpm-cat-256", ConfigRule, options: options)),
            await Record.ExceptionAsync(() => client.DownloadFileAsync("google/ddpm-cat-256", "config.json", localFilesOnly: true)),
            await Record.ExceptionAsync(() => client.SnapshotDownloadAsync("google/ddpm-cat-256", localFilesOnly: true)),
        ];
        Assert.All(errors, e =>
        {
            var d = Assert.IsType<DiffusersException>(e);
            Assert.Equal($"{refFile}: expected a 40-hex commit sha, found 'not-a-commit'", d.Message);
            Assert.Equal(refFile, d.FilePath);
        });
    }

    /// <summary>A weight-file rule that takes config.json (the hand-built cache's one file).</summary>
    private static readonly WeightFileRule ConfigRule = new("config", "config.json", "config.json", (files, _) => files.Contains("config.json") ? "config.json" : null);

    [Fact]
    public void TheDownloadHintRepeatsTheRevisionAndTheCacheFolder()
    {
        // the hint's commands fetch what was asked into the cache that was read: --revision unless main, --cache-dir unless
        // it is the environment's (which both commands use without it), quoted where a shell would split it
        using var cache = Cache();
        string spaced = Path.Combine(cache.Path, "my cache");
        var e = Assert.Throws<DiffusersException>(() => PretrainedLocator.Resolve("google/ddpm-cat-256",
            options: new() { Revision = "v2", Variant = "fp16", CacheDir = spaced, LocalFilesOnly = true }));
        Assert.EndsWith($"Download it first with `diffusers download google/ddpm-cat-256 --variant fp16 --revision v2 --cache-dir '{spaced}'` "
                        + $"(or `huggingface-cli download google/ddpm-cat-256 --revision v2 --cache-dir '{spaced}'`), or pass a local folder.", e.Message);
        e = Assert.Throws<DiffusersException>(() => PretrainedFileLocator.Resolve("org/lora", ConfigRule,
            options: new() { Revision = "refs/pr/1", CacheDir = cache.Path, LocalFilesOnly = true }));
        Assert.EndsWith($"Download it first with `diffusers download org/lora --revision refs/pr/1 --cache-dir {cache.Path}` "
                        + $"(or `huggingface-cli download org/lora --revision refs/pr/1 --cache-dir {cache.Path}`), or pass a local file.", e.Message);
        string id = $"nobody/not-cached-{Guid.NewGuid():N}";
        e = Assert.Throws<DiffusersException>(() => PretrainedLocator.Resolve(id,
            options: new() { Revision = "v2", CacheDir = HubSettings.DefaultCacheDir() + Path.DirectorySeparatorChar, LocalFilesOnly = true }));
        Assert.EndsWith($"Download it first with `diffusers download {id} --revision v2` (or `huggingface-cli download {id} --revision v2`), or pass a local folder.",
                        e.Message);
    }

    [Theory]
    [InlineData("a/b/c")]
    [InlineData("org/../name")]
    [InlineData("org--x/name")]
    [InlineData("-org/name")]
    [InlineData("org/name.")]
    [InlineData("org/name.git")]
    [InlineData("org/na me")]
    public void MalformedIdsAreRejected(string id)
    {
        using var cache = Cache();
        Assert.False(PretrainedLocator.IsValidRepoId(id));
        var e = Assert.Throws<DiffusersException>(() => PretrainedLocator.Resolve(id, options: new() { CacheDir = cache.Path }));
        Assert.StartsWith($"'{id}' is neither an existing folder nor a valid Hugging Face Hub id", e.Message);
    }

    [Theory]
    [InlineData("")]
    [InlineData("  ")]
    public void EmptyIdIsRejected(string id)
    {
        var e = Assert.Throws<DiffusersException>(() => PretrainedLocator.Resolve(id));
        Assert.Equal("No model given: expected a local folder or a Hugging Face Hub id like 'google/ddpm-cat-256'", e.Message);
    }

    [Theory]
    [InlineData("google/ddpm-cat-256", true)]
    [InlineData("gpt2", true)]
    [InlineData("CompVis/stable-diffusion-v1-4", true)]
    [InlineData("runwayml/stable-diffusion-v1.5_x", true)]
    public void ValidIds(string id, bool valid) => Assert.Equal(valid, PretrainedLocator.IsValidRepoId(id));

    [Fact]
    public void ANamesLengthIsCountedInCodePointsAsPythonDoes()
    {
        // 96 letters beyond U+FFFF are 192 UTF-16 code units: valid to huggingface_hub, one more is not
        string letter = char.ConvertFromUtf32(0x20000);
        Assert.True(HubRepoId.IsValid("org/" + string.Concat(Enumerable.Repeat(letter, 96))));
        Assert.False(HubRepoId.IsValid("org/" + string.Concat(Enumerable.Repeat(letter, 97))));
    }

    // One id rule (huggingface_hub 0.20.3's validate_repo_id, whose \w is Unicode): the loaders' check is the Hub client's.
    [Theory]
    [InlineData("ユーザー/モデル", true)]
    [InlineData("café/modèle-1", true)]
    [InlineData("org/x_", true)]
    [InlineData("org/é.", false)]
    [InlineData("a/b/c", false)]
    [InlineData("org/name.git", false)]
    // Python's \w is str.isalnum() or '_' (letters and numbers of every kind), counted in code points; .NET's also takes
    // combining marks and connector punctuation, and neither other numbers nor letters beyond U+FFFF
    [InlineData("org/model\u00b2", true)]            // '²' (No)
    [InlineData("org/\u216b", true)]                  // 'Ⅻ' (Nl)
    [InlineData("org/\U00020000", true)]              // a CJK letter outside the BMP
    [InlineData("cafe\u0301/x", false)]               // 'e' + combining acute (Mn)
    [InlineData("org/a\u203fb", false)]               // '‿' (Pc)
    [InlineData("org/x\u200d", false)]                // zero-width joiner, a word character to .NET's \b
    [InlineData("org/name\n", false)]                // Python's $ takes a final newline (huggingface_hub accepts it); refused here
    public void LoadersAndHubClientShareOneIdRule(string id, bool valid)
    {
        Assert.Equal(valid, PretrainedLocator.IsValidRepoId(id));
        Assert.Equal(valid, HubRepoId.IsValid(id));
    }

    [Fact]
    public void RepoFolderNameIsHuggingFaceHubs()
    {
        Assert.Equal("models--google--ddpm-cat-256", PretrainedLocator.RepoFolderName("google/ddpm-cat-256"));
        Assert.Equal("models--gpt2", PretrainedLocator.RepoFolderName("gpt2"));
        // one implementation with the Hub's (HubRepoId.FolderName), which validates the id: 'org/na me' gave 'models--org--na me'
        // and 'a/b/c' 'models--a--b--c', a folder of no repository
        var e = Assert.Throws<HubException>(() => PretrainedLocator.RepoFolderName("org/na me"));
        Assert.Equal((HubErrorKind.InvalidInput, "repo_id"), (e.Kind, e.Key));
        Assert.Equal("Repo id must use alphanumeric chars or '-', '_', '.', '--' and '..' are forbidden, '-' and '.' cannot start or end the name, "
                     + "max length is 96: 'org/na me'.", e.Message);
        e = Assert.Throws<HubException>(() => PretrainedLocator.RepoFolderName("a/b/c"));
        Assert.Equal("Repo id must be in the form 'repo_name' or 'namespace/repo_name': 'a/b/c'. Use `repo_type` argument if needed.", e.Message);
        e = Assert.Throws<HubException>(() => PretrainedLocator.RepoFolderName("org/a--b"));
        Assert.Equal("Cannot have -- or .. in repo_id: 'org/a--b'.", e.Message);
    }

    [Fact]
    public void DefaultCacheDirFollowsTheEnvironment()
    {
        var env = new Dictionary<string, string>();
        string Dir() => HubSettings.DefaultCacheDir(n => env.GetValueOrDefault(n));
        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        Assert.Equal(Path.Combine(home, ".cache", "huggingface", "hub"), Dir());
        env["XDG_CACHE_HOME"] = "/x";
        Assert.Equal("/x/huggingface/hub", Dir());
        env["HF_HOME"] = "/hf";
        Assert.Equal("/hf/hub", Dir());
        env["HUGGINGFACE_HUB_CACHE"] = "/legacy";
        Assert.Equal("/legacy", Dir());
        env["HF_HUB_CACHE"] = "~/hubcache";
        Assert.Equal(Path.Combine(home, "hubcache"), Dir());
        env["HF_HUB_CACHE"] = "";
        Assert.Equal(Directory.GetCurrentDirectory(), Dir()); // set but empty: the current folder, as in huggingface_hub
    }
}
