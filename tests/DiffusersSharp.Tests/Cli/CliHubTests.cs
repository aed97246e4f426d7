using DiffusersSharp.Cli;
using DiffusersSharp.Hub;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Hub;
using DiffusersSharp.Tests.Pipelines.SingleFile;
using DiffusersSharp.Tests.Support;
using Image = DiffusersSharp.Imaging.Image;

namespace DiffusersSharp.Tests.Cli;

/// <summary>
/// <c>diffusers download</c>, <c>cache list|rm</c> and <c>generate --model &lt;hub id&gt;</c> end to end through the
/// loopback fake Hub (HF_ENDPOINT) and a temporary cache; never the real network.
/// </summary>
[Collection(EnvironmentCollection.Name)]
public sealed class CliHubTests : IDisposable
{
    private const string Id = HubTestEnv.TinyId;
    private static readonly string[] PipelineFiles =
        ["model_index.json", "scheduler/scheduler_config.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors"];

    private readonly HubTestEnv _hub = new();
    private readonly EnvironmentScope _env;

    public CliHubTests()
    {
        _env = new EnvironmentScope(new Dictionary<string, string?>
        {
            ["HF_ENDPOINT"] = _hub.Server.Endpoint,
            ["HF_HUB_CACHE"] = _hub.CacheDir,
            ["HF_HOME"] = _hub.Temp.File("hf-home"),
        });
    }

    public void Dispose()
    {
        _env.Dispose();
        _hub.Dispose();
    }

    private static (int Code, string Out, string Err) Run(params string[] args) => RunWith(plain: true, args);

    private static (int Code, string Out, string Err) RunWith(bool plain, params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = CliApp.Run(args, o, e, plainProgress: plain);
        return (code, o.ToString(), e.ToString());
    }

    [Fact]
    public void GenerateAfterAnInterruptedDownloadFinishesTheDownload()
    {
        using var tmp = new TempDir();
        Assert.Equal(0, Run("download", Id).Code);
        string snapshot = Path.Combine(_hub.RepoFolder(Id), "snapshots", _hub.TinyCommit);
        HubFailureModeTests.Interrupt(Path.Combine(snapshot, "unet", "diffusion_pytorch_model.safetensors"));
        var g = Run("generate", "--model", Id, "--steps", "2", "--seed", "0", "--output", tmp.File("resumed.png"));
        Assert.True(g.Code == 0, g.Err);
        Assert.Equal(PipelineFiles, SnapshotFiles(snapshot));
        Assert.Equal(HubTestEnv.Golden("unet/diffusion_pytorch_model.safetensors"),
            File.ReadAllBytes(Path.Combine(snapshot, "unet", "diffusion_pytorch_model.safetensors")));
    }

    private static string[] SnapshotFiles(string snapshot) =>
        Directory.GetFiles(snapshot, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(snapshot, f).Replace(Path.DirectorySeparatorChar, '/')).Order(StringComparer.Ordinal).ToArray();

    private static long GoldenSize(IEnumerable<string> files) => files.Sum(f => new FileInfo(Golden.Path("tiny-ddpm", f)).Length);

    private static void AssertUserError((int Code, string Out, string Err) r, string expectedStart)
    {
        Assert.Equal(1, r.Code);
        Assert.StartsWith(expectedStart, r.Err);
        Assert.DoesNotContain("   at ", r.Err); // no stack trace
    }

    [Fact]
    public void ADefaultPreviewVaeThatIsNotTinyIsNamedAsPreviewEverysNotAsAPreviewVaeOption()
    {
        // without --preview-vae the preview VAE is madebyollin/taesd, which --preview-every chose: an error about it names
        // --preview-every, as its load errors do; it said '--preview-vae madebyollin/taesd', an option the run did not give
        _hub.Server.Add(FakeRepo.FromFolder("madebyollin/taesd", Golden.Path("tiny-sd", "vae"), out _));
        using var tmp = new TempDir();
        var r = Run("generate", "-m", Golden.Path("tiny-sd"), "--prompt", "a cat", "--steps", "1", "--width", "32", "--height", "32",
            "--preview-every", "1", "-o", tmp.File("o.png"));
        Assert.Equal(CliApp.UserError, r.Code);
        Assert.Equal("error: --preview-every: the preview VAE madebyollin/taesd: holds an AutoencoderKL, not an AutoencoderTiny (previews need a tiny VAE)",
            r.Err.Trim());
        r = Run("generate", "-m", Golden.Path("tiny-sd"), "--prompt", "a cat", "--steps", "1", "--width", "32", "--height", "32",
            "--preview-every", "1", "--preview-vae", "madebyollin/taesd", "-o", tmp.File("o.png"));
        Assert.Equal("error: --preview-vae madebyollin/taesd: holds an AutoencoderKL, not an AutoencoderTiny (previews need a tiny VAE)", r.Err.Trim());
        Assert.False(File.Exists(tmp.File("o.png")));
    }

