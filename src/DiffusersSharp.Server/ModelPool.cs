using DiffusersSharp.Generation;
using DiffusersSharp.Hub;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;

namespace DiffusersSharp.Server;

/// <summary>
/// The served models: one <see cref="ModelWorker"/> each, models loaded when first needed (or at start) and kept; beyond
/// the memory budget the least recently used idle ones are unloaded before another loads.
/// </summary>
public sealed class ModelPool : IDisposable
{
    private readonly object _gate = new();       // the workers' state (loaded, running, last used): held briefly
    private readonly object _loadGate = new();   // one load at a time (held while a model loads, never under _gate)
    private readonly ServerOptions _options;
    private readonly List<ModelWorker> _workers = [];
    private bool _disposed;
    private readonly Dictionary<string, AutoencoderTiny> _previewVaes = [];   // by --preview-vae / --preview-vae-xl, loaded at first use
    private readonly HashSet<string> _toldNoPreviewVae = [];                  // the models told so once (under _loadGate)
    private readonly Action<string>? _log;

    /// <summary>
    /// Creates the workers of <paramref name="options"/>' models (loading nothing yet); <paramref name="log"/> hears the
    /// warnings of their loads.
    /// </summary>
    public ModelPool(ServerOptions options, ResultStore store, Action<string>? log = null)
    {
        _options = options;
        _log = log;
        foreach (var m in options.Models)
        {
            string name = NameOf(m);
            if (_workers.Any(w => w.Name == name))
                throw new DiffusersException($"--model {m}: a model named '{name}' is already served");
            _workers.Add(new ModelWorker(name, m, this, store, options));
        }
    }

    /// <summary>The workers, in the order the models were given.</summary>
    public IReadOnlyList<ModelWorker> Workers => _workers;

