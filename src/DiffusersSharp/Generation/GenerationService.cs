using System.Diagnostics;
using System.Globalization;
using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Runtime;
using DiffusersSharp.Schedulers;
using TorchSharp;

namespace DiffusersSharp.Generation;

/// <summary>
/// One loaded Stable Diffusion model that serves <see cref="GenerationRequest"/>s: picks text to image, image to image
/// or inpainting from the request, sharing the loaded components (an SDXL base model: text to image only), one scheduler
/// per kind reset at every request (so a request draws the same images as a newly loaded pipeline with the same settings;
/// the service owns them and disposes them with itself),
/// progress and previews per step, cancellation checked every step, PNG bytes out. One run at a time (calls wait for each other,
/// on one lock): per-request model state (the LoRA adapters, <see cref="GenerationRequest.FreeU"/>,
/// <see cref="GenerationRequest.IPAdapterScale"/>) is set for a run while no other run can see it. An IP-Adapter is loaded
/// once (<see cref="LoadIPAdapter"/>); requests then give its image prompt (<see cref="GenerationRequest.IPAdapterImage"/>).
/// <code>
/// using var service = GenerationService.Load("runwayml/stable-diffusion-v1-5");
/// var result = service.Generate(new GenerationRequest { Prompt = "a cat", Steps = 25, Seed = 1 });
/// File.WriteAllBytes("cat.png", result.Images[0]);
/// </code>
/// </summary>
public sealed class GenerationService : IDisposable
{
    private readonly object _gate = new();
    private readonly DiffusionPipeline _pipeline;
    private readonly StableDiffusionPipelineBase? _pipe;   // Stable Diffusion 1.x/2.x: text to image, image to image, inpainting
    private readonly StableDiffusionXLPipeline? _xl;        // SDXL base: text to image
    private readonly ServedFamily? _family;                 // _pipe's classes: text to image, image to image, refusals
    private readonly ILoraPipeline _lora;
    private readonly IIPAdapterPipeline _ipAdapter;
    private readonly DiffusersConfig _schedulerConfig;
    private bool _disposed;
    private string? _loraDirectory;
    private GenerationLoras _loras;
    // one scheduler per kind (the default, "": the pipeline's own), reused: SetTimesteps resets it each run, so a request
    // leaves no scheduler tensors behind for the GC to finalize; as many as there are scheduler classes and aliases. The
    // service swaps them in and out of the pipeline, so it owns them all and disposes them (Dispose)
    private readonly Dictionary<string, IScheduler> _schedulers = [];

