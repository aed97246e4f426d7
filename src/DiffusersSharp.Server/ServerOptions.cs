using DiffusersSharp.Generation;
using DiffusersSharp.Loading;
using DiffusersSharp.Pipelines;

namespace DiffusersSharp.Server;

/// <summary>The settings of <c>diffusers serve</c> (<see cref="DiffusersServer"/>).</summary>
public sealed record ServerOptions
{
    /// <summary>The models to serve: pipeline folders or Hub ids; a folder is named by its last path part, a Hub id by itself. The first is the default.</summary>
    public IReadOnlyList<string> Models { get; init; } = [];

    /// <summary>The address to listen on; loopback by default. Any other address needs <see cref="ApiKey"/>.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>The TCP port (0: any free port, see <see cref="DiffusersServer.Address"/>).</summary>
    public int Port { get; init; } = 7860;

    /// <summary>When set, every <c>/v1/</c> request needs <c>Authorization: Bearer {key}</c> (or <c>?api_key=</c> for the page's image and event URLs).</summary>
    public string? ApiKey { get; init; }

    /// <summary>Jobs that may wait per model besides the running one; beyond it requests get 429 with Retry-After.</summary>
    public int MaxQueue { get; init; } = 16;

    /// <summary>When set, loaded models beyond this many GB (parameters and buffers) are unloaded, least recently used first.</summary>
    public double? MemoryBudgetGb { get; init; }

    /// <summary>Where results and the history database are kept.</summary>
    public string DataDir { get; init; } = Path.Combine(
        Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.Create), "diffusers-sharp", "serve");

    /// <summary>A preview event every this many steps (0: none).</summary>
    public int PreviewEvery { get; init; } = 2;

    /// <summary>The largest <c>n</c> a request may ask for.</summary>
    public int MaxImages { get; init; } = 4;

    /// <summary>The longest prompt accepted, in characters (CLIP reads 77 tokens; longer text is almost always a mistake).</summary>
    public int MaxPromptChars { get; init; } = 10_000;

    /// <summary>
    /// Finished jobs kept in memory for <c>GET /v1/jobs/{id}</c>, their event stream and DELETE (compacted: no previews or
    /// images, see <see cref="Job.Compact"/>); older ones are read from the history store.
    /// </summary>
    public int KeepFinishedJobs { get; init; } = 256;

    /// <summary>Steps when a request gives none.</summary>
    public int DefaultSteps { get; init; } = 25;

    /// <summary>How the models are loaded (dtype, device, cache, offline …).</summary>
    public LoadOptions? LoadOptions { get; init; }

    /// <summary>
    /// A tiny VAE (folder or Hub id, e.g. <c>madebyollin/taesd</c>) that decodes the previews of the Stable Diffusion 1.x/2.x
    /// models; the latent → RGB approximation when null. SDXL models take <see cref="PreviewVaeXl"/>.
    /// </summary>
    public string? PreviewVae { get; init; }

    /// <summary>
    /// The tiny VAE (e.g. <c>madebyollin/taesdxl</c>) that decodes the previews of the SDXL models; the latent → RGB
    /// approximation when null. A separate setting because TAESD and TAESDXL share one architecture and config (nothing in
    /// the folder tells them apart), and the one of the other latent space decodes into wrong colours.
    /// </summary>
    public string? PreviewVaeXl { get; init; }

    /// <summary>
    /// The branch, tag or commit <see cref="PreviewVae"/>'s Hub id is read at (<c>serve --preview-vae org/name@rev</c>); null:
    /// <c>main</c>, never <see cref="LoadOptions"/>' revision, which is the models'. Not used for a folder.
    /// </summary>
    public string? PreviewVaeRevision { get; init; }

    /// <summary>The branch, tag or commit <see cref="PreviewVaeXl"/>'s Hub id is read at; null: <c>main</c> (see <see cref="PreviewVaeRevision"/>).</summary>
    public string? PreviewVaeXlRevision { get; init; }

    /// <summary>The preview VAE given for models of <paramref name="space"/> (<see cref="PreviewVae"/> or <see cref="PreviewVaeXl"/>); null when none.</summary>
    public string? PreviewVaeFor(LatentSpace space) => space switch
    {
        LatentSpace.StableDiffusion => PreviewVae,
        LatentSpace.StableDiffusionXL => PreviewVaeXl,
        _ => throw new ArgumentOutOfRangeException(nameof(space), space, "not a latent space"),
    };

    /// <summary>The revision of <see cref="PreviewVaeFor"/>'s Hub id (<see cref="PreviewVaeRevision"/> or <see cref="PreviewVaeXlRevision"/>); null: <c>main</c>.</summary>
    public string? PreviewVaeRevisionFor(LatentSpace space) => space switch
    {
        LatentSpace.StableDiffusion => PreviewVaeRevision,
        LatentSpace.StableDiffusionXL => PreviewVaeXlRevision,
        _ => throw new ArgumentOutOfRangeException(nameof(space), space, "not a latent space"),
    };

    /// <summary>
    /// A directory of LoRA files (<c>*.safetensors</c>): requests may name them in <c>loras</c> (file name → weight) and the
    /// page lists them (<c>GET /v1/schedulers</c>' <c>loras</c>); null: requests with LoRAs are refused.
    /// </summary>
    public string? LoraDir { get; init; }

    /// <summary>
    /// An IP-Adapter loaded into every served model as it loads (<see cref="GenerationService.LoadIPAdapter"/>; the Hub's
    /// cache and settings of <see cref="LoadOptions"/>, the adapter's own revision): requests then give its image prompt in
    /// <c>ip_adapter_image</c>, which every request needs (diffusers 0.25.1 runs a pipeline with an IP-Adapter only with
    /// one), and may weigh it with <c>ip_adapter_scale</c>. A model the adapter does not fit (an SD 1.x adapter on SDXL)
    /// fails to load, naming the file. Null: requests with <c>ip_adapter_image</c> are refused.
    /// </summary>
    public IPAdapterSource? IPAdapter { get; init; }

    /// <summary>The scale of <see cref="IPAdapter"/> for requests without <c>ip_adapter_scale</c> (diffusers' <c>set_ip_adapter_scale</c>); null: 1.</summary>
    public double? IPAdapterScale { get; init; }

    /// <summary>Loads the models at start (within the memory budget) instead of at their first request.</summary>
    public bool Preload { get; init; } = true;
}
