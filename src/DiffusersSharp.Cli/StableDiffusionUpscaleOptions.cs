using System.CommandLine;
using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Pipelines;

namespace DiffusersSharp.Cli;

/// <summary>
/// The Stable Diffusion x4 upscaler options of <c>diffusers generate</c> (<see cref="StableDiffusionUpscalePipeline"/>):
/// <c>--image</c> (the low-resolution image, required) and <c>--noise-level</c> (diffusers' <c>noise_level</c>, default 20).
/// The Stable Diffusion options that apply are <c>--prompt --negative-prompt --guidance --clip-skip --freeu</c>, with
/// <c>--vae</c>, <c>--embedding</c> and <c>--lora</c>; the output is four times the size of <c>--image</c>. <c>--image</c> is also
/// the latent upscaler's (<see cref="LatentUpscaleGenerate"/>).
/// </summary>
public sealed class StableDiffusionUpscaleOptions
{
    private readonly Option<string?> _image = new("--image")
    {
        Description = $"Image to upscale: 4x with a {StableDiffusionUpscalePipeline.Name} (e.g. stabilityai/stable-diffusion-x4-upscaler) or a " +
            $"{LDMSuperResolutionPipeline.Name} (e.g. CompVis/ldm-super-resolution-4x-openimages), 2x with a {StableDiffusionLatentUpscalePipeline.Name} (stabilityai/sd-x2-latent-upscaler)",
    };
    private readonly Option<int?> _noiseLevel = new("--noise-level")
    {
        Description = $"Noise added to --image before upscaling, 0 to the model's max_noise_level ({StableDiffusionUpscalePipeline.DefaultMaxNoiseLevel} on the x4 upscaler); default 20",
    };

    /// <summary>The parsed values (all optional).</summary>
    public sealed record Values(string? Image = null, int? NoiseLevel = null)
    {
        /// <summary>The first option given, for messages (null when none).</summary>
        public string? FirstGiven => Image is not null ? "--image" : NoiseLevel is not null ? "--noise-level" : null;

        /// <summary>What can be checked before loading a model.</summary>
        public void CheckWithoutModel()
        {
            if (NoiseLevel is < 0) throw new UserException($"--noise-level must be ≥ 0, got {NoiseLevel}");
            if (Image is not null && !File.Exists(Image)) throw new UserException($"--image: file not found: {Image}");
        }
    }

    /// <summary>A new set of the options, to add to one command.</summary>
    public static StableDiffusionUpscaleOptions Create() => new();

    /// <summary>Adds the options to <paramref name="cmd"/>.</summary>
    public void AddTo(Command cmd)
    {
        cmd.Options.Add(_image);
        cmd.Options.Add(_noiseLevel);
    }

    /// <summary>The values parsed for the options.</summary>
    public Values Read(ParseResult pr) => new(pr.GetValue(_image), pr.GetValue(_noiseLevel));

    /// <summary>Whether <paramref name="className"/> is the Stable Diffusion upscale pipeline.</summary>
    public static bool IsUpscale(string className) => className == StableDiffusionUpscalePipeline.Name;

    /// <summary>
    /// The route of the x4 upscaler; <c>--noise-level</c> is refused on other classes, <c>--image</c> on the classes no route
    /// takes it on (<see cref="IGenerateRoute.TakesImageOption"/>: LDMSuperResolutionPipeline's and StableDiffusionLatentUpscalePipeline's do).
    /// </summary>
    internal sealed class Route : IGenerateRoute
    {
        public bool Claims(string className) => IsUpscale(className);
        public bool TextConditioned => true;

