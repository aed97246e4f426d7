using System.CommandLine;
using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using TorchSharp;

namespace DiffusersSharp.Cli;

/// <summary>
/// The ControlNet options of <c>diffusers generate</c> for Stable Diffusion folders: <c>--controlnet &lt;folder|id[@rev]&gt;</c>
/// (<see cref="WeightSource.Repository"/>) and <c>--control-image &lt;file&gt;</c>, repeatable and paired by order (one image per net); <c>--control-scale</c>
/// (one value for every net, or one per net; default 1.0 for txt2img, 0.8 for img2img, 0.5 for inpainting),
/// <c>--control-start</c> / <c>--control-end</c> (the fraction of the steps each net acts in; one value or one per net)
/// and <c>--guess-mode</c>. With <c>--init-image</c> the run is ControlNet img2img, with <c>--mask</c> ControlNet inpainting.
/// </summary>
public sealed class ControlNetOptions
{
    private readonly Option<string[]> _controlnet = new("--controlnet")
    {
        Description = "ControlNet folder or Hub id, at a revision with org/name@rev (default main; repeatable; paired with --control-image by order)", DefaultValueFactory = _ => [],
    };
    private readonly Option<string[]> _image = new("--control-image")
    {
        Description = "Control image for the ControlNet of the same position (repeatable)", DefaultValueFactory = _ => [],
    };
    private readonly Option<double[]> _scale = new("--control-scale")
    {
        Description = "controlnet_conditioning_scale: one value, or one per --controlnet (default 1.0; img2img 0.8; inpaint 0.5)",
        DefaultValueFactory = _ => [],
    };
    private readonly Option<double[]> _start = new("--control-start")
    {
        Description = "control_guidance_start in [0, 1): one value, or one per --controlnet (default 0)", DefaultValueFactory = _ => [],
    };
    private readonly Option<double[]> _end = new("--control-end")
    {
        Description = "control_guidance_end in (0, 1]: one value, or one per --controlnet (default 1)", DefaultValueFactory = _ => [],
    };
    private readonly Option<bool> _guess = new("--guess-mode") { Description = "ControlNet guess mode (the nets see only the prompt half of the guidance batch)" };

    /// <summary>The parsed values.</summary>
    public sealed record Values(string[]? Controlnets = null, string[]? Images = null, double[]? Scales = null,
        double[]? Starts = null, double[]? Ends = null, bool GuessMode = false)
    {
        /// <summary>The ControlNets, in order.</summary>
        public IReadOnlyList<string> Nets => Controlnets ?? [];

        /// <summary>The control images, in order.</summary>
        public IReadOnlyList<string> ControlImages => Images ?? [];

        /// <summary>The first option given, for messages (null when none).</summary>
        public string? FirstGiven => Nets.Count > 0 ? "--controlnet" : ControlImages.Count > 0 ? "--control-image"
            : Scales is { Length: > 0 } ? "--control-scale" : Starts is { Length: > 0 } ? "--control-start"
            : Ends is { Length: > 0 } ? "--control-end" : GuessMode ? "--guess-mode" : null;

        /// <summary>True when any ControlNet option was given.</summary>
        public bool Any => FirstGiven is not null;

        /// <summary><c>--control-scale</c> values, or null when none were given (the pipeline's default).</summary>
        public IReadOnlyList<double>? ScaleOrDefault => Scales is { Length: > 0 } s ? s : null;

        /// <summary><c>--control-start</c> values, or null when none were given (the pipeline's default).</summary>
        public IReadOnlyList<double>? StartOrDefault => Starts is { Length: > 0 } s ? s : null;

        /// <summary><c>--control-end</c> values, or null when none were given (the pipeline's default).</summary>
        public IReadOnlyList<double>? EndOrDefault => Ends is { Length: > 0 } s ? s : null;

        /// <summary>What can be checked before loading a model: counts, ranges and files.</summary>
        public void CheckWithoutModel()
        {
            if (!Any) return;
            if (Nets.Count == 0) throw new UserException($"{FirstGiven} needs --controlnet <folder|id>");
            if (ControlImages.Count != Nets.Count)
                throw new UserException($"--control-image: {ControlImages.Count} control image(s) for {Nets.Count} --controlnet(s); give one per net, in the same order");
            foreach (var (name, values) in new[] { ("--control-scale", Scales), ("--control-start", Starts), ("--control-end", Ends) })
                if (values is { Length: > 1 } && values.Length != Nets.Count)
                    throw new UserException($"{name}: {values.Length} values for {Nets.Count} --controlnet(s); give one value, or one per net");
            foreach (var s in Scales ?? [])
                if (!double.IsFinite(s) || Math.Abs(s) > 100) throw new UserException($"--control-scale must be a number between -100 and 100, got {s}");
            for (int k = 0; k < Nets.Count; k++)
            {
                double start = At(Starts, k, 0.0), end = At(Ends, k, 1.0);
                if (!(start >= 0 && start < end && end <= 1))
                    throw new UserException($"--control-start / --control-end: net {k + 1} acts from {start} to {end}; need 0 ≤ start < end ≤ 1");
            }
            foreach (var f in ControlImages)
                if (!File.Exists(f)) throw new UserException($"--control-image: file not found: {f}");
        }

        private static double At(double[]? values, int k, double fallback) =>
            values is null || values.Length == 0 ? fallback : values.Length == 1 ? values[0] : values[k];
    }