    /// <summary>Serves <paramref name="pipeline"/> (owned from now on: disposed with the service) under <paramref name="modelId"/>.</summary>
    public GenerationService(DiffusionPipeline pipeline, string modelId)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        _pipeline = pipeline;
        _pipe = pipeline as StableDiffusionPipelineBase;
        _xl = pipeline as StableDiffusionXLPipeline;
        _lora = (ILoraPipeline?)_pipe ?? (ILoraPipeline?)_xl ?? throw new DiffusersException(
            $"{modelId}: the generation service runs Stable Diffusion pipelines (text to image, image to image, inpainting) and SDXL base pipelines (text to image); this model is a {pipeline.ClassName}");
        // text to image, image to image and inpainting run 4- and 9-channel UNets (not the x4 upscaler's 7 or InstructPix2Pix's 8)
        if (_pipe is not null && _pipe.Unet.Config.InChannels is not (4 or 9))
            throw new DiffusersException(
                $"{modelId}: the generation service runs Stable Diffusion pipelines whose UNet takes 4 or 9 input channels (text to image, image to image, inpainting); this model is a {pipeline.ClassName} whose UNet takes {_pipe.Unet.Config.InChannels}");
        _ipAdapter = (IIPAdapterPipeline?)_pipe ?? _xl!;
        _family = _pipe is null ? null : ServedFamily.For(_pipe);
        ModelId = modelId;
        var own = _pipe?.Scheduler ?? _xl!.Scheduler;
        _schedulerConfig = (DiffusersConfig)own.Config;
        _schedulers[""] = own;
        ParameterBytes = CountParameterBytes(pipeline);
        _loras = new GenerationLoras(_lora, null);
    }

    /// <summary>Loads a pipeline folder or Hub id (<see cref="DiffusionPipeline.FromPretrained"/>) and serves it.</summary>
    public static GenerationService Load(string idOrPath, LoadOptions? options = null)
    {
        var pipeline = DiffusionPipeline.FromPretrained(idOrPath, options);
        try
        {
            return new(pipeline, idOrPath);
        }
        catch
        {
            pipeline.Dispose();   // a pipeline the service does not run (DDPM, ...)
            throw;
        }
    }

    /// <summary>The name the model was loaded by.</summary>
    public string ModelId { get; }

    /// <summary>The loaded pipeline (its class decides what a request without an image runs: inpainting models need one).</summary>
    public DiffusionPipeline Pipeline => _pipeline;

    /// <summary>Bytes held by the models' parameters and buffers (what unloading the model frees).</summary>
    public long ParameterBytes { get; }

    /// <summary>A preview every this many steps (0: none). Default 0.</summary>
    public int PreviewEvery { get; set; }

    /// <summary>
    /// The tiny VAE that decodes previews, one for the model's <see cref="LatentSpace"/> (TAESD for Stable Diffusion 1.x/2.x,
    /// TAESDXL for SDXL: the other decodes into wrong colours); when null, the latent → RGB approximation (<see cref="LatentRgbPreview"/>).
    /// </summary>
    public TaesdPreview? Taesd { get; set; }

    /// <summary>The latent space of the model's latents: which tiny VAE <see cref="Taesd"/> should hold (<see cref="VaeLoader.TaesdIdFor"/>).</summary>
    public LatentSpace LatentSpace => ((ILatentDiffusionPipeline)_pipeline).LatentSpace;

    /// <summary>
    /// The directory whose <c>*.safetensors</c> LoRA files requests may name in <see cref="GenerationRequest.Loras"/> (by
    /// file name); null (the default): requests with LoRAs are refused. Changing it unloads the LoRAs loaded so far.
    /// </summary>
    public string? LoraDirectory
    {
        get => _loraDirectory;
        set
        {
            lock (_gate)
            {
                if (value == _loraDirectory) return;
                _lora.UnloadLoraWeights();   // the adapters of the old directory go with it
                _loraDirectory = value;
                _loras = new GenerationLoras(_lora, value);
            }
        }
    }

    /// <summary>
    /// Checks a request's <see cref="GenerationRequest.Loras"/> against a LoRA directory without loading anything: names
    /// (file names, not paths) of <c>*.safetensors</c> files there and finite weights, else a <c>loras: …</c> message.
    /// </summary>
    public static void ValidateLoras(IReadOnlyDictionary<string, double>? loras, string? loraDirectory) =>
        GenerationLoras.Validate(loras, loraDirectory);

    /// <summary>The LoRA names requests may use (the files in <see cref="LoraDirectory"/>), sorted.</summary>
    public IReadOnlyList<string> AvailableLoras => _loras.Available;

    /// <summary>The IP-Adapter <see cref="LoadIPAdapter"/> loaded; null when it loaded none.</summary>
    public IPAdapterSource? IPAdapter { get; private set; }

    /// <summary>
    /// True when the model's UNet holds an IP-Adapter (loaded by <see cref="LoadIPAdapter"/>, or on <see cref="Pipeline"/>
    /// itself): requests must then give <see cref="GenerationRequest.IPAdapterImage"/>, and only then may.
    /// </summary>
    public bool HasIPAdapter => _ipAdapter.IPAdapterImageProjection is not null;

    /// <summary>
    /// Loads an IP-Adapter for every request from now on (diffusers' <c>load_ip_adapter</c>, <see cref="IIPAdapterPipeline.LoadIPAdapter"/>:
    /// the weights into the UNet, the image encoder of <c>{subfolder}/image_encoder</c> unless the pipeline has one), at scale
    /// 1 (<see cref="SetIPAdapterScale"/>). <paramref name="options"/>: the Hub's cache and settings (its revision is not used:
    /// <see cref="IPAdapterSource.Revision"/> is the adapter's); the weights take the UNet's dtype and device. Replaces an
    /// adapter loaded before. A file that is missing or not an IP-Adapter for this model is a <see cref="DiffusersException"/>
    /// naming it; the model then runs as before.
    /// </summary>
    public void LoadIPAdapter(IPAdapterSource source, LoadOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _ipAdapter.LoadIPAdapter(source.PathOrId, source.Subfolder, source.WeightName,
                (options ?? LoadOptions.Default) with { Revision = source.Revision });
            IPAdapter = source;
        }
    }

    /// <summary>
    /// The IP-Adapter's weight for requests that give no <see cref="GenerationRequest.IPAdapterScale"/> (diffusers'
    /// <c>set_ip_adapter_scale</c>; finite, between -100 and 100). Needs an adapter (<see cref="HasIPAdapter"/>).
    /// </summary>
    public void SetIPAdapterScale(double scale)
    {
        CheckIPAdapterScale(scale);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!HasIPAdapter) throw new DiffusersException($"ip_adapter_scale: {ModelId} has no IP-Adapter loaded (LoadIPAdapter first)");
            _ipAdapter.SetIPAdapterScale(scale);
        }
    }

    /// <summary>
    /// Checks a request's <see cref="GenerationRequest.IPAdapterImage"/> against whether the model has an IP-Adapter
    /// (<paramref name="adapterLoaded"/>): an image prompt needs one, and with one loaded a request needs an image prompt
    /// (diffusers 0.25.1's UNet with an IP-Adapter requires <c>image_embeds</c>); else an <c>ip_adapter_image: …</c> message.
    /// </summary>
    public static void ValidateIPAdapter(GenerationRequest request, bool adapterLoaded)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.IPAdapterImage is not null && !adapterLoaded)
            throw new DiffusersException("ip_adapter_image: no IP-Adapter is loaded for this model (serve --ip-adapter FILE; GenerationService.LoadIPAdapter), so it cannot take an image prompt");
        if (request.IPAdapterImage is null && adapterLoaded)
            throw new DiffusersException("ip_adapter_image: is required: this model has an IP-Adapter loaded, and diffusers 0.25.1 runs a pipeline with an IP-Adapter only with an image prompt (its UNet requires image_embeds), as generate --ip-adapter needs --ip-adapter-image");
    }

    private static void CheckIPAdapterScale(double scale)
    {
        if (!double.IsFinite(scale) || Math.Abs(scale) > 100)
            throw new DiffusersException($"ip_adapter_scale: must be a number between -100 and 100, got {scale.ToString(CultureInfo.InvariantCulture)}");
    }

    /// <summary>
    /// Checks a request without running it; a bad value is a <see cref="DiffusersException"/> naming the field
    /// (<c>width</c>, <c>steps</c>, …) and the allowed range.
    /// </summary>
    public static void Validate(GenerationRequest request, int maxCount = 16)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Prompt is null) throw new DiffusersException("prompt: is required");
        foreach (var (name, v) in new[] { ("width", request.Width), ("height", request.Height) })
            if (v is int s && (s < 8 || s > 4096 || s % 8 != 0))
                throw new DiffusersException($"{name}: must be a multiple of 8 between 8 and 4096, got {s}");
        if (request.Steps < 1 || request.Steps > 1000) throw new DiffusersException($"steps: must be between 1 and 1000, got {request.Steps}");
        if (!double.IsFinite(request.GuidanceScale) || request.GuidanceScale < 0 || request.GuidanceScale > 100)
            throw new DiffusersException($"guidance_scale: must be between 0 and 100, got {request.GuidanceScale}");
        if (request.Count < 1 || request.Count > maxCount) throw new DiffusersException($"n: must be between 1 and {maxCount}, got {request.Count}");
        if (request.Seed is < 0) throw new DiffusersException($"seed: must be 0 or more, got {request.Seed}");
        if (request.Strength is double st && (double.IsNaN(st) || st < 0 || st > 1))
            throw new DiffusersException($"strength: must be in [0, 1], got {st}");
        if (request.Mask is not null && request.InitImage is null) throw new DiffusersException("mask: needs an image to inpaint");
        if (request.PaddingMaskCrop is int pad)
        {
            if (pad < 0) throw new DiffusersException($"padding_mask_crop: must be 0 or more (a margin in pixels), got {pad}");
            if (request.Mask is null)
                throw new DiffusersException("padding_mask_crop: inpaints the area around the mask; give an image and a mask (an edit)");
        }
        if (request.Scheduler is { } sch && !SchedulerAliases.TryResolve(sch, out _, out _))
            throw new DiffusersException("scheduler: " + SchedulerAliases.UnknownMessage(sch));
        if (request.FreeU is { } f)
            foreach (var (name, v) in f.Named)
                if (!double.IsFinite(v))
                    throw new DiffusersException($"freeu: {name} must be a finite number, got {v.ToString(CultureInfo.InvariantCulture)}");
        // the scheduler checks the values (descending, within its training timesteps) and whether it takes them at all
        if (request.Timesteps is { } ts && (ts.Count == 0 || ts.Count > 1000))
            throw new DiffusersException($"timesteps: give between 1 and 1000 timesteps (or none, to use steps), got {ts.Count}");
        if (request.IPAdapterScale is double ipScale)
        {
            CheckIPAdapterScale(ipScale);
            if (request.IPAdapterImage is null)
                throw new DiffusersException("ip_adapter_scale: needs an ip_adapter_image (the image prompt it weighs)");
        }
    }

    /// <summary>
    /// Runs <paramref name="request"/>: <paramref name="progress"/> hears every step (with a preview when one is due);
    /// <paramref name="cancellationToken"/> is checked every step (an <see cref="OperationCanceledException"/> within one
    /// step). Waits while another run of this service is in progress (runs are serialised on one lock, so a request's
    /// <see cref="GenerationRequest.FreeU"/>, set on the shared UNet for its run and put back in a <c>finally</c>, never
    /// reaches another request).
    /// </summary>
    public GenerationResult Generate(GenerationRequest request, IProgress<GenerationProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        Validate(request);
        GenerationLoras.Validate(request.Loras, _loraDirectory);
        long seed = request.Seed ?? Random.Shared.NextInt64(0, 1L << 32);
        // custom timesteps replace the step count (diffusers' retrieve_timesteps): the result's request records the steps run
        var asRun = WithCropSize(request with { Seed = seed, Steps = request.Timesteps?.Count ?? request.Steps });
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            ValidateIPAdapter(request, HasIPAdapter);
            cancellationToken.ThrowIfCancellationRequested();
            var clock = Stopwatch.StartNew();
            var scheduler = SchedulerFor(request.Scheduler);
            _loras.Apply(request.Loras);   // exactly the request's adapters: none gives the base model
            // the request's FreeU for this run only: the UNet's own state (off, or what was set on Pipeline) comes back after
            // it, also when the run throws or is cancelled
            var unet = _pipe?.Unet ?? _xl!.Unet;
            var freeUBefore = unet.SaveFreeU();
            // the request's IP-Adapter scale likewise: the adapter's scale comes back after the run
            var ipScalesBefore = unet.SaveIPAdapterScales();
            try
            {
                if (request.FreeU is { } f) unet.EnableFreeU(f.S1, f.S2, f.B1, f.B2);
                if (request.IPAdapterScale is double ipScale) unet.SetIPAdapterScale(ipScale);
                // a no-GC region from here to the PNGs, renewed at every step (see StepReporter)
                using var reporter = new StepReporter(this, progress, cancellationToken);
                using var output = Run(asRun, seed, scheduler, reporter, cancellationToken);
                var pngs = output.Images.Select(i => i.ToPng()).ToList();
                return new GenerationResult(pngs, seed, asRun, clock.Elapsed);
            }
            finally
            {
                unet.RestoreFreeU(freeUBefore);
                unet.RestoreIPAdapterScales(ipScalesBefore);
            }
        }
    }

    /// <summary>The service's scheduler of <paramref name="name"/> (a class or an alias; null: the model's own), built at its first use.</summary>
    private IScheduler SchedulerFor(string? name)
    {
        // the class and its settings, so that a class and an alias of the same scheduler share one; an unknown name is its
        // own key (Build throws for it, nothing is kept)
        string key = name is null ? ""
            : SchedulerAliases.TryResolve(name, out var className, out var settings) ? className + string.Concat(settings.Select(s => $";{s.Key}={s.Json}"))
            : name;
        if (!_schedulers.TryGetValue(key, out var scheduler))
            _schedulers[key] = scheduler = SchedulerAliases.Build(name!, _schedulerConfig);
        return scheduler;
    }

    private ImagePipelineOutput Run(GenerationRequest r, long seed, IScheduler scheduler, StepReporter rep, CancellationToken ct)
    {
        PromptInput negative = r.NegativePrompt is null ? default : r.NegativePrompt;
        if (_pipe is null) return RunXL(r, negative, seed, scheduler, rep, ct);
        if (_family!.Refusal(r, ModelId) is { } refusal) throw new DiffusersException(refusal);
        var call = new ServedCall(r, seed, scheduler, rep.OnStepEnd, rep, ct);
        bool inpaintModel = _pipe.Unet.Config.InChannels == 9;
        if (r.InitImage is null)
        {
            if (inpaintModel)
                throw new DiffusersException($"{ModelId} is an inpainting model: give an image and a mask (/v1/images/edits)");
            return _family.TextToImage(call);
        }
        if (r.PaddingMaskCrop is int pad) return RunMaskCrop(r, pad, negative, seed, scheduler, rep, ct);
        var init = Fit(r.InitImage.ToRgb(), r.Width, r.Height);
        if (r.Mask is null)
        {
            if (inpaintModel)
                throw new DiffusersException($"{ModelId} is an inpainting model: give a mask with the image");
            return _family.ImageToImage(call, init);
        }
        var inpaint = InpaintPipeline(scheduler);
        var mask = Fit(r.Mask, init.Width, init.Height);
        // the image's size rounded down to a multiple of the VAE scale factor, as diffusers' img2img sizes its image
        // (the inpaint pipeline refuses a height or width that is not a multiple; the pipeline resizes image and mask to it)
        int vsf = inpaint.VaeScaleFactor;
        int height = init.Height - init.Height % vsf, width = init.Width - init.Width % vsf;
        if (height == 0 || width == 0)
            throw new DiffusersException($"image: the image is {init.Width}x{init.Height} pixels, smaller than one block of {vsf} pixels");
        return inpaint.Generate(r.Prompt, init, mask, r.Strength ?? 1.0, height, width, negative, r.GuidanceScale, r.Count,
            r.Steps, seed: seed, callbackOnStepEnd: rep.OnStepEnd, progress: rep, cancellationToken: ct,
            ipAdapterImage: r.IPAdapterImage, timesteps: r.Timesteps);
    }

    /// <summary>
    /// Inpainting of the area around the mask (diffusers' <c>padding_mask_crop</c>): the image as it is, the mask resized
    /// to it, the request's size (or the pipeline's default) the size the crop is inpainted at; the pipeline refuses what
    /// diffusers refuses (a 9-channel UNet) in its words.
    /// </summary>
    private ImagePipelineOutput RunMaskCrop(GenerationRequest r, int pad, PromptInput negative, long seed, IScheduler scheduler,
        StepReporter rep, CancellationToken ct)
    {
        var inpaint = InpaintPipeline(scheduler);
        var init = r.InitImage!.ToRgb();
        var mask = Fit(r.Mask!, init.Width, init.Height);
        return inpaint.Generate(r.Prompt, init, mask, r.Strength ?? 1.0, r.Height, r.Width, negative, r.GuidanceScale, r.Count,
            r.Steps, seed: seed, callbackOnStepEnd: rep.OnStepEnd, progress: rep, cancellationToken: ct, paddingMaskCrop: pad,
            ipAdapterImage: r.IPAdapterImage, timesteps: r.Timesteps);
    }

    /// <summary>
    /// A <see cref="GenerationRequest.PaddingMaskCrop"/> request with the size its area is inpainted at filled in (the
    /// pipeline's default, <c>unet.config.sample_size * vae_scale_factor</c>, where the request gives none), so that the
    /// result's request records the size the run had: the output, the image put back together, does not show it. Any other
    /// request as it is.
    /// </summary>
    private GenerationRequest WithCropSize(GenerationRequest r)
    {
        if (r.PaddingMaskCrop is null || _pipe is null || (r.Width is not null && r.Height is not null)) return r;
        if (_pipe.Unet.Config.SampleSize is not { Length: > 0 }) return r;   // the pipeline refuses it, naming sample_size
        var (height, width) = _pipe.DefaultSize();
        return r with { Height = r.Height ?? height, Width = r.Width ?? width };
    }

    /// <summary>The loaded pipeline when it is an inpainting one, else one around its components; with <paramref name="scheduler"/>.</summary>
    private StableDiffusionInpaintPipeline InpaintPipeline(IScheduler scheduler) =>
        ServedFamily.WithScheduler(_pipe as StableDiffusionInpaintPipeline,
            s => new StableDiffusionInpaintPipeline(_pipe!, s), scheduler);

    /// <summary>SDXL: text to image only (the guidance scale and sizes of the request, the model's defaults otherwise).</summary>
    private ImagePipelineOutput RunXL(GenerationRequest r, PromptInput negative, long seed, IScheduler scheduler, StepReporter rep, CancellationToken ct)
    {
        if (r.InitImage is not null)
            throw new DiffusersException($"image: {ModelId} is an SDXL model; the service runs SDXL text to image only (no image or mask)");
        _xl!.Scheduler = scheduler;
        return _xl.Generate(r.Prompt, height: r.Height, width: r.Width, numInferenceSteps: r.Steps, guidanceScale: r.GuidanceScale,
            negativePrompt: negative, numImagesPerPrompt: r.Count, seed: seed, callbackOnStepEnd: rep.OnStepEnd, progress: rep,
            cancellationToken: ct, timesteps: r.Timesteps, ipAdapterImage: r.IPAdapterImage);
    }

    /// <summary>The image resized to the requested size when one is given and differs.</summary>
    private static Image Fit(Image image, int? width, int? height)
    {
        int w = width ?? image.Width, h = height ?? image.Height;
        return w == image.Width && h == image.Height ? image : ImageResize.Resize(image, w, h);
    }

    private byte[]? PreviewPng(TorchSharp.torch.Tensor latents)
    {
        if (Taesd is { } taesd) return taesd.Preview(latents).ToPng();
        return LatentRgbPreview.Supports(latents) ? LatentRgbPreview.Preview(latents, 0, _pipe?.VaeScaleFactor ?? _xl!.VaeScaleFactor, ((ILatentDiffusionPipeline?)_pipe ?? _xl!).LatentSpace).ToPng() : null;
    }

    private static long CountParameterBytes(DiffusionPipeline pipeline)
    {
        long total = 0;
        foreach (var c in pipeline.Components.Values)
            if (c is torch.nn.Module m)
            {
                foreach (var p in m.parameters()) total += p.numel() * p.element_size();
                foreach (var b in m.buffers()) total += b.numel() * b.element_size();
            }
        return total;
    }

    /// <summary>Frees the pipeline's models and the service's schedulers (after the run in progress, if any).</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            _pipeline.Dispose();   // the models and the scheduler the pipeline holds now, one of the service's
            foreach (var scheduler in _schedulers.Values) scheduler.Dispose();   // a second Dispose does nothing
        }
    }

    /// <summary>
    /// Turns the pipeline's step-end callback and progress into <see cref="GenerationProgress"/> reports, and holds
    /// collections off while the run's torch calls are in flight: from its creation to its disposal, in a
    /// <see cref="NoGcRegion"/> started anew at every step's end. The service runs beside threads that allocate (the
    /// server's request threads, an <c>IImageGenerator</c>'s host): a collection one of them triggered during a native
    /// call could finalize a TorchSharp <c>Scalar</c> that call still uses. Renewed every step, so that a budget used up
    /// by other threads (the runtime then collects and ends the region) leaves at most one step unprotected; the renewal's
    /// collection, if it runs one, happens here, between this thread's native calls.
    /// </summary>
    private sealed class StepReporter(GenerationService owner, IProgress<GenerationProgress>? target, CancellationToken ct)
        : IProgress<PipelineProgress>, IDisposable
    {
        private byte[]? _preview;
        private NoGcRegion _region = NoGcRegion.Enter();

        public void OnStepEnd(int step, double timestep, IDictionary<string, torch.Tensor> tensors)
        {
            _region.Dispose();
            _region = NoGcRegion.Enter();
            ct.ThrowIfCancellationRequested();
            if (target is not null && owner.PreviewEvery > 0 && (step + 1) % owner.PreviewEvery == 0)
                _preview = owner.PreviewPng(tensors[DenoisingContext.LatentsKey]);
        }

        public void Report(PipelineProgress value)
        {
            var preview = value.Step < value.TotalSteps ? _preview : null;
            _preview = null;
            target?.Report(new GenerationProgress(value.Step, value.TotalSteps, value.SecondsPerStep, value.Remaining, preview));
        }

        public void Dispose() => _region.Dispose();
    }
}
