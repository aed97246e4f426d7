using DiffusersSharp.Loading;
using DiffusersSharp.Pipelines;

namespace DiffusersSharp.Cli;

/// <summary>
/// <c>diffusers generate</c> on a latent diffusion folder: <see cref="LDMPipeline"/> (unconditional, e.g.
/// CompVis/ldm-celebahq-256: <c>--steps</c> (default 50), <c>--batch</c>, <c>--seed</c>, <c>--eta</c>, <c>--scheduler</c>)
/// and <see cref="LDMSuperResolutionPipeline"/> (e.g. CompVis/ldm-super-resolution-4x-openimages: <c>--image</c>, the
/// low-resolution image, required; <c>--steps</c> (default 100), <c>--seed</c>, <c>--eta</c>, <c>--scheduler</c>). The
/// prompt, guidance, size and init-image options, the component, ControlNet, T2I-Adapter, LoRA, preview and
/// <c>--timesteps</c> options are refused naming the class (diffusers' pipelines take none of them).
/// </summary>
internal static class LatentDiffusionGenerate
{
    /// <summary>The route: the two latent diffusion classes (not text-conditioned); the super-resolution one takes --image.</summary>
    internal sealed class Route : IGenerateRoute
    {
        public bool Claims(string className) => className is LDMPipeline.Name or LDMSuperResolutionPipeline.Name;
        public bool TextConditioned => false;
        public bool TakesImageOption(string className) => className == LDMSuperResolutionPipeline.Name;
        public ImagePipelineOutput Execute(GenerateRun g) => LatentDiffusionGenerate.Execute(g.Ctx, g.Request, g.Folder, g.ClassName, g.Options, g.OutputType);
    }

    /// <summary>Runs an LDMPipeline or LDMSuperResolutionPipeline folder; the caller saves the result.</summary>
    public static ImagePipelineOutput Execute(CliContext ctx, GenerateCommand.Request r, string folder, string className,
        LoadOptions options, OutputType outputType)
    {
        StableDiffusionOptions.RefuseTimesteps(r.StableDiffusion, className);
        bool superResolution = className == LDMSuperResolutionPipeline.Name;
        if (r.StableDiffusion.FirstGiven is { } sdOption)
            throw new UserException(superResolution
                ? $"{className} takes no {sdOption}: it upscales --image, without a prompt or guidance"
                : $"{className} takes no {sdOption}: it generates unconditionally, without a prompt, an image or guidance");
        string? other = r.Components.FirstGiven ?? r.ControlNet.FirstGiven ?? r.Adapter.FirstGiven ?? r.Lora.FirstGiven ?? r.Preview.FirstGiven;
        if (other is not null)
            throw new UserException($"{className} takes no {other}; it is for Stable Diffusion models");
        return superResolution ? SuperResolution(ctx, r, folder, options, outputType) : Unconditional(ctx, r, folder, options, outputType);
    }

    private static ImagePipelineOutput Unconditional(CliContext ctx, GenerateCommand.Request r, string folder, LoadOptions options,
        OutputType outputType)
    {
        RunMemory.CheckUnconditional(folder, r.Batch);
        using var pipe = NativeFailures.During($"loading {folder}", () => LDMPipeline.FromPretrained(folder, options));
        SchedulerSelection.Swap(pipe.Scheduler, r.Scheduler, r.SchedulerConfig, s => pipe.Scheduler = s);
        SchedulerSelection.CheckReads(pipe.Scheduler, "eta", "--eta", r.Eta is not null);
        int steps = r.Steps ?? pipe.DefaultNumInferenceSteps;
        ctx.Out.WriteLine($"{pipe.ClassName} · {pipe.Scheduler.ClassName} · {steps} steps · batch {r.Batch} · seed {(r.Seed?.ToString() ?? "random")} · {pipe.Unet.DType}");
        return NativeFailures.During($"generating with {folder} (--batch {r.Batch}, {steps} steps)", () =>
            ProgressDisplay.Run(ctx, steps, progress => pipe.Generate(r.Batch, steps, r.Eta ?? 0.0, r.Seed, null, outputType, null,
                progress, ctx.CancellationToken)));
    }

    private static ImagePipelineOutput SuperResolution(CliContext ctx, GenerateCommand.Request r, string folder, LoadOptions options,
        OutputType outputType)
    {
        const string name = LDMSuperResolutionPipeline.Name;
        var u = r.StableDiffusionUpscale;
        if (u.Image is null) throw new UserException($"{name} needs --image (the low-resolution image to upscale)");
        if (r.Batch != 1)
            throw new UserException($"{name} upscales the one --image: --batch must be 1 (diffusers' pipeline sets its batch size to 1 for an image), got {r.Batch}");
        var image = InputImage.Load(u.Image, "--image");
        if (image.Channels != 3)
            throw new UserException($"--image: {u.Image} is greyscale; {name} takes an RGB image");
        using var pipe = NativeFailures.During($"loading {folder}", () => LDMSuperResolutionPipeline.FromPretrained(folder, options));
        SchedulerSelection.Swap(pipe.Scheduler, r.Scheduler, r.SchedulerConfig, s => pipe.Scheduler = s);
        SchedulerSelection.CheckReads(pipe.Scheduler, "eta", "--eta", r.Eta is not null);
        int steps = r.Steps ?? 100;
        ctx.Out.WriteLine($"{name} · {pipe.Scheduler.ClassName} · {steps} steps · --image {image.Width}x{image.Height} · seed {(r.Seed?.ToString() ?? "random")} · {pipe.Unet.DType}");
        return NativeFailures.During($"generating with {folder} ({steps} steps, --image {image.Width}x{image.Height})", () =>
            ProgressDisplay.Run(ctx, steps, progress => pipe.Generate(image, steps, r.Eta ?? 0.0, r.Seed, null, outputType, null,
                progress, ctx.CancellationToken)));
    }
}