    /// <summary>Creates the options.</summary>
    public static ControlNetOptions Create() => new();

    /// <summary>Adds the options to <paramref name="cmd"/>.</summary>
    public void AddTo(Command cmd)
    {
        foreach (var o in new Option[] { _controlnet, _image, _scale, _start, _end, _guess }) cmd.Options.Add(o);
    }

    /// <summary>Reads the parsed values.</summary>
    public Values Read(ParseResult pr) => new(pr.GetValue(_controlnet), pr.GetValue(_image), pr.GetValue(_scale),
        pr.GetValue(_start), pr.GetValue(_end), pr.GetValue(_guess));

    /// <summary>
    /// The route of <c>--controlnet</c> (<see cref="IGenerateRoute"/>): on the Stable Diffusion classes it runs
    /// <see cref="Execute"/>, on the SDXL ones <see cref="StableDiffusionXLControlNetGenerate.Execute"/>.
    /// </summary>
    internal sealed class Route : IGenerateRoute
    {
        public bool Claims(string className) => StableDiffusionOptions.IsStableDiffusion(className) || StableDiffusionXLOptions.IsStableDiffusionXL(className);
        public bool Takes(GenerateCommand.Request r) => r.ControlNet.Any;
        public bool TextConditioned => true;
        public ImagePipelineOutput Execute(GenerateRun g) => StableDiffusionXLOptions.IsStableDiffusionXL(g.ClassName)
            ? StableDiffusionXLControlNetGenerate.Execute(g.Ctx, g.Request, g.Folder, g.ClassName, g.Options, g.OutputType)
            : ControlNetOptions.Execute(g.Ctx, g.Request, g.Folder, g.ClassName, g.Options, g.OutputType);
    }

