using System.CommandLine;
using System.Globalization;
using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Schedulers;

namespace DiffusersSharp.Cli;

/// <summary>
/// The Stable Diffusion options of <c>diffusers generate</c>: <c>--prompt --negative-prompt --guidance
/// --guidance-rescale --clip-skip --width --height --init-image --strength --mask --padding-mask-crop --freeu --timesteps</c>. The pipeline
/// follows the options: <c>--mask</c> (with <c>--init-image</c>) inpaints, <c>--init-image</c> alone is img2img, otherwise
/// txt2img. <c>--freeu S1,S2,B1,B2</c> is diffusers' <c>pipe.enable_freeu(s1, s2, b1, b2)</c> on every Stable Diffusion, SDXL and
/// ControlNet pipeline the command runs (the SDXL refiner runs without it). <c>--timesteps T1,T2,…</c> is diffusers'
/// <c>timesteps</c> (custom timesteps, e.g. LCM's 999,759,499,259, for a scheduler that takes them) on the pipelines whose
/// 0.25.1 <c>__call__</c> has it: Stable Diffusion and SDXL txt2img, img2img and inpainting, ControlNet txt2img and the
/// T2I-Adapter pipelines; the other routes refuse it naming the class.
/// </summary>
public sealed class StableDiffusionOptions
{
    private readonly Option<string?> _prompt = new("--prompt", "-p") { Description = "Prompt (Stable Diffusion)" };
    private readonly Option<string?> _negative = new("--negative-prompt") { Description = "Negative prompt (Stable Diffusion)" };
    private readonly Option<double?> _guidance = new("--guidance") { Description = "Classifier-free guidance scale (default 7.5; SDXL text to image and image to image 5.0, as diffusers)" };
    private readonly Option<double?> _rescale = new("--guidance-rescale") { Description = "Guidance rescale factor in [0, 1] (txt2img; SDXL also img2img and inpainting)" };
    private readonly Option<int?> _clipSkip = new("--clip-skip") { Description = "Text encoder layers to skip (1 = the pre-final layer)" };
    private readonly Option<int?> _width = new("--width") { Description = "Image width, a multiple of 8 (default: the UNet's sample size × 8)" };
    private readonly Option<int?> _height = new("--height") { Description = "Image height, a multiple of 8" };
    private readonly Option<string?> _init = new("--init-image") { Description = "Init image for img2img / inpainting" };
    private readonly Option<double?> _strength = new("--strength") { Description = "How much to change the init image, in [0, 1] (img2img 0.8, inpaint 1.0; SDXL img2img 0.3, inpaint 0.9999, as diffusers)" };
    private readonly Option<string?> _mask = new("--mask") { Description = "Mask image for inpainting (white = repaint); needs --init-image" };
    private readonly Option<string?> _freeU = new("--freeu")
    {
        Description = "FreeU factors S1,S2,B1,B2 (diffusers' enable_freeu; its documentation: SD 1.5 0.9,0.2,1.2,1.4, SD 2.1 0.9,0.2,1.1,1.2, SDXL 0.6,0.4,1.1,1.2)",
    };
    private readonly Option<string?> _timesteps = new("--timesteps")
    {
        Description = "Custom timesteps T1,T2,... in descending order instead of --steps (diffusers' timesteps, e.g. LCM's 999,759,499,259; schedulers that take them: DDPM, LCM, CMStochasticIterative)",
    };
    private readonly Option<int?> _paddingMaskCrop = new("--padding-mask-crop")
    {
        Description = "Inpaint only the area around the mask, N pixels wider, at the run's size, and paste it back into the init image at its own size (diffusers' padding_mask_crop; Stable Diffusion inpainting with a 4-channel UNet)",
    };