    [Fact]
    public void PreviewsDefaultToTheTinyVaeOfTheModelsLatentSpace()
    {
        // without --preview-vae: madebyollin/taesdxl for an SDXL model (an SD TAESD decodes SDXL latents into wrong colours),
        // madebyollin/taesd for SD 1.x/2.x; the loopback Hub serves the tiny TAESD under both ids
        foreach (var id in new[] { "madebyollin/taesd", "madebyollin/taesdxl" })
            _hub.Server.Add(FakeRepo.FromFolder(id, Golden.Path("tiny-taesd"), out _));
        using (var dir = new TempDir())
        {
            CliPreviews.AssertEachStepIsPreviewed(dir, ["generate", "-m", Golden.Path("tiny-sdxl"), "--prompt", "a cat", "--steps", "2",
                    "--width", "32", "--height", "32", "--seed", "0", "--preview-every", "1"], "madebyollin/taesdxl", steps: 2, onStepEnd =>
                {
                    using var pipe = StableDiffusionXLPipeline.FromPretrained(Golden.Path("tiny-sdxl"));
                    using var _ = pipe.Generate("a cat", height: 32, width: 32, numInferenceSteps: 2, seed: 0, outputType: OutputType.Latent,
                        callbackOnStepEnd: onStepEnd);
                });
        }
        Assert.True(Directory.Exists(_hub.RepoFolder("madebyollin/taesdxl")));
        Assert.False(Directory.Exists(_hub.RepoFolder("madebyollin/taesd")));

        using var sd = new TempDir();
        var (code, stdout, stderr) = Run("generate", "-m", Golden.Path("tiny-sd"), "--prompt", "a cat", "--steps", "1", "--width", "32",
            "--height", "32", "--preview-every", "1", "-o", sd.File("o.png"));
        Assert.True(code == 0, stderr);
        Assert.Contains($"previews: every 1 step(s) with madebyollin/taesd → {sd.File("o.step1.png")}", stdout);
        Assert.True(File.Exists(sd.File("o.step1.png")));
    }

    [Fact]
    public void TheModelsRevisionIsNotAskedOfItsControlNetsOrItsRefiner()
    {
        // --revision is the model's: a --controlnet or --refiner Hub id is read at main (the model's commit is not one of
        // their repositories'); they were asked for the model's revision, which their repositories do not have (404)
        _hub.Server.Add(FakeRepo.FromFolder("org/tiny-sd", Golden.Path("tiny-sd"), out string sdCommit));
        _hub.Server.Add(FakeRepo.FromFolder("org/tiny-controlnet", Golden.Path("tiny-sd-controlnet"), out string netCommit));
        _hub.Server.Add(FakeRepo.FromFolder("org/tiny-sdxl", Golden.Path("tiny-sdxl"), out string xlCommit));
        _hub.Server.Add(FakeRepo.FromFolder("org/tiny-refiner", Golden.Path("tiny-sdxl-refiner"), out string refinerCommit));
        using var tmp = new TempDir();

        var cn = Run("generate", "-m", "org/tiny-sd", "--revision", sdCommit, "--prompt", "a cat", "--controlnet", "org/tiny-controlnet",
            "--control-image", Golden.Path("controlnet-edges.png"), "--steps", "1", "--width", "32", "--height", "32", "-o", tmp.File("cn.png"));
        Assert.True(cn.Code == 0, cn.Err);
        Assert.Equal(netCommit, File.ReadAllText(Path.Combine(_hub.RepoFolder("org/tiny-controlnet"), "refs", "main")));
        Assert.True(Directory.Exists(Path.Combine(_hub.RepoFolder("org/tiny-sd"), "snapshots", sdCommit)));

        var xl = Run("generate", "-m", "org/tiny-sdxl", "--revision", xlCommit, "--prompt", "a cat", "--refiner", "org/tiny-refiner",
            "--steps", "2", "--width", "32", "--height", "32", "-o", tmp.File("xl.png"));
        Assert.True(xl.Code == 0, xl.Err);
        Assert.Contains("refiner: StableDiffusionXLImg2ImgPipeline", xl.Out);
        Assert.Equal(refinerCommit, File.ReadAllText(Path.Combine(_hub.RepoFolder("org/tiny-refiner"), "refs", "main")));
    }

    /// <summary>
    /// A Hub repository whose tag <c>v2</c> holds <paramref name="folder"/>'s files and whose main only a README, so that
    /// only v2 loads; the v2 commit.
    /// </summary>
    private string AddAtV2Only(string id, string folder)
    {
        var repo = FakeRepo.FromFolder(id, folder, out string v2);
        repo.Branches["v2"] = v2;
        repo.AddCommit(new() { ["README.md"] = "moved to v2\n"u8.ToArray() });
        _hub.Server.Add(repo);
        return v2;
    }

