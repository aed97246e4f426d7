using System.CommandLine;
using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using TorchSharp;

namespace DiffusersSharp.Cli;

/// <summary>
/// The T2I-Adapter options of <c>diffusers generate</c> for Stable Diffusion and SDXL base folders:
/// <c>--adapter &lt;folder|id[@rev]&gt;</c> (<see cref="WeightSource.Repository"/>) and <c>--adapter-image &lt;file&gt;</c>,
/// repeatable and paired by order (one image per adapter; read greyscale for an adapter of one input channel, else RGB),
/// and <c>--adapter-scale</c> (one value for every adapter, or one per adapter; default 1.0). Text to image only, with
/// <see cref="StableDiffusionAdapterPipeline"/> or <see cref="StableDiffusionXLAdapterPipeline"/>.
/// </summary>
public sealed class AdapterOptions
{
    private readonly Option<string[]> _adapter = new("--adapter")
    {
        Description = "T2I-Adapter folder or Hub id, at a revision with org/name@rev (default main; repeatable: a MultiAdapter; paired with --adapter-image by order)",
        DefaultValueFactory = _ => [],
    };
    private readonly Option<string[]> _image = new("--adapter-image")
    {
        Description = "Control image for the T2I-Adapter of the same position (repeatable; greyscale for a one-channel adapter)", DefaultValueFactory = _ => [],
    };
    private readonly Option<double[]> _scale = new("--adapter-scale")
    {
        Description = "adapter_conditioning_scale: one value, or one per --adapter (default 1.0)", DefaultValueFactory = _ => [],
    };

    /// <summary>The parsed values.</summary>
    public sealed record Values(string[]? Adapters = null, string[]? Images = null, double[]? Scales = null)
    {
        /// <summary>The adapters, in order.</summary>
        public IReadOnlyList<string> Paths => Adapters ?? [];

        /// <summary>The control images, in order.</summary>
        public IReadOnlyList<string> AdapterImages => Images ?? [];

        /// <summary>The first option given, for messages (null when none).</summary>
        public string? FirstGiven => Paths.Count > 0 ? "--adapter" : AdapterImages.Count > 0 ? "--adapter-image"
            : Scales is { Length: > 0 } ? "--adapter-scale" : null;

        /// <summary>True when any T2I-Adapter option was given.</summary>
        public bool Any => FirstGiven is not null;

        /// <summary><c>--adapter-scale</c> values, or null when none were given (the pipeline's default).</summary>
        public IReadOnlyList<double>? ScaleOrDefault => Scales is { Length: > 0 } s ? s : null;

        /// <summary>What can be checked before loading a model: counts, ranges and files.</summary>
        public void CheckWithoutModel()
        {
            if (!Any) return;
            if (Paths.Count == 0) throw new UserException($"{FirstGiven} needs --adapter <folder|id>");
            if (AdapterImages.Count != Paths.Count)
                throw new UserException($"--adapter-image: {AdapterImages.Count} control image(s) for {Paths.Count} --adapter(s); give one per adapter, in the same order");
            if (Scales is { Length: > 1 } && Scales.Length != Paths.Count)
                throw new UserException($"--adapter-scale: {Scales.Length} values for {Paths.Count} --adapter(s); give one value, or one per adapter");
            foreach (var s in Scales ?? [])
                if (!double.IsFinite(s) || Math.Abs(s) > 100) throw new UserException($"--adapter-scale must be a number between -100 and 100, got {s}");
            foreach (var f in AdapterImages)
                if (!File.Exists(f)) throw new UserException($"--adapter-image: file not found: {f}");
        }
    }

    /// <summary>Creates the options.</summary>
    public static AdapterOptions Create() => new();

    /// <summary>Adds the options to <paramref name="cmd"/>.</summary>
    public void AddTo(Command cmd)
    {
        foreach (var o in new Option[] { _adapter, _image, _scale }) cmd.Options.Add(o);
    }

    /// <summary>Reads the parsed values.</summary>
    public Values Read(ParseResult pr) => new(pr.GetValue(_adapter), pr.GetValue(_image), pr.GetValue(_scale));