    /// <summary>The parsed values (all optional).</summary>
    public sealed record Values(string? Prompt = null, string? NegativePrompt = null, double? Guidance = null,
        double? GuidanceRescale = null, int? ClipSkip = null, int? Width = null, int? Height = null, string? InitImage = null,
        double? Strength = null, string? Mask = null, int? PaddingMaskCrop = null, string? FreeU = null, string? Timesteps = null)
    {
        /// <summary>The first option given, for messages (null when none).</summary>
        public string? FirstGiven =>
            Prompt is not null ? "--prompt" : NegativePrompt is not null ? "--negative-prompt" : Guidance is not null ? "--guidance"
            : GuidanceRescale is not null ? "--guidance-rescale" : ClipSkip is not null ? "--clip-skip" : Width is not null ? "--width"
            : Height is not null ? "--height" : InitImage is not null ? "--init-image" : Strength is not null ? "--strength"
            : Mask is not null ? "--mask" : PaddingMaskCrop is not null ? "--padding-mask-crop" : FreeU is not null ? "--freeu"
            : Timesteps is not null ? "--timesteps" : null;

        /// <summary>True when any Stable Diffusion option was given.</summary>
        public bool Any => FirstGiven is not null;

        /// <summary>What can be checked before loading a model.</summary>
        public void CheckWithoutModel()
        {
            if (Width is int w && (w <= 0 || w % 8 != 0 || w > Image.MaxSide)) throw new UserException($"--width must be a multiple of 8 between 8 and {Image.MaxSide}, got {w}");
            if (Height is int h && (h <= 0 || h % 8 != 0 || h > Image.MaxSide)) throw new UserException($"--height must be a multiple of 8 between 8 and {Image.MaxSide}, got {h}");
            if (Guidance is double g && !(g >= 0 && g <= MaxGuidance)) throw new UserException($"--guidance must be a number between 0 and {MaxGuidance}, got {g}");
            if (Strength is double s && (double.IsNaN(s) || s < 0 || s > 1)) throw new UserException($"--strength must be in [0, 1], got {s}");
            if (GuidanceRescale is double r && (double.IsNaN(r) || r < 0 || r > 1)) throw new UserException($"--guidance-rescale must be in [0, 1], got {r}");
            if (ClipSkip is < 0) throw new UserException($"--clip-skip must be ≥ 0, got {ClipSkip}");
            _ = FreeUFactors;
            _ = CustomTimesteps;
            if (Mask is not null && InitImage is null) throw new UserException("--mask needs --init-image (the image to inpaint)");
            if (PaddingMaskCrop is < 0) throw new UserException($"--padding-mask-crop is a margin in pixels, 0 or more; got {PaddingMaskCrop}");
            if (PaddingMaskCrop is not null && Mask is null)
                throw new UserException("--padding-mask-crop needs --mask (and --init-image): it crops an inpainting run to the masked area");
            if (Strength is not null && InitImage is null) throw new UserException("--strength needs --init-image");
            if (InitImage is not null && !File.Exists(InitImage)) throw new UserException($"--init-image: file not found: {InitImage}");
            if (Mask is not null && !File.Exists(Mask)) throw new UserException($"--mask: file not found: {Mask}");
            if (InitImage is not null && Mask is null && (Width is not null || Height is not null))
                throw new UserException("img2img keeps the init image's size: --width/--height apply to txt2img and inpainting only");
        }

        /// <summary>
        /// The <c>--freeu</c> factors (null when not given): four finite numbers S1,S2,B1,B2 separated by commas (invariant
        /// culture), any values, as diffusers' <c>enable_freeu</c> takes them; anything else is a <see cref="UserException"/>.
        /// </summary>
        public FreeUFactors? FreeUFactors => FreeU is null ? null : ParseFreeU(FreeU);

        /// <summary>
        /// The <c>--timesteps</c> (null when not given): integers separated by commas (the scheduler checks their order and
        /// range); anything else is a <see cref="UserException"/> quoting it.
        /// </summary>
        public long[]? CustomTimesteps => Timesteps is null ? null : ParseTimesteps(Timesteps);

        /// <summary>The steps a run takes: the count of <c>--timesteps</c>, else <paramref name="steps"/> (--steps), else 50.</summary>
        public int StepsOr(int? steps) => CustomTimesteps?.Length ?? steps ?? 50;

        /// <summary>Calls <paramref name="enableFreeU"/> (a pipeline's <c>EnableFreeU</c>) with the factors when <c>--freeu</c> was given.</summary>
        public void ApplyFreeU(Action<double, double, double, double> enableFreeU)
        {
            if (FreeUFactors is { } f) enableFreeU(f.S1, f.S2, f.B1, f.B2);
        }
    }

