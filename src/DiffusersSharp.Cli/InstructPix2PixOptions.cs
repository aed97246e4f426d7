using System.CommandLine;
using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Pipelines;

namespace DiffusersSharp.Cli;

/// <summary>
/// <c>diffusers generate</c> on an InstructPix2Pix folder (<see cref="StableDiffusionInstructPix2PixPipeline"/>, e.g.
/// timbrooks/instruct-pix2pix): <c>--prompt</c> is the edit instruction, <c>--init-image</c> the image to edit (both
/// required), <c>--image-guidance-scale</c> (default 1.5, as diffusers) how closely the result keeps to the image,
/// <c>--guidance</c> (default 7.5) to the instruction; 100 steps by default, as diffusers. The output has the image's size.
/// </summary>
public sealed class InstructPix2PixOptions
{
    private readonly Option<double?> _imageGuidance = new("--image-guidance-scale")
    {
        Description = "InstructPix2Pix: how closely the edit keeps to --init-image (default 1.5, as diffusers; guidance runs when it is ≥ 1 and --guidance > 1)",
    };

    /// <summary>The parsed values.</summary>
    public sealed record Values(double? ImageGuidanceScale = null)
    {
        /// <summary>The first option given, for messages (null when none).</summary>
        public string? FirstGiven => ImageGuidanceScale is not null ? "--image-guidance-scale" : null;

        /// <summary>What can be checked before loading a model.</summary>
        public void CheckWithoutModel()
        {
            if (ImageGuidanceScale is double g && !(g >= 0 && g <= StableDiffusionOptions.MaxGuidance))
                throw new UserException($"--image-guidance-scale must be a number between 0 and {StableDiffusionOptions.MaxGuidance}, got {g}");
        }
    }

    /// <summary>A new set of the options, to add to one command.</summary>
    public static InstructPix2PixOptions Create() => new();

    /// <summary>Adds the options to <paramref name="cmd"/>.</summary>
    public void AddTo(Command cmd) => cmd.Options.Add(_imageGuidance);

    /// <summary>The values parsed for the options.</summary>
    public Values Read(ParseResult pr) => new(pr.GetValue(_imageGuidance));

    /// <summary>Whether <paramref name="className"/> is the InstructPix2Pix pipeline class.</summary>
    public static bool IsInstructPix2Pix(string className) => className == StableDiffusionInstructPix2PixPipeline.Name;

    /// <summary>The route of InstructPix2Pix; <c>--image-guidance-scale</c> is refused on other classes (<see cref="IGenerateRoute"/>).</summary>
    internal sealed class Route : IGenerateRoute
    {
        public bool Claims(string className) => IsInstructPix2Pix(className);
        public bool TextConditioned => true;

        public void RefuseElsewhere(GenerateCommand.Request r, string className)
        {
            if (!Claims(className) && r.InstructPix2Pix.FirstGiven is { } option)
                throw new UserException($"{option} applies to InstructPix2Pix models ({StableDiffusionInstructPix2PixPipeline.Name}); {r.Model} is a {className}");
        }

        public ImagePipelineOutput Execute(GenerateRun g) => InstructPix2PixOptions.Execute(g.Ctx, g.Request, g.Folder, g.ClassName, g.Options, g.OutputType);
    }

    /// <summary>Edits --init-image as --prompt instructs; the caller saves the result.</summary>
    public static ImagePipelineOutput Execute(CliContext ctx, GenerateCommand.Request r, string folder, string className,
        LoadOptions options, OutputType outputType)
    {
        var o = r.StableDiffusion;
        string? refused = o.GuidanceRescale is not null ? "--guidance-rescale" : o.ClipSkip is not null ? "--clip-skip"
            : o.Width is not null ? "--width" : o.Height is not null ? "--height" : o.Strength is not null ? "--strength"
            : o.Mask is not null ? "--mask" : o.PaddingMaskCrop is not null ? "--padding-mask-crop" : o.Timesteps is not null ? "--timesteps"
            : r.ControlNet.FirstGiven;
        if (refused is not null)
            throw new UserException($"{className} takes no {refused} (diffusers 0.25.1's {className} has no such argument; the output has the image's size)");
        if (o.Prompt is null) throw new UserException($"{className} needs --prompt (the edit instruction)");
        if (o.InitImage is null) throw new UserException($"{folder} is an InstructPix2Pix model ({className}): give the image to edit with --init-image");
        Image init = InputImage.Load(o.InitImage, "--init-image");
        options = options with { Log = ctx.Warn };
        RunMemory.CheckStableDiffusion(folder, r.Batch, init.Height, init.Width);

        using var pipe = NativeFailures.During($"loading {folder}", () => StableDiffusionInstructPix2PixPipeline.FromPretrained(folder, options));
        ComponentOptions.Apply(ctx, r.Components, pipe, options.CacheDir);
        var ipAdapterImage = IPAdapterOptions.Apply(ctx, r.IPAdapter, pipe, options.CacheDir);
        using var prepared = PipelineOptions.Prepare(ctx, r, pipe, options.CacheDir);
        int steps = r.Steps ?? 100;
        double guidance = o.Guidance ?? 7.5, imageGuidance = r.InstructPix2Pix.ImageGuidanceScale ?? 1.5;
        ctx.Out.WriteLine($"{pipe.ClassName} · {pipe.Scheduler.ClassName} · {steps} steps · batch {r.Batch} · guidance {guidance} · " +
            $"image guidance {imageGuidance} · seed {(r.Seed?.ToString() ?? "random")} · {pipe.Unet.DType}");
        return NativeFailures.During($"generating with {folder} (--batch {r.Batch}, {steps} steps)", () => ProgressDisplay.Run(ctx, steps, progress =>
            pipe.Generate(o.Prompt, init, steps, guidance, imageGuidance, o.NegativePrompt, r.Batch, r.Eta ?? 0.0, r.Seed,
                outputType: outputType, callbackOnStepEnd: prepared.OnStepEnd, progress: progress, cancellationToken: ctx.CancellationToken,
                ipAdapterImage: ipAdapterImage)));
    }
}