    [Fact]
    public void ComponentIdsTakeARevisionAfterTheIdAsLoraIdsDo()
    {
        // --controlnet, --vae, --refiner and --preview-vae org/name@rev (WeightSource, as --lora's): their files are on v2
        // only; the old code took 'org/name@v2' whole, which is no Hub id and no folder
        Assert.Equal(("org/tiny-controlnet", (string?)"refs/pr/3"), WeightSource.Repository("org/tiny-controlnet@refs/pr/3"));
        Assert.Equal(("org/tiny-controlnet", (string?)null), WeightSource.Repository("org/tiny-controlnet"));
        Assert.Equal(("org/tiny-controlnet@v2/x", (string?)null), WeightSource.Repository("org/tiny-controlnet@v2/x")); // a file: the loader's
        string netV2 = AddAtV2Only("org/tiny-controlnet", Golden.Path("tiny-sd-controlnet"));
        string vaeV2 = AddAtV2Only("org/tiny-taesd", Golden.Path("tiny-taesd"));
        string refinerV2 = AddAtV2Only("org/tiny-refiner", Golden.Path("tiny-sdxl-refiner"));
        using var tmp = new TempDir();
        // an existing path with an '@' stays a path (here --preview-vae's)
        string localVae = tmp.File("taesd@v2");
        Directory.CreateDirectory(localVae);
        foreach (var f in Directory.GetFiles(Golden.Path("tiny-taesd"))) File.Copy(f, Path.Combine(localVae, Path.GetFileName(f)));

        var cn = Run("generate", "-m", Golden.Path("tiny-sd"), "--prompt", "a cat", "--controlnet", "org/tiny-controlnet@v2",
            "--control-image", Golden.Path("controlnet-edges.png"), "--vae", "org/tiny-taesd@v2", "--preview-every", "1",
            "--preview-vae", localVae, "--steps", "1", "--width", "32", "--height", "32", "-o", tmp.File("cn.png"));
        Assert.True(cn.Code == 0, cn.Err);
        Assert.Contains("vae: AutoencoderTiny from org/tiny-taesd@v2", cn.Out);
        Assert.Contains($"previews: every 1 step(s) with {localVae} → ", cn.Out);
        Assert.Equal(netV2, File.ReadAllText(Path.Combine(_hub.RepoFolder("org/tiny-controlnet"), "refs", "v2")));
        Assert.Equal(vaeV2, File.ReadAllText(Path.Combine(_hub.RepoFolder("org/tiny-taesd"), "refs", "v2")));
        Assert.True(File.Exists(Path.Combine(_hub.RepoFolder("org/tiny-controlnet"), "snapshots", netV2, "diffusion_pytorch_model.safetensors")));
        Assert.DoesNotContain(_hub.Server.Requests, q => q.Path.Contains("/main"));

        var xl = Run("generate", "-m", Golden.Path("tiny-sdxl"), "--prompt", "a cat", "--refiner", "org/tiny-refiner@v2",
            "--preview-every", "1", "--preview-vae", "org/tiny-taesd@v2", "--steps", "2", "--width", "32", "--height", "32", "-o", tmp.File("xl.png"));
        Assert.True(xl.Code == 0, xl.Err);
        Assert.Contains("refiner: StableDiffusionXLImg2ImgPipeline from org/tiny-refiner@v2", xl.Out);
        Assert.Contains("previews: every 1 step(s) with org/tiny-taesd@v2 → ", xl.Out);
        Assert.Equal(refinerV2, File.ReadAllText(Path.Combine(_hub.RepoFolder("org/tiny-refiner"), "refs", "v2")));
        Assert.DoesNotContain(_hub.Server.Requests, q => q.Path.Contains("/main"));

        // a revision the repository does not have: an error naming the id and the revision
        var missing = Run("generate", "-m", Golden.Path("tiny-sd"), "--prompt", "a cat", "--vae", "org/tiny-taesd@v9",
            "--steps", "1", "--width", "32", "--height", "32", "-o", tmp.File("v9.png"));
        Assert.Equal(CliApp.UserError, missing.Code);
        Assert.StartsWith($"error: --vae org/tiny-taesd@v9: 'org/tiny-taesd' is in the Hugging Face cache ({_hub.RepoFolder("org/tiny-taesd")}) but revision 'v9' is not ", missing.Err);
        Assert.Contains("Download it first with `diffusers download org/tiny-taesd --revision v9`", missing.Err);
        Assert.Contains($"404 Client Error. Revision Not Found for url: {_hub.Server.Endpoint}/api/models/org/tiny-taesd/revision/v9. "
                        + "The repository 'org/tiny-taesd' has no such branch, tag or commit.", missing.Err);
        Assert.False(File.Exists(tmp.File("v9.png")));
    }

    [Fact]
    public async Task AMissingRevisionIsToldAfterTheOptionAsEmbeddingErrorsAre()
    {
        // --embedding's and --lora's errors start with the option and its argument; --vae's, --controlnet's, --refiner's and
        // --preview-vae's (generate's and serve's) started with the loader's message
        AddAtV2Only("org/tiny-controlnet", Golden.Path("tiny-sd-controlnet"));
        AddAtV2Only("org/tiny-taesd", Golden.Path("tiny-taesd"));
        AddAtV2Only("org/tiny-refiner", Golden.Path("tiny-sdxl-refiner"));
        using var tmp = new TempDir();
        void Refused(string option, string arg, params string[] args)
        {
            var r = Run(["generate", .. args, option, arg, "--prompt", "a cat", "--steps", "1", "--width", "32", "--height", "32", "-o", tmp.File("o.png")]);
            Assert.Equal(CliApp.UserError, r.Code);
            string id = arg[..arg.IndexOf('@')];
            Assert.StartsWith($"error: {option} {arg}: '{id}' is not a local folder and is not in the Hugging Face cache ({_hub.RepoFolder(id)} does not exist). "
                              + $"Download it first with `diffusers download {id} --revision v9`", r.Err);
            Assert.Contains($"404 Client Error. Revision Not Found for url: {_hub.Server.Endpoint}/api/models/{id}/revision/v9.", r.Err);
            Assert.False(File.Exists(tmp.File("o.png")));
        }
        Refused("--vae", "org/tiny-taesd@v9", "-m", Golden.Path("tiny-sd"));
        Refused("--preview-vae", "org/tiny-taesd@v9", "-m", Golden.Path("tiny-sd"), "--preview-every", "1");
        Refused("--controlnet", "org/tiny-controlnet@v9", "-m", Golden.Path("tiny-sd"), "--control-image", Golden.Path("controlnet-edges.png"));
        Refused("--refiner", "org/tiny-refiner@v9", "-m", Golden.Path("tiny-sdxl"));

        var serve = await RunServe("--model", Golden.Path("tiny-sd"), "--preview-vae", "org/tiny-taesd@v9");
        Assert.False(serve.Loaded);
        Assert.Contains("tiny-sd: not loaded at start: --preview-vae org/tiny-taesd@v9: 'org/tiny-taesd' is not a local folder", serve.Err);
    }