    /// <summary>The API name of a model argument: a folder's last path part, else the Hub id.</summary>
    public static string NameOf(string idOrPath) =>
        Directory.Exists(idOrPath) ? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(idOrPath))) : idOrPath;

    /// <summary>The worker of <paramref name="model"/> (the first model when null), or null when none has that name.</summary>
    public ModelWorker? Find(string? model) =>
        model is null ? _workers.FirstOrDefault() : _workers.FirstOrDefault(w => w.Name == model || w.IdOrPath == model);

    /// <summary>Bytes the loaded models hold.</summary>
    public long LoadedBytes { get { lock (_gate) return _workers.Where(w => w.Service is not null).Sum(w => w.Service!.ParameterBytes); } }

    /// <summary>Loads the models at start while they fit the budget (errors are left for their first request).</summary>
    public void Preload(Action<string> log)
    {
        foreach (var w in _workers)
        {
            try
            {
                lock (_loadGate)
                {
                    lock (_gate)
                    {
                        if (_disposed) return;
                        if (_options.MemoryBudgetGb is double gb && LoadedBytes + Estimate(w) > gb * 1e9) continue;
                    }
                    Load(w);
                }
            }
            catch (Exception e) when (e is DiffusersException or IOException)
            {
                log($"{w.Name}: not loaded at start: {e.Message}");
            }
        }
    }

    /// <summary>The loaded model of <paramref name="worker"/>, loading it (and unloading others beyond the budget) when needed; marks it running.</summary>
    internal GenerationService Acquire(ModelWorker worker)
    {
        lock (_gate)
        {
            if (worker.Service is { } loaded) return MarkRunning(worker, loaded);
        }
        lock (_loadGate)
        {
            var service = Load(worker);
            lock (_gate) return MarkRunning(worker, service);
        }
    }

    private static GenerationService MarkRunning(ModelWorker worker, GenerationService service)
    {
        worker.Running = true;
        worker.LastUsed = DateTime.UtcNow;
        return service;
    }

    /// <summary>Marks <paramref name="worker"/> idle again.</summary>
    internal void Release(ModelWorker worker)
    {
        lock (_gate)
        {
            worker.Running = false;
            worker.LastUsed = DateTime.UtcNow;
        }
    }

    /// <summary>
    /// Loads <paramref name="worker"/>'s model (call holding <c>_loadGate</c>: one load at a time). Idle models beyond the
    /// budget are unloaded first, under <c>_gate</c>; the load itself runs outside it, so that while one model loads
    /// (minutes for a download) the others' jobs still start and end.
    /// </summary>
    private GenerationService Load(ModelWorker worker)
    {
        lock (_gate)
        {
            if (worker.Service is { } loaded) return loaded;
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_options.MemoryBudgetGb is double gb)
            {
                long budget = (long)(gb * 1e9), need = Estimate(worker);
                foreach (var idle in _workers.Where(w => w.Service is not null && !w.Running && w != worker).OrderBy(w => w.LastUsed).ToList())
                {
                    if (LoadedBytes + need <= budget) break;
                    Unload(idle);
                }
            }
        }
        var service = GenerationService.Load(worker.IdOrPath, _options.LoadOptions);
        try
        {
            service.LoraDirectory = _options.LoraDir;
            if (_options.IPAdapter is { } ipAdapter)
            {
                service.LoadIPAdapter(ipAdapter, _options.LoadOptions);
                if (_options.IPAdapterScale is double scale) service.SetIPAdapterScale(scale);
            }
            // the tiny VAE of the model's latent space only: an SD TAESD would decode SDXL latents into wrong colours
            if (_options.PreviewVaeFor(service.LatentSpace) is { } previewVae)
            {
                // a Hub id at its own revision (else main), not at the models' (LoadOptions.Revision)
                string? revision = _options.PreviewVaeRevisionFor(service.LatentSpace);
                string key = PreviewVaeName(service.LatentSpace)!;
                if (!_previewVaes.TryGetValue(key, out var tiny))
                    _previewVaes[key] = tiny = LoadPreviewVae(service.LatentSpace, previewVae, revision, key);
                service.Taesd = new TaesdPreview(tiny);
            }
            else if (NoPreviewVaeWarning(worker.Name, service.LatentSpace) is { } warning && _toldNoPreviewVae.Add(worker.Name))
                _log?.Invoke(warning);
            lock (_gate)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                worker.Service = service;
                worker.LastUsed = DateTime.UtcNow;
            }
            return service;
        }
        catch
        {
            service.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The warning for a model whose latent space has no preview VAE while the other space's option is given (a
    /// <c>--preview-vae</c> given for an SDXL model, as before <c>--preview-vae-xl</c> existed, is not used for it); null
    /// when neither or its own is given.
    /// </summary>
    private string? NoPreviewVaeWarning(string model, LatentSpace space)
    {
        var (own, other, kind, otherKind, otherSpace) = space == LatentSpace.StableDiffusionXL
            ? ("--preview-vae-xl", "--preview-vae", "an SDXL", "SD 1.x/2.x", LatentSpace.StableDiffusion)
            : ("--preview-vae", "--preview-vae-xl", "a Stable Diffusion 1.x/2.x", "SDXL", LatentSpace.StableDiffusionXL);
        return PreviewVaeName(otherSpace) is { } given
            ? $"warning: {model} is {kind} model: its previews are a latent → RGB approximation, since {other} {given} is the {otherKind} models' tiny VAE; give {own} {VaeLoader.TaesdIdFor(space)} for them"
            : null;
    }

    /// <summary>
    /// The tiny VAE <paramref name="pathOrId"/> at <paramref name="revision"/> (null: main), an error of its load named by the
    /// option and <paramref name="name"/> as given (<c>--preview-vae org/name@v9: …</c>), as <c>generate</c>'s options name theirs.
    /// </summary>
    private AutoencoderTiny LoadPreviewVae(LatentSpace space, string pathOrId, string? revision, string name)
    {
        try
        {
            return AutoencoderTiny.FromPretrained(pathOrId, null, (_options.LoadOptions ?? LoadOptions.Default) with { Revision = revision });
        }
        catch (DiffusersException e)
        {
            string option = space == LatentSpace.StableDiffusionXL ? "--preview-vae-xl" : "--preview-vae";
            throw new DiffusersException($"{option} {name}: {e.Message}", e) { FilePath = e.FilePath, Key = e.Key };
        }
    }

    /// <summary>
    /// The preview VAE of <paramref name="space"/> as the option names it: <c>org/name@rev</c> with a revision, written as
    /// <c>serve</c> reads it back (<see cref="HubRepoId.SafeRevision"/>: <c>org/name@feature%2Fx</c>, not
    /// <c>org/name@feature/x</c>, which reads as the file <c>x</c> at revision <c>feature</c>); null when none.
    /// </summary>
    private string? PreviewVaeName(LatentSpace space) =>
        _options.PreviewVaeFor(space) is { } vae
            ? _options.PreviewVaeRevisionFor(space) is { } revision ? $"{vae}@{HubRepoId.SafeRevision(revision)}" : vae
            : null;

    /// <summary>Unloads <paramref name="worker"/>'s model (it reloads at its next job).</summary>
    internal void Unload(ModelWorker worker)
    {
        lock (_gate)
        {
            if (worker.Running || worker.Service is null) return;
            worker.Service.Dispose();
            worker.Service = null;
        }
    }

    /// <summary>The weight files' size for a local folder (what loading it will take, about); 0 when unknown.</summary>
    private static long Estimate(ModelWorker w)
    {
        if (w.Service is { } s) return s.ParameterBytes;
        if (!Directory.Exists(w.IdOrPath)) return 0;
        return Directory.EnumerateFiles(w.IdOrPath, "*", SearchOption.AllDirectories)
            .Where(f => f.EndsWith(".safetensors", StringComparison.Ordinal) || f.EndsWith(".bin", StringComparison.Ordinal))
            .Sum(f => new FileInfo(f).Length);
    }

    /// <summary>Stops the workers and frees the models.</summary>
    public void Dispose()
    {
        foreach (var w in _workers) w.Dispose();
        lock (_loadGate)   // after a load in progress (preload), which would otherwise set a model or the preview VAE after this
        {
            lock (_gate)
            {
                _disposed = true;
                foreach (var w in _workers)
                {
                    w.Service?.Dispose();
                    w.Service = null;
                }
                foreach (var tiny in _previewVaes.Values) tiny.Dispose();
                _previewVaes.Clear();
            }
        }
    }
}