    /// <summary>
    /// The route of <c>--adapter</c>: it takes the request on every text-conditioned class (<see cref="IGenerateRoute.TextConditioned"/>)
    /// and runs the Stable Diffusion and SDXL base ones, refusing the others with a message naming them.
    /// </summary>
    internal sealed class Route : IGenerateRoute
    {
        public bool Claims(string className) => GenerateRoutes.IsTextConditioned(className, except: this);
        public bool Takes(GenerateCommand.Request r) => r.Adapter.Any;
        public bool TextConditioned => true;
        public ImagePipelineOutput Execute(GenerateRun g) =>
            AdapterOptions.Execute(g.Ctx, g.Request, g.Folder, g.ClassName, StableDiffusionXLOptions.IsStableDiffusionXL(g.ClassName), g.Options, g.OutputType);
    }

    /// <summary>
    /// Runs the T2I-Adapter pipeline of <paramref name="folder"/>'s family (Stable Diffusion or SDXL base, text to image);
    /// the caller saves the result. The adapters are loaded with the run's <paramref name="options"/> but for the
    /// revision, which is the model's; an adapter's is its own <c>@rev</c>.
    /// </summary>
    public static ImagePipelineOutput Execute(CliContext ctx, GenerateCommand.Request r, string folder, string className, bool xl,
        LoadOptions options, OutputType outputType)
    {
        var o = r.StableDiffusion;
        var a = r.Adapter;
        if (o.Prompt is null) throw new UserException($"{className} needs --prompt");
        if (File.Exists(folder))
            throw new UserException($"--adapter runs on a diffusers pipeline folder or Hub id, not a single-file checkpoint ({folder}); convert it with 'diffusers convert' first");
        string baseClass = xl ? StableDiffusionXLPipeline.Name : StableDiffusionPipeline.Name;
        if (className != baseClass)
            throw new UserException($"--adapter runs on a text-to-image base folder ({StableDiffusionPipeline.Name} or {StableDiffusionXLPipeline.Name}); {folder} is a {className}");
        if (r.ControlNet.FirstGiven is { } control) throw new UserException($"{control} and --adapter cannot be combined (one guidance model per run)");
        IPAdapterOptions.Refuse(r.IPAdapter, xl ? StableDiffusionXLAdapterPipeline.Name : StableDiffusionAdapterPipeline.Name, "diffusers 0.25.1's T2I-Adapter pipelines have no ip_adapter_image");
        foreach (var (given, option) in new[] { (o.InitImage, "--init-image"), (o.Mask, "--mask"), (r.StableDiffusionXL.Refiner, "--refiner") })
            if (given is not null) throw new UserException($"{option} is not available with --adapter (diffusers' T2I-Adapter pipelines are text to image only)");
        if (!xl && o.GuidanceRescale is not null)
            throw new UserException("--guidance-rescale is not available with --adapter on Stable Diffusion models (diffusers' StableDiffusionAdapterPipeline has no guidance_rescale)");
        if (xl && r.Components.FirstGiven is { } component)
            throw new UserException($"{component} is not available with --adapter on SDXL models yet");
        options = options with { Log = ctx.Warn };
        using var pipe = NativeFailures.During($"loading {folder} with {string.Join(", ", a.Paths)}", () => Load(folder, a.Paths, options, xl));
        var adapters = xl ? ((StableDiffusionXLAdapterPipeline)pipe).Adapters : ((StableDiffusionAdapterPipeline)pipe).Adapters;
        var images = a.AdapterImages.Select((f, k) => (ImageInput)LoadImage(f, adapters[k].Config.InChannels == 1)).ToList();
        var first = images[0].Images![0];
        RunMemory.CheckStableDiffusion(folder, r.Batch, o.Height ?? first.Height, o.Width ?? first.Width);
        int steps = o.StepsOr(r.Steps);
        return xl ? RunXL(ctx, r, (StableDiffusionXLAdapterPipeline)pipe, images, steps, folder, options, outputType)
            : Run(ctx, r, (StableDiffusionAdapterPipeline)pipe, images, steps, folder, options, outputType);
    }

