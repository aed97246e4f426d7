using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Pipelines;

namespace DiffusersSharp.Cli;

/// <summary>
/// <c>diffusers generate</c> on a latent consistency folder (<see cref="LatentConsistencyModelPipeline"/>, e.g.
/// SimianLuo/LCM_Dreamshaper_v7): <c>--prompt</c> (required), <c>--steps</c> (default 4), <c>--guidance</c> (default 8.5,
/// embedded, never a guidance batch), <c>--timesteps</c>, <c>--clip-skip</c>, <c>--width</c> / <c>--height</c>; with
/// <c>--init-image</c> (and <c>--strength</c>, default 0.8) <see cref="LatentConsistencyModelImg2ImgPipeline"/>. The
/// component, LoRA, FreeU, preview and scheduler options as on Stable Diffusion (the scheduler must stay LCMScheduler).
/// What diffusers' two pipelines have no argument for is refused naming the class: <c>--negative-prompt</c>,
/// <c>--guidance-rescale</c>, <c>--eta</c>, <c>--mask</c>, <c>--padding-mask-crop</c>, the ControlNet options.
/// </summary>
internal static class LatentConsistencyGenerate
{
    /// <summary>The route of the two latent consistency classes (text-conditioned).</summary>
    internal sealed class Route : IGenerateRoute
    {
        public bool Claims(string className) => className is LatentConsistencyModelPipeline.Name or LatentConsistencyModelImg2ImgPipeline.Name;
        public bool TextConditioned => true;
        public ImagePipelineOutput Execute(GenerateRun g) => LatentConsistencyGenerate.Execute(g.Ctx, g.Request, g.Folder, g.Options, g.OutputType);
    }

    /// <summary>Runs txt2img, or img2img with --init-image, on a latent consistency folder; the caller saves the result.</summary>
    public static ImagePipelineOutput Execute(CliContext ctx, GenerateCommand.Request r, string folder, LoadOptions options, OutputType outputType)
    {
        var o = r.StableDiffusion;
        string cls = o.InitImage is null ? LatentConsistencyModelPipeline.Name : LatentConsistencyModelImg2ImgPipeline.Name;
        string? refused = o.NegativePrompt is not null ? "--negative-prompt" : o.GuidanceRescale is not null ? "--guidance-rescale"
            : r.Eta is not null ? "--eta" : o.Mask is not null ? "--mask" : o.PaddingMaskCrop is not null ? "--padding-mask-crop"
            : r.ControlNet.FirstGiven;
        if (refused is not null)
            throw new UserException($"{cls} takes no {refused} (diffusers 0.25.1's {cls} has no such argument; a latent consistency model embeds the guidance, without a negative prompt)");
        if (o.Prompt is null) throw new UserException($"{cls} needs --prompt");
        var (init, _) = StableDiffusionOptions.InitImageAndMask(r, folder);
        options = options with { Log = ctx.Warn };

        using StableDiffusionPipelineBase pipe = NativeFailures.During<StableDiffusionPipelineBase>($"loading {folder}", () => init is null
            ? LatentConsistencyModelPipeline.FromPretrained(folder, options)
            : LatentConsistencyModelImg2ImgPipeline.FromPretrained(folder, options));
        ComponentOptions.Apply(ctx, r.Components, pipe, options.CacheDir);
        using var prepared = PipelineOptions.Prepare(ctx, r, pipe, options.CacheDir);
        var timesteps = o.CustomTimesteps;
        int steps = timesteps?.Length ?? r.Steps ?? 4;
        double guidance = o.Guidance ?? 8.5;
        ctx.Out.WriteLine($"{pipe.ClassName} · {pipe.Scheduler.ClassName} · {steps} steps · batch {r.Batch} · guidance {guidance} (embedded) · seed {(r.Seed?.ToString() ?? "random")} · {pipe.Unet.DType}");
        return NativeFailures.During($"generating with {folder} (--batch {r.Batch}, {steps} steps)", () => ProgressDisplay.Run(ctx, steps, progress => pipe switch
        {
            LatentConsistencyModelImg2ImgPipeline p => p.Generate(o.Prompt, init, steps, o.Strength ?? 0.8, timesteps: timesteps, guidanceScale: guidance,
                numImagesPerPrompt: r.Batch, seed: r.Seed, outputType: outputType, clipSkip: o.ClipSkip, callbackOnStepEnd: prepared.OnStepEnd,
                progress: progress, cancellationToken: ctx.CancellationToken),
            LatentConsistencyModelPipeline p => p.Generate(o.Prompt, o.Height, o.Width, steps, timesteps: timesteps, guidanceScale: guidance,
                numImagesPerPrompt: r.Batch, seed: r.Seed, outputType: outputType, clipSkip: o.ClipSkip, callbackOnStepEnd: prepared.OnStepEnd,
                progress: progress, cancellationToken: ctx.CancellationToken),
            _ => throw new UserException($"{pipe.ClassName} is not supported by 'generate'"),
        }));
    }
}