    [Fact]
    public async Task ServesPreviewVaeIdsTakeARevisionAfterTheIdAsGeneratesDo()
    {
        // serve --preview-vae / --preview-vae-xl org/name@rev (WeightSource.Repository, as generate's --preview-vae): the old
        // code took 'org/tiny-taesd@v2' whole, no Hub id and no folder, and the models were not loaded
        string sdV2 = AddAtV2Only("org/tiny-taesd", Golden.Path("tiny-taesd"));
        string xlV2 = AddAtV2Only("org/tiny-taesdxl", Golden.Path("tiny-taesd"));
        var run = await RunServe("--model", Golden.Path("tiny-sd"), "--model", Golden.Path("tiny-sdxl"),
            "--preview-vae", "org/tiny-taesd@v2", "--preview-vae-xl", "org/tiny-taesdxl@v2");
        Assert.True(run.Loaded, run.Err);
        Assert.Equal(CliApp.Ok, run.Code);
        Assert.Equal(sdV2, File.ReadAllText(Path.Combine(_hub.RepoFolder("org/tiny-taesd"), "refs", "v2")));
        Assert.Equal(xlV2, File.ReadAllText(Path.Combine(_hub.RepoFolder("org/tiny-taesdxl"), "refs", "v2")));
        Assert.True(File.Exists(Path.Combine(_hub.RepoFolder("org/tiny-taesdxl"), "snapshots", xlV2, "diffusion_pytorch_model.safetensors")));
        Assert.DoesNotContain(_hub.Server.Requests, q => q.Path.Contains("/main"));

        // an existing path with an '@' stays a path; the warning names the other option's value as given
        using var tmp = new TempDir();
        string localVae = tmp.File("taesd@v2");
        Directory.CreateDirectory(localVae);
        foreach (var f in Directory.GetFiles(Golden.Path("tiny-taesd"))) File.Copy(f, Path.Combine(localVae, Path.GetFileName(f)));
        int requests = _hub.Server.Requests.Count;
        run = await RunServe("--model", Golden.Path("tiny-sd"), "--preview-vae", localVae);
        Assert.True(run.Loaded, run.Err);
        Assert.Equal(requests, _hub.Server.Requests.Count);
        run = await RunServe("--model", Golden.Path("tiny-sdxl"), "--preview-vae", "org/tiny-taesd@v2");
        Assert.True(run.Loaded, run.Err);
        Assert.Contains("since --preview-vae org/tiny-taesd@v2 is the SD 1.x/2.x models' tiny VAE", run.Err);
        // a revision with a '/' is named as given, quoted (org/tiny-taesd@feature/x would read as the file x at 'feature')
        run = await RunServe("--model", Golden.Path("tiny-sdxl"), "--preview-vae", "org/tiny-taesd@feature%2Fx");
        Assert.True(run.Loaded, run.Err);
        Assert.Contains("since --preview-vae org/tiny-taesd@feature%2Fx is the SD 1.x/2.x models' tiny VAE", run.Err);
    }

