using System.CommandLine;
using DiffusersSharp.Loading;
using DiffusersSharp.Pipelines;

namespace DiffusersSharp.Cli;

/// <summary>
/// <c>diffusers generate --panorama [--view-batch-size N] [--circular-padding]</c>: MultiDiffusion
/// (<see cref="StableDiffusionPanoramaPipeline"/>) on a Stable Diffusion text-to-image folder, or on a folder whose
/// model_index.json names <see cref="StableDiffusionPanoramaPipeline"/> (then <c>--panorama</c> may be left out). The size
/// defaults to diffusers' 512 × 2048; <c>--prompt</c>, <c>--negative-prompt</c>, <c>--guidance</c>, <c>--clip-skip</c>, the
/// component, LoRA, FreeU, scheduler, <c>--eta</c>, preview and IP-Adapter options apply as on text to image.
/// </summary>
public sealed class PanoramaOptions
{
    private readonly Option<bool> _panorama = new("--panorama")
    {
        Description = "Stable Diffusion: a wide image by MultiDiffusion (diffusers' StableDiffusionPanoramaPipeline; default 512x2048, 64x64-latent windows 8 apart)",
    };
    private readonly Option<int?> _viewBatchSize = new("--view-batch-size") { Description = "--panorama: windows per UNet call (default 1; the same image)" };
    private readonly Option<bool> _circular = new("--circular-padding") { Description = "--panorama: the right edge continues into the left (a 360° panorama)" };

    /// <summary>The parsed values.</summary>
    public sealed record Values(bool Panorama = false, int? ViewBatchSize = null, bool CircularPadding = false)
    {
        /// <summary>The first option given, for messages (null when none).</summary>
        public string? FirstGiven => Panorama ? "--panorama" : ViewBatchSize is not null ? "--view-batch-size" : CircularPadding ? "--circular-padding" : null;

        /// <summary>The first of the options that only go with <c>--panorama</c> (null when none).</summary>
        public string? FirstModifier => ViewBatchSize is not null ? "--view-batch-size" : CircularPadding ? "--circular-padding" : null;

        /// <summary>What can be checked before loading a model.</summary>
        public void CheckWithoutModel()
        {
            if (ViewBatchSize is < 1) throw new UserException($"--view-batch-size must be at least 1, got {ViewBatchSize}");
        }
    }

    /// <summary>A new set of the options, to add to one command.</summary>
    public static PanoramaOptions Create() => new();

    /// <summary>Adds the options to <paramref name="cmd"/>.</summary>
    public void AddTo(Command cmd)
    {
        cmd.Options.Add(_panorama);
        cmd.Options.Add(_viewBatchSize);
        cmd.Options.Add(_circular);
    }

    /// <summary>The values parsed for the options.</summary>
    public Values Read(ParseResult pr) => new(pr.GetValue(_panorama), pr.GetValue(_viewBatchSize), pr.GetValue(_circular));

    /// <summary>
    /// A route of panoramas (<see cref="IGenerateRoute"/>; both stand before the Stable Diffusion route): with
    /// <paramref name="onStableDiffusion"/> false, a <see cref="StableDiffusionPanoramaPipeline"/> folder, and the refusals: the
    /// panorama options on other classes, <c>--view-batch-size</c> / <c>--circular-padding</c> without <c>--panorama</c> on a
    /// Stable Diffusion folder, <c>--panorama</c> with <c>--controlnet</c> or <c>--adapter</c>; with it true, a Stable Diffusion
    /// text-to-image folder given <c>--panorama</c>.
    /// </summary>
    internal sealed class Route(bool onStableDiffusion) : IGenerateRoute
    {
        public bool Claims(string className) => className == (onStableDiffusion ? StableDiffusionPipeline.Name : StableDiffusionPanoramaPipeline.Name);
        public bool Takes(GenerateCommand.Request r) => !onStableDiffusion || r.Panorama.Panorama;
        public bool TextConditioned => true;