        public void RefuseElsewhere(GenerateCommand.Request r, string className)
        {
            if (Claims(className)) return;
            var u = r.StableDiffusionUpscale;
            // --image is also the input of other routes' classes (LDMSuperResolutionPipeline, StableDiffusionLatentUpscalePipeline): refused only where none takes it
            if (u.Image is not null && !GenerateRoutes.TakesImageOption(className))
                throw new UserException($"--image applies to upscale models ({StableDiffusionUpscalePipeline.Name}, {LDMSuperResolutionPipeline.Name}, {StableDiffusionLatentUpscalePipeline.Name}); {r.Model} is a {className}");
            if (u.NoiseLevel is not null)
                throw new UserException($"--noise-level applies to Stable Diffusion upscale models ({StableDiffusionUpscalePipeline.Name}); {r.Model} is a {className}");
        }

        public ImagePipelineOutput Execute(GenerateRun g) => StableDiffusionUpscaleOptions.Execute(g.Ctx, g.Request, g.Folder, g.ClassName, g.Options, g.OutputType);
    }

    /// <summary>Upscales <c>--image</c> with a StableDiffusionUpscalePipeline folder; the caller saves the result.</summary>
    public static ImagePipelineOutput Execute(CliContext ctx, GenerateCommand.Request r, string folder, string className,
        LoadOptions options, OutputType outputType)
    {
        var o = r.StableDiffusion;
        var u = r.StableDiffusionUpscale;
        if (u.Image is null) throw new UserException($"{className} needs --image (the low-resolution image to upscale)");
        if (o.Prompt is null) throw new UserException($"{className} needs --prompt");
        string? refused = o.GuidanceRescale is not null ? "--guidance-rescale" : o.Width is not null ? "--width" : o.Height is not null ? "--height"
            : o.InitImage is not null ? "--init-image" : o.Strength is not null ? "--strength" : o.Mask is not null ? "--mask"
            : o.PaddingMaskCrop is not null ? "--padding-mask-crop" : o.Timesteps is not null ? "--timesteps" : null;
        if (refused is not null)
            throw new UserException($"{className} takes no {refused}: it upscales --image 4x (diffusers 0.25.1's {className} has no such argument)");
        if (r.ControlNet.FirstGiven is { } control)
            throw new UserException($"{className} takes no {control}; ControlNet runs with Stable Diffusion and SDXL text-to-image, image-to-image and inpainting models");
        if (r.Preview.FirstGiven is { } preview)
            throw new UserException($"{className} takes no {preview}: the previews decode Stable Diffusion latents, not the x4 upscaler's");
        var image = InputImage.Load(u.Image, "--image");
        options = options with { Log = ctx.Warn };

        using var pipe = NativeFailures.During($"loading {folder}", () => StableDiffusionUpscalePipeline.FromPretrained(folder, options));
        ComponentOptions.Apply(ctx, r.Components, pipe, options.CacheDir);
        using var prepared = PipelineOptions.Prepare(ctx, r, pipe, options.CacheDir);
        int steps = r.Steps ?? 75;
        double guidance = o.Guidance ?? 9.0;
        int noiseLevel = u.NoiseLevel ?? 20;
        if (noiseLevel > pipe.MaxNoiseLevel)
            throw new UserException($"--noise-level must be at most the model's max_noise_level {pipe.MaxNoiseLevel}, got {noiseLevel}");
        ctx.Out.WriteLine($"{pipe.ClassName} · {pipe.Scheduler.ClassName} · {steps} steps · batch {r.Batch} · guidance {guidance} · noise level {noiseLevel} · seed {(r.Seed?.ToString() ?? "random")} · {pipe.Unet.DType}");
        return NativeFailures.During($"generating with {folder} (--batch {r.Batch}, {steps} steps, --image {image.Width}x{image.Height})", () =>
            ProgressDisplay.Run(ctx, steps, progress => pipe.Generate(o.Prompt, image.ToRgb(), steps, guidance, noiseLevel, o.NegativePrompt,
                r.Batch, r.Eta ?? 0.0, r.Seed, outputType: outputType, progress: progress, cancellationToken: ctx.CancellationToken,
                clipSkip: o.ClipSkip)));
    }
}