    /// <summary><c>--freeu S1,S2,B1,B2</c> as <see cref="Models.FreeUFactors"/>; a malformed value is a <see cref="UserException"/> quoting it.</summary>
    public static FreeUFactors ParseFreeU(string arg)
    {
        var parts = arg.Split(',');
        if (parts.Length != 4)
            throw new UserException($"--freeu '{arg}': expected four numbers S1,S2,B1,B2 separated by commas (e.g. 0.9,0.2,1.2,1.4), got {parts.Length} {(parts.Length == 1 ? "value" : "values")}");
        var values = new double[4];
        for (int i = 0; i < 4; i++)
            if (!double.TryParse(parts[i].Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out values[i]) || !double.IsFinite(values[i]))
                throw new UserException($"--freeu '{arg}': {FreeUNames[i]} '{parts[i].Trim()}' is not a finite number");
        return new FreeUFactors(values[0], values[1], values[2], values[3]);
    }

    private static readonly string[] FreeUNames = ["S1", "S2", "B1", "B2"];

    /// <summary><c>--timesteps T1,T2,…</c> as integers; an empty list or a value that is not an integer is a <see cref="UserException"/> quoting it.</summary>
    public static long[] ParseTimesteps(string arg)
    {
        var parts = arg.Split(',');
        var values = new long[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!long.TryParse(parts[i].Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out values[i]))
                throw new UserException($"--timesteps '{arg}': '{parts[i].Trim()}' is not an integer timestep (expected T1,T2,... in descending order, e.g. 999,759,499,259)");
        return values;
    }

    /// <summary>
    /// Refuses <c>--timesteps</c> on a pipeline whose diffusers 0.25.1 <c>__call__</c> has no <c>timesteps</c>, naming
    /// <paramref name="pipeline"/>.
    /// </summary>
    internal static void RefuseTimesteps(Values o, string pipeline)
    {
        if (o.Timesteps is not null)
            throw new UserException(
                $"--timesteps is not available for {pipeline}: diffusers 0.25.1's {pipeline} has no timesteps argument (use --steps)");
    }

    /// <summary>The largest --guidance (usual values are 1-20; far larger ones only overflow to NaN).</summary>
    public const double MaxGuidance = 1000;

    /// <summary>A new set of the options, to add to one command.</summary>
    public static StableDiffusionOptions Create() => new();

    /// <summary>Adds the options to <paramref name="cmd"/>.</summary>
    public void AddTo(Command cmd)
    {
        foreach (var o in new Option[] { _prompt, _negative, _guidance, _rescale, _clipSkip, _width, _height, _init, _strength, _mask, _paddingMaskCrop, _freeU, _timesteps })
            cmd.Options.Add(o);
    }

    /// <summary>The values parsed for the options.</summary>
    public Values Read(ParseResult pr) => new(pr.GetValue(_prompt), pr.GetValue(_negative), pr.GetValue(_guidance),
        pr.GetValue(_rescale), pr.GetValue(_clipSkip), pr.GetValue(_width), pr.GetValue(_height), pr.GetValue(_init),
        pr.GetValue(_strength), pr.GetValue(_mask), pr.GetValue(_paddingMaskCrop), pr.GetValue(_freeU), pr.GetValue(_timesteps));

    /// <summary>
    /// Whether <paramref name="className"/> is a Stable Diffusion pipeline class the options apply to.
    /// </summary>
    public static bool IsStableDiffusion(string className) =>
        className is StableDiffusionPipeline.Name or StableDiffusionImg2ImgPipeline.Name or StableDiffusionInpaintPipeline.Name;

    /// <summary>
    /// The route of the Stable Diffusion classes without <c>--controlnet</c>, folders and single files; the IP-Adapter options
    /// (<see cref="IPAdapterOptions"/>) are refused on classes other than these and the SDXL ones (<see cref="IGenerateRoute"/>).
    /// </summary>
    internal sealed class Route : IGenerateRoute
    {
        public bool Claims(string className) => IsStableDiffusion(className);
        public bool TextConditioned => true;
        public bool ReadsSingleFiles => true;