    private static ImagePipelineOutput Run(CliContext ctx, GenerateCommand.Request r, StableDiffusionAdapterPipeline pipe,
        List<ImageInput> images, int steps, string folder, LoadOptions options, OutputType outputType)
    {
        var o = r.StableDiffusion;
        ComponentOptions.Apply(ctx, r.Components, pipe, options.CacheDir);
        using var prepared = PipelineOptions.Prepare(ctx, r, pipe, options.CacheDir);
        double guidance = o.Guidance ?? 7.5;
        ctx.Out.WriteLine($"{pipe.ClassName} · {pipe.Adapters.Count} T2I-Adapter(s) · {pipe.Scheduler.ClassName} · {steps} steps · batch {r.Batch} · guidance {guidance} · seed {(r.Seed?.ToString() ?? "random")} · {pipe.Unet.DType}");
        return NativeFailures.During($"generating with {folder} (--batch {r.Batch}, {steps} steps)", () => ProgressDisplay.Run(ctx, steps,
            progress => pipe.Generate(o.Prompt, images, o.Height, o.Width, steps, guidance, o.NegativePrompt, r.Batch, r.Eta ?? 0.0, r.Seed,
                outputType: outputType, adapterConditioningScale: r.Adapter.ScaleOrDefault, clipSkip: o.ClipSkip,
                callbackOnStepEnd: prepared.OnStepEnd, progress: progress, cancellationToken: ctx.CancellationToken, timesteps: o.CustomTimesteps)));
    }

    private static ImagePipelineOutput RunXL(CliContext ctx, GenerateCommand.Request r, StableDiffusionXLAdapterPipeline pipe,
        List<ImageInput> images, int steps, string folder, LoadOptions options, OutputType outputType)
    {
        var o = r.StableDiffusion;
        var x = r.StableDiffusionXL;
        using var prepared = PipelineOptions.Prepare(ctx, r, pipe, options.CacheDir);
        double guidance = o.Guidance ?? 5.0;
        ctx.Out.WriteLine($"{pipe.ClassName} · {pipe.Adapters.Count} T2I-Adapter(s) · {pipe.Scheduler.ClassName} · {steps} steps · batch {r.Batch} · guidance {guidance} · seed {(r.Seed?.ToString() ?? "random")} · {pipe.Unet.DType}");
        using var generator = r.Seed is long seed ? new torch.Generator((ulong)seed) : null;
        return NativeFailures.During($"generating with {folder} (--batch {r.Batch}, {steps} steps)", () => ProgressDisplay.Run(ctx, steps,
            progress => pipe.Generate(o.Prompt, images, x.Prompt2, o.Height, o.Width, steps, guidanceScale: guidance,
                negativePrompt: o.NegativePrompt, negativePrompt2: x.NegativePrompt2, numImagesPerPrompt: r.Batch, eta: r.Eta ?? 0.0,
                generator: generator, outputType: outputType, guidanceRescale: o.GuidanceRescale ?? 0.0,
                originalSize: x.OriginalHeightWidth, cropsCoordsTopLeft: x.CropTopLeft, targetSize: x.TargetHeightWidth,
                adapterConditioningScale: r.Adapter.ScaleOrDefault, clipSkip: o.ClipSkip, callbackOnStepEnd: prepared.OnStepEnd,
                progress: progress, cancellationToken: ctx.CancellationToken, timesteps: o.CustomTimesteps)));
    }

    private static Image LoadImage(string path, bool grayscale)
    {
        try
        {
            return Image.LoadImage(path, grayscale);
        }
        catch (DiffusersException e)
        {
            throw new UserException($"--adapter-image: {e.Message}");
        }
    }

    /// <summary>Loads the adapters, then the pipeline that takes them; the adapters are disposed if the pipeline cannot be built.</summary>
    private static DiffusionPipeline Load(string folder, IReadOnlyList<string> paths, LoadOptions options, bool xl)
    {
        var loaded = new List<T2IAdapter>();
        try
        {
            foreach (var path in paths)
            {
                var (id, revision) = WeightSource.Repository(path);
                loaded.Add(WeightSource.Load("--adapter", path, () => T2IAdapter.FromPretrained(id, null, options with { Revision = revision })));
            }
            torch.nn.Module adapter = loaded.Count == 1 ? loaded[0] : new MultiAdapter(loaded);
            return xl ? StableDiffusionXLAdapterPipeline.FromPretrained(folder, adapter, options)
                : StableDiffusionAdapterPipeline.FromPretrained(folder, adapter, options);
        }
        catch (Exception e) when (e is ArgumentException or ConfigException)
        {
            foreach (var ad in loaded) ad.Dispose();
            throw new UserException($"--adapter: {e.Message}");
        }
        catch
        {
            foreach (var ad in loaded) ad.Dispose();
            throw;
        }
    }
}