    /// <summary>
    /// <c>diffusers serve ARGS</c> on a free port until every model is loaded (its preview VAE with it) or a load failed
    /// (at most 60 s), then cancelled: the exit code, the output and whether all were loaded.
    /// </summary>
    private static async Task<(int Code, string Out, string Err, bool Loaded)> RunServe(params string[] args)
    {
        using var data = new TempDir();
        int port;
        using (var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0))
        {
            l.Start();
            port = ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
        }
        using var cts = new CancellationTokenSource();
        var o = new StringWriter();
        var e = new StringWriter();
        var err = TextWriter.Synchronized(e);   // the server logs from its loading thread
        string Err() { lock (err) return e.ToString(); }
        var run = Task.Run(() => CliApp.Run(["serve", .. args, "--port", port.ToString(), "--data-dir", data.Path], o, err, cancellationToken: cts.Token));
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        bool loaded = false;
        for (var until = DateTime.UtcNow.AddSeconds(60); !loaded && DateTime.UtcNow < until && !run.IsCompleted && !Err().Contains("not loaded at start");)
        {
            try
            {
                var models = System.Text.Json.Nodes.JsonNode.Parse(await http.GetStringAsync("/v1/models"))!["data"]!.AsArray();
                loaded = models.All(m => (bool)m!["loaded"]!);
            }
            catch (HttpRequestException) { }
            if (!loaded) await Task.Delay(100);
        }
        cts.Cancel();
        int code = await run;
        return (code, o.ToString(), Err(), loaded);
    }

    [Fact]
    public void ASingleFilesConfigIdIsFetchedIntoTheCacheDir()
    {
        // generate --cache-dir is the cache of every Hub id of the run: a single-file checkpoint's --config id went to HF_HUB_CACHE
        _hub.Server.Add(FakeRepo.FromFolder("org/tiny-sd15", SingleFileGoldenTests.Folder, out string commit));
        using var tmp = new TempDir();
        string cache = tmp.File("run-cache");
        var r = Run("generate", "-m", SingleFileGoldenTests.File, "--config", "org/tiny-sd15", "--cache-dir", cache, "--prompt", "a cat",
            "--steps", "1", "--width", "32", "--height", "32", "-o", tmp.File("o.png"));
        Assert.True(r.Code == 0, r.Err);
        Assert.True(File.Exists(Path.Combine(cache, "models--org--tiny-sd15", "snapshots", commit, "model_index.json")));
        Assert.False(Directory.Exists(_hub.CacheDir));
    }

    [Fact]
    public void InfoReadsTheCacheOnlyAndNeverDownloads()
    {
        // "(from the local cache)": an id that is not cached is an error naming `diffusers download`, and no request is made
        var r = Run("info", Id);
        Assert.Equal(1, r.Code);
        Assert.Equal($"error: '{Id}' is not a local folder and is not in the Hugging Face cache ({_hub.RepoFolder(Id)} does not exist). "
                     + $"Download it first with `diffusers download {Id}` (or `huggingface-cli download {Id}`), or pass a local folder.\n",
            r.Err.Replace("\r\n", "\n"));
        Assert.Empty(_hub.Server.Requests);
        Assert.False(Directory.Exists(_hub.RepoFolder(Id)));

        Assert.Equal(0, Run("download", Id).Code);
        int requests = _hub.Server.Requests.Count;
        r = Run("info", Id);
        Assert.True(r.Code == 0, r.Err);
        Assert.StartsWith($"DDPMPipeline  ({Path.Combine(_hub.RepoFolder(Id), "snapshots", _hub.TinyCommit)})", r.Out);
        Assert.Equal(requests, _hub.Server.Requests.Count);
    }

    [Fact]
    public void DownloadThenGenerateOnlineAndOfflineThenListAndRemove()
    {
        // download into an explicit --cache-dir: diffusers' selection (safetensors, not .bin); stdout = the snapshot folder
        string other = _hub.Temp.File("other-cache");
        var d = Run("download", Id, "--cache-dir", other);
        Assert.True(d.Code == 0, d.Err);
        string snapshot = Path.Combine(other, "models--google--ddpm-tiny", "snapshots", _hub.TinyCommit);
        Assert.Equal(snapshot + Environment.NewLine, d.Out);
        Assert.Equal(PipelineFiles, SnapshotFiles(snapshot));
        foreach (var f in PipelineFiles)
            Assert.Equal(File.ReadAllBytes(Golden.Path("tiny-ddpm", f)), File.ReadAllBytes(Path.Combine(snapshot, f)));
        Assert.Contains("unet/diffusion_pytorch_model.safetensors  1.0MB/1.0MB  ", d.Err); // one progress line per file
        Assert.False(Directory.Exists(_hub.CacheDir)); // HF_HUB_CACHE untouched

        // generate --model <id>: not in HF_HUB_CACHE yet, so the locator downloads it through HF_ENDPOINT
        using var tmp = new TempDir();
        var g = Run("generate", "--model", Id, "--steps", "2", "--seed", "0", "--output", tmp.File("online.png"));
        Assert.True(g.Code == 0, g.Err);
        Assert.True(_hub.Server.Count("GET", "/cdn/") > 0 || _hub.Server.Count("GET", "/" + Id + "/resolve/") > 0);
        using (var pipe = DDPMPipeline.FromPretrained(Golden.Path("tiny-ddpm")))
        using (var expected = pipe.Generate(numInferenceSteps: 2, seed: 0))
            Assert.Equal(expected.Images[0].Pixels, Image.Load(tmp.File("online.png")).Pixels);

        // offline, with the endpoint gone: the same image from the cache, not one request
        int requests = _hub.Server.Requests.Count;
        _env.Set("HF_HUB_OFFLINE", "1");
        _env.Set("HF_ENDPOINT", "http://127.0.0.1:9");
        var off = Run("generate", "-m", Id, "-n", "2", "-s", "0", "-o", tmp.File("offline.png"));
        Assert.True(off.Code == 0, off.Err);
        Assert.Equal(Image.Load(tmp.File("online.png")).Pixels, Image.Load(tmp.File("offline.png")).Pixels);
        Assert.Equal(requests, _hub.Server.Requests.Count);

        // cache list: the repo, its revision with the ref, the size of the distinct blobs
        string size = HubDownloadProgress.FormatSize(GoldenSize(PipelineFiles));
        Assert.Equal("1.0MB", size);
        var l = Run("cache", "list");
        Assert.True(l.Code == 0, l.Err);
        var lines = l.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("REPO ID", lines[0]);
        Assert.Matches($@"^google/ddpm-tiny\s+model\s+{size}\s+4\s+\S+ \S+\s+{_hub.TinyCommit}\s+main\s+{size}\s+{System.Text.RegularExpressions.Regex.Escape(_hub.RepoFolder(Id))}\s*$", lines[2]);
        Assert.Equal($"1 repo(s) in {_hub.CacheDir}, {size} in total.", lines[^1].TrimEnd());
        var l2 = Run("cache", "list", "--cache-dir", other); // the other cache, by option
        Assert.Contains(Path.Combine(other, "models--google--ddpm-tiny"), l2.Out);

        // cache rm: gone; a second rm and an offline generate are clear user errors
        var rm = Run("cache", "rm", Id);
        Assert.True(rm.Code == 0, rm.Err);
        Assert.Equal($"Removed {Id} (1 revision(s), {size}) from {_hub.RepoFolder(Id)}.", rm.Out.TrimEnd());
        Assert.False(Directory.Exists(_hub.RepoFolder(Id)));
        Assert.Equal($"No cached repositories in {_hub.CacheDir}.", Run("cache", "list").Out.TrimEnd());
        AssertUserError(Run("cache", "rm", Id), $"error: {Id} is not in the cache {_hub.CacheDir}.");
        var gone = Run("generate", "-m", Id, "-n", "2", "-o", tmp.File("never.png"));
        AssertUserError(gone, $"error: '{Id}' is not a local folder and is not in the Hugging Face cache");
        Assert.EndsWith("Offline mode is enabled (HF_HUB_OFFLINE=1), so nothing is downloaded.", gone.Err.TrimEnd());
        Assert.True(Directory.Exists(Path.Combine(other, "models--google--ddpm-tiny"))); // rm touched only its cache
    }

    [Fact]
    public void GenerateTakesACacheDirAndItsHintsRepeatTheRevisionAndTheCacheDir()
    {
        // generate --cache-dir: the model id is downloaded there, as `download --cache-dir` does, HF_HUB_CACHE untouched
        using var tmp = new TempDir();
        string other = _hub.Temp.File("generate-cache");
        var g = Run("generate", "-m", Id, "-n", "2", "-s", "0", "--cache-dir", other, "-o", tmp.File("a.png"));
        Assert.True(g.Code == 0, g.Err);
        Assert.Equal(PipelineFiles, SnapshotFiles(Path.Combine(other, "models--google--ddpm-tiny", "snapshots", _hub.TinyCommit)));
        Assert.False(Directory.Exists(_hub.CacheDir));

        // offline, not cached at that revision: the printed commands fetch the revision into that cache
        _env.Set("HF_HUB_OFFLINE", "1");
        var miss = Run("generate", "-m", Id, "--revision", "v2", "--cache-dir", other, "-o", tmp.File("b.png"));
        Assert.Equal(1, miss.Code);
        Assert.Contains($"Download it first with `diffusers download {Id} --revision v2 --cache-dir {other}` "
                        + $"(or `huggingface-cli download {Id} --revision v2 --cache-dir {other}`), or pass a local folder.", miss.Err);
        // with the environment's cache, no --cache-dir is needed in them
        var plain = Run("generate", "-m", Id, "--revision", "v2", "-o", tmp.File("b.png"));
        Assert.Contains($"Download it first with `diffusers download {Id} --revision v2` (or `huggingface-cli download {Id} --revision v2`)", plain.Err);
        AssertUserError(Run("generate", "-m", Id, "--cache-dir", "", "-o", tmp.File("b.png")), "error: --cache-dir: empty path");
    }

    [Fact]
    public void IncludeExcludePatternsDownloadASnapshotOfMatchingFiles()
    {
        var d = Run("download", Id, "--include", "unet/*", "--include", "model_index.json", "--exclude", "*.safetensors");
        Assert.True(d.Code == 0, d.Err);
        string snapshot = d.Out.TrimEnd();
        Assert.Equal(Path.Combine(_hub.RepoFolder(Id), "snapshots", _hub.TinyCommit), snapshot);
        Assert.Equal(["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.bin"], SnapshotFiles(snapshot));

        // a revision given as the commit, with live progress bars (Spectre) on stderr; stdout is still just the folder
        var d2 = RunWith(false, "download", Id, "--revision", _hub.TinyCommit, "--include", "scheduler/*");
        Assert.True(d2.Code == 0, d2.Err);
        Assert.Equal(snapshot, d2.Out.TrimEnd());
        Assert.Contains("scheduler/scheduler_config.json", d2.Err);
        Assert.Contains("100%", d2.Err);
        Assert.Contains("497 bytes", d2.Err); // DownloadedColumn (+ rate and ETA columns)
        Assert.True(File.Exists(Path.Combine(snapshot, "scheduler", "scheduler_config.json")));

        AssertUserError(Run("download", Id, "--variant", "fp16", "--include", "*"),
            "error: --variant selects weights in diffusers' pipeline file selection; it cannot be combined with --include/--exclude");
    }

    [Fact]
    public void PatternsThatMatchNothingAreAnErrorAndLeaveTheCacheReadable()
    {
        var d = Run("download", Id, "--include", "*.nothing");
        AssertUserError(d, $"error: no file of {Id}@main matches --include '*.nothing'; nothing was downloaded");
        // the ref written for the revision names an existing (empty) snapshot: cache list does not call it corrupted
        var list = Run("cache", "list");
        Assert.True(list.Code == 0, list.Err);
        Assert.Contains(Id, list.Out);
        Assert.DoesNotContain("Corrupted", list.Err + list.Out);
    }

    [Fact]
    public void DownloadErrorsAreClearUserErrors()
    {
        AssertUserError(Run("download", "a/b/c"), "error: Repo id must be in the form 'repo_name' or 'namespace/repo_name': 'a/b/c'.");
        AssertUserError(Run("download", ".."), "error: Repo id must use alphanumeric chars");
        AssertUserError(Run("download", "nobody/nothing"), "error: 404 Client Error. Repository Not Found for url: " + _hub.Server.Endpoint + "/api/models/nobody/nothing/revision/main.");
        AssertUserError(Run("download", Id, "--revision", "no-such-branch"), "error: 404 Client Error. Revision Not Found for url:");

        var gated = FakeRepo.FromFolder("org/gated", Golden.Path("tiny-ddpm"), out _);
        gated.RequiredToken = "hf_secret";
        _hub.Server.Add(gated);
        var g = Run("download", "org/gated");
        AssertUserError(g, "error: 401 Client Error. Cannot access gated repo for url ");
        Assert.Contains("Access to model org/gated is restricted", g.Err);
        var ok = Run("download", "org/gated", "--token", "hf_secret");
        Assert.True(ok.Code == 0, ok.Err);
        Assert.Equal(PipelineFiles, SnapshotFiles(ok.Out.TrimEnd()));

        _env.Set("HF_HUB_OFFLINE", "1");
        var off = Run("download", Id);
        AssertUserError(off, $"error: ");
        Assert.Contains("offline mode is enabled", off.Err, StringComparison.OrdinalIgnoreCase);
        Assert.Contains(Id, off.Err);
        Assert.False(Directory.Exists(_hub.RepoFolder(Id)));
        // cached: offline download just prints the snapshot
        Assert.Equal(0, Run("download", "org/gated").Code);

        _env.Set("HF_HUB_OFFLINE", null);
        _env.Set("HF_ENDPOINT", "not a url");
        AssertUserError(Run("download", Id), "error: HF_ENDPOINT is not a valid http(s) URL: 'not a url'.");
    }

    [Fact]
    public void MissingModelSaysHowToGetIt()
    {
        // offline: the message says how to get the model, and nothing (not even the fake Hub) is contacted
        _env.Set("HF_HUB_OFFLINE", "1");
        var (code, _, stderr) = Run("generate", "-m", "nobody/no-such-model", "-o", Path.Combine(_hub.Temp.Path, "never.png"));
        Assert.Equal(1, code);
        Assert.StartsWith($"error: 'nobody/no-such-model' is not a local folder and is not in the Hugging Face cache ({Path.Combine(_hub.CacheDir, "models--nobody--no-such-model")} does not exist). "
                          + "Download it first with `diffusers download nobody/no-such-model`", stderr);
        Assert.EndsWith("Offline mode is enabled (HF_HUB_OFFLINE=1), so nothing is downloaded.", stderr.TrimEnd());
        Assert.Empty(_hub.Server.Requests);

        // online: the loopback Hub answers 404, and the message says so
        _env.Set("HF_HUB_OFFLINE", null);
        var online = Run("generate", "-m", "nobody/no-such-model", "-o", Path.Combine(_hub.Temp.Path, "never.png"));
        AssertUserError(online, "error: 'nobody/no-such-model' is not a local folder and is not in the Hugging Face cache");
        Assert.Contains($"Downloading it from {_hub.Server.Endpoint} failed: 404 Client Error.", online.Err);
        Assert.False(File.Exists(Path.Combine(_hub.Temp.Path, "never.png")));
    }

    private static byte[] Bytes(string text) => System.Text.Encoding.UTF8.GetBytes(text);

    /// <summary>Serves <paramref name="id"/> with <paramref name="files"/> as one commit on main; returns its snapshot folder in HF_HUB_CACHE.</summary>
    private string Serve(string id, Dictionary<string, byte[]> files)
    {
        var repo = new FakeRepo(id);
        string commit = repo.AddCommit(files);
        _hub.Server.Add(repo);
        return Path.Combine(_hub.RepoFolder(id), "snapshots", commit);
    }

    private static string EveryFileNote(string id, int n) =>
        $"{id} is neither a diffusers pipeline (model_index.json) nor a model folder (config.json next to diffusers/transformers weights): "
        + $"downloaded every file of the revision ({n} in all), as `huggingface-cli download {id}` does";

    private static string[] Lines(string text) => text.Replace("\r\n", "\n").Split('\n', StringSplitOptions.RemoveEmptyEntries);

    [Fact]
    public void DownloadOfALoraAnEmbeddingOrASingleFileRepoFetchesEveryFile()
    {
        // what diffusers' model-folder selection left out (it keeps only the standard weight names): the snapshot had the
        // README but not the LoRA, and the command said nothing
        var repos = new (string Id, Dictionary<string, byte[]> Files)[]
        {
            ("latent-consistency/lcm-lora-sdv1-5", new()
            {
                [".gitattributes"] = Bytes("*.safetensors filter=lfs diff=lfs merge=lfs -text\n"), ["README.md"] = Bytes("# LCM-LoRA\n"),
                ["pytorch_lora_weights.safetensors"] = Bytes(new string('l', 3000)),
            }),
            ("sd-concepts-library/cat-toy", new()
            {
                ["README.md"] = Bytes("cat toy\n"), ["learned_embeds.bin"] = Bytes(new string('e', 1500)),
                ["token_identifier.txt"] = Bytes("<cat-toy>"), ["type_of_concept.txt"] = Bytes("object"),
            }),
            ("org/single-file", new()
            {
                ["README.md"] = Bytes("a checkpoint\n"), ["v1-5-pruned-emaonly.safetensors"] = Bytes(new string('s', 2000)),
                ["v1-5-pruned-emaonly.ckpt"] = Bytes(new string('c', 2000)), ["v1-inference.yaml"] = Bytes("model: {}\n"),
            }),
        };
        foreach (var (id, files) in repos)
        {
            string snapshot = Serve(id, files);
            var d = Run("download", id);
            Assert.True(d.Code == 0, d.Err);
            Assert.Equal(snapshot + Environment.NewLine, d.Out);
            Assert.Equal(files.Keys.Order(StringComparer.Ordinal), SnapshotFiles(snapshot));
            foreach (var (name, bytes) in files) Assert.Equal(bytes, File.ReadAllBytes(Path.Combine(snapshot, name)));
            Assert.Single(Lines(d.Err), EveryFileNote(id, files.Count));
        }

        // --variant selects nothing in such a repo: an error before any download, naming the files
        var lora = Serve("org/other-lora", new() { ["pytorch_lora_weights.safetensors"] = Bytes("w") });
        var v = Run("download", "org/other-lora", "--variant", "fp16");
        AssertUserError(v, "error: variant 'fp16' picks weights in diffusers' file selection of a pipeline (model_index.json) or a model folder");
        Assert.Contains("which org/other-lora@main is not (files: pytorch_lora_weights.safetensors); without a variant every file of it is downloaded.", v.Err);
        Assert.Equal("", v.Out);
        Assert.False(Directory.Exists(lora));
        Assert.Equal(0, _hub.Server.Count("HEAD", "/org/other-lora/resolve/"));
    }

    [Fact]
    public void DownloadOfAModelRepoKeepsOneWeightFormatAndFetchesVariantOnlyWeightsWhole()
    {
        // a model folder: its configs and one weight format (safetensors over .bin), no note
        string vae = Serve("org/vae", new()
        {
            ["config.json"] = Bytes("{\"_class_name\": \"AutoencoderKL\"}"), ["README.md"] = Bytes("vae\n"),
            ["diffusion_pytorch_model.safetensors"] = Bytes("safetensors"), ["diffusion_pytorch_model.bin"] = Bytes("bin"),
            ["diffusion_pytorch_model.fp16.safetensors"] = Bytes("fp16"),
        });
        var d = Run("download", "org/vae");
        Assert.True(d.Code == 0, d.Err);
        Assert.Equal(["README.md", "config.json", "diffusion_pytorch_model.safetensors"], SnapshotFiles(vae));
        Assert.DoesNotContain("neither", d.Err);

        // only fp16 weights and no --variant: the selection would keep none (config.json and the README alone), so the
        // repo is fetched whole, weights included
        var files = new Dictionary<string, byte[]>
        {
            ["config.json"] = Bytes("{\"_class_name\": \"UNet2DModel\"}"), ["README.md"] = Bytes("unet\n"),
            ["diffusion_pytorch_model.fp16.safetensors"] = Bytes("fp16 weights"),
        };
        string fp16 = Serve("org/fp16-only", files);
        d = Run("download", "org/fp16-only");
        Assert.True(d.Code == 0, d.Err);
        Assert.Equal(fp16 + Environment.NewLine, d.Out);
        Assert.Equal(files.Keys.Order(StringComparer.Ordinal), SnapshotFiles(fp16));
        Assert.Single(Lines(d.Err), EveryFileNote("org/fp16-only", 3));
    }

    [Fact]
    public void CacheDirWithATildeIsUnderTheHomeFolder()
    {
        // '~/…' quoted, so no shell expanded it: huggingface_hub's expanduser, not a folder named '~' in the current one
        string home = _hub.Temp.File("home");
        Directory.CreateDirectory(home);
        _env.Set("HOME", home);
        _env.Set("USERPROFILE", home);
        string cache = Path.Combine(home, "hf-cache");
        var d = Run("download", Id, "--cache-dir", "~/hf-cache");
        Assert.True(d.Code == 0, d.Err);
        Assert.Equal(Path.Combine(cache, "models--google--ddpm-tiny", "snapshots", _hub.TinyCommit) + Environment.NewLine, d.Out);
        Assert.False(Directory.Exists(Path.Combine(Environment.CurrentDirectory, "~")));

        var l = Run("cache", "list", "--cache-dir", "~/hf-cache");
        Assert.True(l.Code == 0, l.Err);
        Assert.Equal($"1 repo(s) in {cache}, 1.0MB in total.", Lines(l.Out)[^1].TrimEnd());
        var rm = Run("cache", "rm", Id, "--cache-dir", "~/hf-cache");
        Assert.True(rm.Code == 0, rm.Err);
        Assert.Equal($"Removed {Id} (1 revision(s), 1.0MB) from {Path.Combine(cache, "models--google--ddpm-tiny")}.", rm.Out.TrimEnd());
        Assert.False(Directory.Exists(Path.Combine(cache, "models--google--ddpm-tiny")));

        // the environment's cache variables too (HF_HUB_CACHE, HF_HOME)
        _env.Set("HF_HUB_CACHE", "~/env-cache");
        Assert.Equal($"No cached repositories in {Path.Combine(home, "env-cache")}.", Run("cache", "list").Out.TrimEnd());
        _env.Set("HF_HUB_CACHE", null);
        _env.Set("HF_HOME", "~/hf-home");
        Assert.Equal($"No cached repositories in {Path.Combine(home, "hf-home", "hub")}.", Run("cache", "list").Out.TrimEnd());
    }
}