    /// <summary>
    /// Runs a ControlNet txt2img, img2img (<c>--init-image</c>) or inpainting (<c>--mask</c>) pipeline on a Stable Diffusion
    /// folder; the caller saves the result. The nets are loaded with the run's <paramref name="options"/> but for the
    /// revision, which is the model's; a net's is its own <c>@rev</c> (<see cref="WithNets{T}"/>).
    /// </summary>
    public static ImagePipelineOutput Execute(CliContext ctx, GenerateCommand.Request r, string folder, string className,
        LoadOptions options, OutputType outputType)
    {
        var o = r.StableDiffusion;
        var c = r.ControlNet;
        if (o.Prompt is null) throw new UserException($"{className} needs --prompt");
        if (File.Exists(folder))
            throw new UserException($"--controlnet runs on a diffusers pipeline folder or Hub id, not a single-file checkpoint ({folder}); convert it with 'diffusers convert' first");
        if (className == StableDiffusionInpaintPipeline.Name && o.Mask is null)
            throw new UserException($"{folder} is an inpainting model ({className}): give --init-image and --mask");
        if (o.GuidanceRescale is not null)
            throw new UserException("--guidance-rescale is not available with --controlnet (diffusers' ControlNet pipelines have no guidance_rescale)");
        StableDiffusionOptions.RefusePaddingMaskCrop(o, StableDiffusionControlNetInpaintPipeline.Name);
        if (o.Mask is not null) StableDiffusionOptions.RefuseTimesteps(o, StableDiffusionControlNetInpaintPipeline.Name);
        else if (o.InitImage is not null) StableDiffusionOptions.RefuseTimesteps(o, StableDiffusionControlNetImg2ImgPipeline.Name);
        Image? init = o.InitImage is null ? null : InputImage.Load(o.InitImage, "--init-image");
        Image? mask = o.Mask is null ? null : InputImage.Load(o.Mask, "--mask");
        var controls = c.ControlImages.Select(f => InputImage.Load(f, "--control-image")).ToList();
        var controlImages = controls.Select(i => (ImageInput)i).ToList();
        options = options with { Log = ctx.Warn };
        var size = init ?? controls[0];
        RunMemory.CheckStableDiffusion(folder, r.Batch, o.Height ?? size.Height, o.Width ?? size.Width);

        using StableDiffusionControlNetPipelineBase pipe = NativeFailures.During($"loading {folder} with {string.Join(", ", c.Nets)}",
            () => Load(folder, c.Nets, options, init is not null, mask is not null));
        ComponentOptions.Apply(ctx, r.Components, pipe, options.CacheDir);
        var ipAdapterImage = IPAdapterOptions.Apply(ctx, r.IPAdapter, pipe, options.CacheDir);
        using var prepared = PipelineOptions.Prepare(ctx, r, pipe, options.CacheDir);
        int steps = o.StepsOr(r.Steps);
        double guidance = o.Guidance ?? 7.5;
        var (scale, start, end) = (c.ScaleOrDefault, c.StartOrDefault, c.EndOrDefault);
        ctx.Out.WriteLine($"{pipe.ClassName} · {pipe.Nets.Count} ControlNet(s) · {pipe.Scheduler.ClassName} · {steps} steps · batch {r.Batch} · guidance {guidance} · seed {(r.Seed?.ToString() ?? "random")} · {pipe.Unet.DType}");
        return NativeFailures.During($"generating with {folder} (--batch {r.Batch}, {steps} steps)", () => ProgressDisplay.Run(ctx, steps, progress => pipe switch
        {
            StableDiffusionControlNetInpaintPipeline p => p.Generate(o.Prompt, init, mask, controlImages, o.Height, o.Width, o.Strength ?? 1.0,
                steps, guidance, o.NegativePrompt, r.Batch, r.Eta ?? 0.0, r.Seed, outputType: outputType, controlnetConditioningScale: scale,
                guessMode: c.GuessMode, controlGuidanceStart: start, controlGuidanceEnd: end, clipSkip: o.ClipSkip, callbackOnStepEnd: prepared.OnStepEnd, progress: progress,
                cancellationToken: ctx.CancellationToken, ipAdapterImage: ipAdapterImage),
            StableDiffusionControlNetImg2ImgPipeline p => p.Generate(o.Prompt, init, controlImages, o.Height, o.Width, o.Strength ?? 0.8,
                steps, guidance, o.NegativePrompt, r.Batch, r.Eta ?? 0.0, r.Seed, outputType: outputType, controlnetConditioningScale: scale,
                guessMode: c.GuessMode, controlGuidanceStart: start, controlGuidanceEnd: end, clipSkip: o.ClipSkip, callbackOnStepEnd: prepared.OnStepEnd, progress: progress,
                cancellationToken: ctx.CancellationToken, ipAdapterImage: ipAdapterImage),
            StableDiffusionControlNetPipeline p => p.Generate(o.Prompt, controlImages, o.Height, o.Width, steps, guidance, o.NegativePrompt,
                r.Batch, r.Eta ?? 0.0, r.Seed, outputType: outputType, controlnetConditioningScale: scale, guessMode: c.GuessMode,
                controlGuidanceStart: start, controlGuidanceEnd: end, clipSkip: o.ClipSkip, callbackOnStepEnd: prepared.OnStepEnd, progress: progress,
                cancellationToken: ctx.CancellationToken, ipAdapterImage: ipAdapterImage, timesteps: o.CustomTimesteps),
            _ => throw new UserException($"{pipe.ClassName} is not supported by 'generate'"),
        }));
    }

    /// <summary>Loads the nets, then the pipeline that takes them; the nets are disposed if the pipeline cannot be built.</summary>
    private static StableDiffusionControlNetPipelineBase Load(string folder, IReadOnlyList<string> nets, LoadOptions options, bool img2img, bool inpaint) =>
        WithNets(nets, options, controlnet => inpaint ? StableDiffusionControlNetInpaintPipeline.FromPretrained(folder, controlnet, options)
            : img2img ? StableDiffusionControlNetImg2ImgPipeline.FromPretrained(folder, controlnet, options)
            : (StableDiffusionControlNetPipelineBase)StableDiffusionControlNetPipeline.FromPretrained(folder, controlnet, options));

    /// <summary>
    /// Loads the <paramref name="nets"/> (one <see cref="ControlNetModel"/>, or a <see cref="MultiControlNetModel"/> of
    /// several) and builds the pipeline that takes them; the nets are disposed if the pipeline cannot be built. A net's Hub
    /// id is read at the revision after it (<c>org/name@rev</c>, <see cref="WeightSource.Repository"/>), else main, never at
    /// <c>--revision</c>, which is the model's (a branch or commit of one repository, which another repository does not
    /// have), as <see cref="GenerateCommand"/> says.
    /// </summary>
    internal static T WithNets<T>(IReadOnlyList<string> nets, LoadOptions options, Func<torch.nn.Module, T> build)
    {
        var loaded = new List<ControlNetModel>();
        try
        {
            foreach (var net in nets)
            {
                var (id, revision) = WeightSource.Repository(net);
                loaded.Add(WeightSource.Load("--controlnet", net, () => ControlNetModel.FromPretrained(id, null, options with { Revision = revision })));
            }
            return build(loaded.Count == 1 ? loaded[0] : new MultiControlNetModel(loaded));
        }
        catch
        {
            foreach (var net in loaded) net.Dispose();
            throw;
        }
    }
}