        public void RefuseElsewhere(GenerateCommand.Request r, string className)
        {
            var p = r.Panorama;
            if (onStableDiffusion || p.FirstGiven is not { } option) return;
            if (className is not (StableDiffusionPipeline.Name or StableDiffusionPanoramaPipeline.Name))
                throw new UserException($"{option} applies to Stable Diffusion text-to-image models ({StableDiffusionPipeline.Name}, {StableDiffusionPanoramaPipeline.Name}); {r.Model} is a {className}");
            if (!p.Panorama && className != StableDiffusionPanoramaPipeline.Name)
                throw new UserException($"{option} needs --panorama (it sets how the panorama's windows run)");
            if ((r.ControlNet.FirstGiven ?? (r.Adapter.Any ? "--adapter" : null)) is { } other)
                throw new UserException($"{other} is not available with --panorama (diffusers 0.25.1's {StableDiffusionPanoramaPipeline.Name} has no ControlNet or T2I-Adapter)");
        }

        public ImagePipelineOutput Execute(GenerateRun g) => PanoramaOptions.Execute(g.Ctx, g.Request, g.Folder, g.ClassName, g.Options, g.OutputType);
    }

    /// <summary>Generates a panorama; the caller saves the result.</summary>
    public static ImagePipelineOutput Execute(CliContext ctx, GenerateCommand.Request r, string folder, string className,
        LoadOptions options, OutputType outputType)
    {
        var o = r.StableDiffusion;
        string? refused = o.GuidanceRescale is not null ? "--guidance-rescale" : o.InitImage is not null ? "--init-image"
            : o.Strength is not null ? "--strength" : o.Mask is not null ? "--mask" : o.PaddingMaskCrop is not null ? "--padding-mask-crop"
            : o.Timesteps is not null ? "--timesteps" : r.ControlNet.FirstGiven;
        if (refused is not null)
            throw new UserException($"{StableDiffusionPanoramaPipeline.Name} takes no {refused} (diffusers 0.25.1's {StableDiffusionPanoramaPipeline.Name} has no such argument)");
        if (File.Exists(folder))
            throw new UserException($"--panorama runs on a diffusers pipeline folder or Hub id, not a single-file checkpoint ({folder}); convert it with 'diffusers convert' first");
        if (o.Prompt is null) throw new UserException($"{StableDiffusionPanoramaPipeline.Name} needs --prompt");
        int height = o.Height ?? 512, width = o.Width ?? 2048;
        options = options with { Log = ctx.Warn };
        RunMemory.CheckStableDiffusion(folder, r.Batch, height, width);

        using var pipe = NativeFailures.During($"loading {folder}", () => StableDiffusionPanoramaPipeline.FromPretrained(folder, options));
        pipe.Log = ctx.Warn;
        ComponentOptions.Apply(ctx, r.Components, pipe, options.CacheDir);
        var ipAdapterImage = IPAdapterOptions.Apply(ctx, r.IPAdapter, pipe, options.CacheDir);
        using var prepared = PipelineOptions.Prepare(ctx, r, pipe, options.CacheDir);
        int steps = r.Steps ?? 50, viewBatchSize = r.Panorama.ViewBatchSize ?? 1;
        double guidance = o.Guidance ?? 7.5;
        ctx.Out.WriteLine($"{pipe.ClassName} · {pipe.Scheduler.ClassName} · {steps} steps · batch {r.Batch} · guidance {guidance} · " +
            $"{height}x{width} · {StableDiffusionPanoramaPipeline.GetViews(height, width, circularPadding: r.Panorama.CircularPadding).Count} windows" +
            $"{(r.Panorama.CircularPadding ? " (circular)" : "")}, {viewBatchSize} per call · seed {(r.Seed?.ToString() ?? "random")} · {pipe.Unet.DType}");
        return NativeFailures.During($"generating with {folder} (--batch {r.Batch}, {steps} steps, {height}x{width})", () => ProgressDisplay.Run(ctx, steps, progress =>
            pipe.Generate(o.Prompt, height, width, steps, guidance, viewBatchSize, o.NegativePrompt, r.Batch, r.Eta ?? 0.0, r.Seed,
                ipAdapterImage: ipAdapterImage, outputType: outputType, callbackOnStepEnd: prepared.OnStepEnd, progress: progress,
                cancellationToken: ctx.CancellationToken, circularPadding: r.Panorama.CircularPadding, clipSkip: o.ClipSkip)));
    }
}