        public void RefuseElsewhere(GenerateCommand.Request r, string className)
        {
            if (!Claims(className) && !StableDiffusionXLOptions.IsStableDiffusionXL(className) && className != StableDiffusionInstructPix2PixPipeline.Name
                && className != StableDiffusionPanoramaPipeline.Name && r.IPAdapter.FirstGiven is { } ipOption)
                throw new UserException($"{ipOption} applies to Stable Diffusion 1.x/2.x, SDXL and InstructPix2Pix models ({StableDiffusionPipeline.Name}, {StableDiffusionXLPipeline.Name}, {StableDiffusionInstructPix2PixPipeline.Name}); {r.Model} is a {className}");
        }

        public ImagePipelineOutput Execute(GenerateRun g) => StableDiffusionOptions.Execute(g.Ctx, g.Request, g.Folder, g.ClassName, g.Options, g.OutputType);
    }

    /// <summary>Runs txt2img, img2img or inpainting on a Stable Diffusion folder, as the options ask; the caller saves the result.</summary>
    public static ImagePipelineOutput Execute(CliContext ctx, GenerateCommand.Request r, string folder, string className,
        LoadOptions options, OutputType outputType)
    {
        var o = r.StableDiffusion;
        if (o.Prompt is null) throw new UserException($"{className} needs --prompt");
        if (className == StableDiffusionInpaintPipeline.Name && o.Mask is null)
            throw new UserException($"{folder} is an inpainting model ({className}): give --init-image and --mask");
        if (o.GuidanceRescale is not null && o.InitImage is not null)   // SDXL's img2img and inpaint pipelines have it
            throw new UserException("--guidance-rescale applies to txt2img only (diffusers' StableDiffusionImg2ImgPipeline and StableDiffusionInpaintPipeline have no guidance_rescale)");
        var (init, mask) = InitImageAndMask(r, folder);
        options = options with { Log = ctx.Warn };

        var single = SingleFileConfig.ForGenerate(folder, options, r.SingleFileConfig);   // null: a pipeline folder
        using StableDiffusionPipelineBase pipe = NativeFailures.During<StableDiffusionPipelineBase>($"loading {folder}", () =>
            mask is not null
                ? single is null ? StableDiffusionInpaintPipeline.FromPretrained(folder, options) : StableDiffusionInpaintPipeline.FromSingleFile(folder, single)
                : init is not null
                    ? single is null ? StableDiffusionImg2ImgPipeline.FromPretrained(folder, options) : StableDiffusionImg2ImgPipeline.FromSingleFile(folder, single)
                    : single is null ? StableDiffusionPipeline.FromPretrained(folder, options) : StableDiffusionPipeline.FromSingleFile(folder, single));
        ComponentOptions.Apply(ctx, r.Components, pipe, options.CacheDir);
        var ipAdapterImage = IPAdapterOptions.Apply(ctx, r.IPAdapter, pipe, options.CacheDir);
        using var prepared = PipelineOptions.Prepare(ctx, r, pipe, options.CacheDir);
        int steps = o.StepsOr(r.Steps);
        var timesteps = o.CustomTimesteps;
        double guidance = o.Guidance ?? 7.5;
        ctx.Out.WriteLine($"{pipe.ClassName} · {pipe.Scheduler.ClassName} · {steps} steps · batch {r.Batch} · guidance {guidance} · seed {(r.Seed?.ToString() ?? "random")} · {pipe.Unet.DType}");
        return NativeFailures.During($"generating with {folder} (--batch {r.Batch}, {steps} steps{(o.Width is null ? "" : $", --width {o.Width}")}{(o.Height is null ? "" : $", --height {o.Height}")})", () => ProgressDisplay.Run(ctx, steps, progress => pipe switch
        {
            StableDiffusionInpaintPipeline p when o.PaddingMaskCrop is int pad => AsArray(p.Generate(o.Prompt, init, mask, o.Strength ?? 1.0, o.Height, o.Width,
                o.NegativePrompt, guidance, r.Batch, steps, r.Eta ?? 0.0, r.Seed, clipSkip: o.ClipSkip, outputType: OutputType.Pil,
                callbackOnStepEnd: prepared.OnStepEnd, progress: progress, cancellationToken: ctx.CancellationToken, paddingMaskCrop: pad,
                ipAdapterImage: ipAdapterImage, timesteps: timesteps)),
            StableDiffusionInpaintPipeline p => p.Generate(o.Prompt, init, mask, o.Strength ?? 1.0, o.Height, o.Width, o.NegativePrompt,
                guidance, r.Batch, steps, r.Eta ?? 0.0, r.Seed, clipSkip: o.ClipSkip, outputType: outputType, callbackOnStepEnd: prepared.OnStepEnd, progress: progress,
                cancellationToken: ctx.CancellationToken, ipAdapterImage: ipAdapterImage, timesteps: timesteps),
            StableDiffusionImg2ImgPipeline p => p.Generate(o.Prompt, init, o.Strength ?? 0.8, o.NegativePrompt, guidance, r.Batch, steps,
                r.Eta ?? 0.0, r.Seed, clipSkip: o.ClipSkip, outputType: outputType, callbackOnStepEnd: prepared.OnStepEnd, progress: progress, cancellationToken: ctx.CancellationToken,
                ipAdapterImage: ipAdapterImage, timesteps: timesteps),
            StableDiffusionPipeline p => p.Generate(o.Prompt, o.NegativePrompt, guidance, o.GuidanceRescale ?? 0.0, r.Batch, o.Height, o.Width,
                steps, r.Eta ?? 0.0, r.Seed, clipSkip: o.ClipSkip, outputType: outputType, callbackOnStepEnd: prepared.OnStepEnd, progress: progress,
                cancellationToken: ctx.CancellationToken, ipAdapterImage: ipAdapterImage, timesteps: timesteps),
            _ => throw new UserException($"{pipe.ClassName} is not supported by 'generate'"),
        }));
    }

    /// <summary>
    /// The <c>--init-image</c> and <c>--mask</c> of a Stable Diffusion or SDXL run (null where not given; the mask is
    /// converted to L after resizing, as diffusers does), then the memory check for the size of the run
    /// (<see cref="RunMemory.CheckStableDiffusion"/>): <c>--width</c> / <c>--height</c>, else the init image's for
    /// image to image; inpainting's default size is the pipeline's.
    /// </summary>
    internal static (Image? Init, Image? Mask) InitImageAndMask(GenerateCommand.Request r, string folder)
    {
        var o = r.StableDiffusion;
        Image? init = o.InitImage is null ? null : InputImage.Load(o.InitImage, "--init-image");
        Image? mask = o.Mask is null ? null : InputImage.Load(o.Mask, "--mask");
        RunMemory.CheckStableDiffusion(folder, r.Batch, o.Height ?? (mask is null ? init?.Height : null), o.Width ?? (mask is null ? init?.Width : null));
        return (init, mask);
    }

    /// <summary>
    /// The 8-bit images of a <c>padding_mask_crop</c> run (diffusers gives them as PIL images only) as the NHWC [0, 1] array
    /// the output writer takes; it writes them back to the same bytes.
    /// </summary>
    private static ImagePipelineOutput AsArray(ImagePipelineOutput images)
    {
        using (images) return new ImagePipelineOutput(array: ImageProcessor.ImagesToNumpy(images.Images));
    }

    /// <summary>
    /// Refuses <c>--padding-mask-crop</c> on a pipeline other than Stable Diffusion inpainting, naming
    /// <paramref name="pipeline"/> (diffusers 0.25.1 has <c>padding_mask_crop</c> on <c>StableDiffusionInpaintPipeline</c> only).
    /// </summary>
    internal static void RefusePaddingMaskCrop(Values o, string pipeline)
    {
        if (o.PaddingMaskCrop is not null)
            throw new UserException(
                $"--padding-mask-crop applies to Stable Diffusion inpainting ({StableDiffusionInpaintPipeline.Name}) only; diffusers 0.25.1's {pipeline} has no padding_mask_crop");
    }
}
