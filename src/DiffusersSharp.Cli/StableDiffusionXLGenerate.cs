using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Pipelines;
using TorchSharp;

namespace DiffusersSharp.Cli;

/// <summary>
/// <c>diffusers generate</c> on a Stable Diffusion XL folder: txt2img (optionally followed by <c>--refiner</c>), img2img
/// with <c>--init-image</c> (also a refiner folder), inpainting with <c>--mask</c>; a folder, Hub id or single-file SDXL
/// checkpoint (<c>FromSingleFile</c>, architecture inferred from the file); <c>--lora</c> patches the UNet and both text
/// encoders (see <see cref="LoraOptions"/>). Options that do not apply to the
/// chosen pipeline are refused with a message naming them.
/// </summary>
internal static class StableDiffusionXLGenerate
{
    /// <summary>
    /// The route of the SDXL classes without <c>--controlnet</c>, folders and single files; the SDXL options
    /// (<see cref="StableDiffusionXLOptions"/>) are refused on other classes (<see cref="IGenerateRoute"/>).
    /// </summary>
    internal sealed class Route : IGenerateRoute
    {
        public bool Claims(string className) => StableDiffusionXLOptions.IsStableDiffusionXL(className);
        public bool TextConditioned => true;
        public bool ReadsSingleFiles => true;

        public void RefuseElsewhere(GenerateCommand.Request r, string className)
        {
            if (!Claims(className) && r.StableDiffusionXL.FirstGiven is { } xlOption)
                throw new UserException($"{xlOption} applies to Stable Diffusion XL models; {r.Model} is a {className}");
        }

        public ImagePipelineOutput Execute(GenerateRun g) => StableDiffusionXLGenerate.Execute(g.Ctx, g.Request, g.Folder, g.ClassName, g.Options, g.OutputType);
    }

    /// <summary>Runs the SDXL pipeline the options ask for on <paramref name="folder"/>; the caller saves the result.</summary>
    public static ImagePipelineOutput Execute(CliContext ctx, GenerateCommand.Request r, string folder, string className,
        LoadOptions options, OutputType outputType)
    {
        var o = r.StableDiffusion;
        var x = r.StableDiffusionXL;
        if (o.Prompt is null) throw new UserException($"{className} needs --prompt");
        if (className == StableDiffusionXLInpaintPipeline.Name && o.Mask is null)
            throw new UserException($"{folder} is an SDXL inpainting model ({className}): give --init-image and --mask");
        if (className == StableDiffusionXLImg2ImgPipeline.Name && o.InitImage is null)
            throw new UserException($"{folder} is an SDXL image-to-image / refiner model ({className}): give --init-image (or use it as --refiner of a base model)");
        if (x.Refiner is not null && className != StableDiffusionXLPipeline.Name)
            throw new UserException($"--refiner needs an SDXL base model ({StableDiffusionXLPipeline.Name}); {folder} is a {className}");
        StableDiffusionOptions.RefusePaddingMaskCrop(o, StableDiffusionXLInpaintPipeline.Name);
        var (init, mask) = StableDiffusionOptions.InitImageAndMask(r, folder);
        options = options with { Log = ctx.Warn };

        var single = SingleFileConfig.ForGenerate(folder, options, r.SingleFileConfig);   // null: a pipeline folder
        using StableDiffusionXLPipelineBase pipe = NativeFailures.During<StableDiffusionXLPipelineBase>($"loading {folder}", () =>
            mask is not null
                ? single is null ? StableDiffusionXLInpaintPipeline.FromPretrained(folder, options) : StableDiffusionXLInpaintPipeline.FromSingleFile(folder, single)
                : init is not null
                    ? single is null ? StableDiffusionXLImg2ImgPipeline.FromPretrained(folder, options) : StableDiffusionXLImg2ImgPipeline.FromSingleFile(folder, single)
                    : single is null ? StableDiffusionXLPipeline.FromPretrained(folder, options) : StableDiffusionXLPipeline.FromSingleFile(folder, single));
        CheckApplies(pipe, x, folder);
        Apply(ctx, r.Components, pipe, options.CacheDir);
        if (x.Refiner is not null && r.IPAdapter.FirstGiven is { } ipOption)
            throw new UserException($"{ipOption} is not available with --refiner (the refiner's UNet has no IP-Adapter; run the base alone, or the refiner as an --init-image run)");
        var ipAdapterImage = IPAdapterOptions.Apply(ctx, r.IPAdapter, pipe, options.CacheDir);
        // the LoRAs and FreeU go on the base (or img2img / inpaint) pipeline; a --refiner runs without them
        using var prepared = PipelineOptions.Prepare(ctx, r, pipe, options.CacheDir);
        if (x.Refiner is not null) StableDiffusionOptions.RefuseTimesteps(o, $"the --refiner run ({StableDiffusionXLImg2ImgPipeline.Name} continuing at denoising_start)");
        int steps = o.StepsOr(r.Steps);
        var timesteps = o.CustomTimesteps;
        double guidance = o.Guidance ?? (mask is not null ? 7.5 : 5.0);
        var original = x.OriginalHeightWidth;
        var crop = x.CropTopLeft;
        var target = x.TargetHeightWidth;
        ctx.Out.WriteLine($"{pipe.ClassName} · {pipe.Scheduler.ClassName} · {steps} steps · batch {r.Batch} · guidance {guidance} · seed {(r.Seed?.ToString() ?? "random")} · {pipe.Unet.DType}");
        // one generator for the whole call: with --refiner the refiner goes on drawing from the base's generator
        using var generator = r.Seed is long s ? new torch.Generator((ulong)s) : null;
        string what = $"generating with {folder} (--batch {r.Batch}, {steps} steps{(o.Width is null ? "" : $", --width {o.Width}")}{(o.Height is null ? "" : $", --height {o.Height}")})";
        if (x.Refiner is not null)
            return RunWithRefiner(ctx, r, (StableDiffusionXLPipeline)pipe, options, generator, steps, guidance, what, outputType, prepared.OnStepEnd);
        return NativeFailures.During(what, () => ProgressDisplay.Run(ctx, steps, progress => pipe switch
        {
            StableDiffusionXLInpaintPipeline p => p.Generate(o.Prompt, init, mask, x.Prompt2, o.Height, o.Width, o.Strength ?? 0.9999,
                steps, guidanceScale: guidance, negativePrompt: o.NegativePrompt, negativePrompt2: x.NegativePrompt2,
                numImagesPerPrompt: r.Batch, eta: r.Eta ?? 0.0, generator: generator, outputType: outputType, guidanceRescale: o.GuidanceRescale ?? 0.0,
                originalSize: original, cropsCoordsTopLeft: crop, targetSize: target, clipSkip: o.ClipSkip, callbackOnStepEnd: prepared.OnStepEnd, progress: progress,
                cancellationToken: ctx.CancellationToken, timesteps: timesteps,
                ipAdapterImage: ipAdapterImage),
            StableDiffusionXLImg2ImgPipeline p => p.Generate(o.Prompt, init, x.Prompt2, o.Strength ?? 0.3, steps, guidanceScale: guidance,
                negativePrompt: o.NegativePrompt, negativePrompt2: x.NegativePrompt2, numImagesPerPrompt: r.Batch, eta: r.Eta ?? 0.0,
                generator: generator, outputType: outputType, guidanceRescale: o.GuidanceRescale ?? 0.0, originalSize: original,
                cropsCoordsTopLeft: crop, targetSize: target,
                clipSkip: o.ClipSkip, callbackOnStepEnd: prepared.OnStepEnd, progress: progress, cancellationToken: ctx.CancellationToken, timesteps: timesteps,
                ipAdapterImage: ipAdapterImage),
            StableDiffusionXLPipeline p => p.Generate(o.Prompt, x.Prompt2, o.Height, o.Width, steps, guidanceScale: guidance,
                negativePrompt: o.NegativePrompt, negativePrompt2: x.NegativePrompt2, numImagesPerPrompt: r.Batch, eta: r.Eta ?? 0.0,
                generator: generator, outputType: outputType, guidanceRescale: o.GuidanceRescale ?? 0.0, originalSize: original,
                cropsCoordsTopLeft: crop, targetSize: target, clipSkip: o.ClipSkip, callbackOnStepEnd: prepared.OnStepEnd, progress: progress, cancellationToken: ctx.CancellationToken, timesteps: timesteps,
                ipAdapterImage: ipAdapterImage),
            _ => throw new UserException($"{pipe.ClassName} is not supported by 'generate'"),
        }));
    }

    /// <summary>
    /// Base over the first --high-noise-frac (latents out), then the refiner from there (diffusers' ensemble of experts);
    /// <paramref name="onStepEnd"/> (the previews) sees the steps of both.
    /// </summary>
    private static ImagePipelineOutput RunWithRefiner(CliContext ctx, GenerateCommand.Request r, StableDiffusionXLPipeline pipe,
        LoadOptions options, torch.Generator? generator, int steps, double guidance, string what, OutputType outputType,
        StepEndCallback? onStepEnd)
    {
        var o = r.StableDiffusion;
        var x = r.StableDiffusionXL;
        double frac = x.HighNoiseFrac ?? StableDiffusionXLOptions.DefaultHighNoiseFrac;
        // a Hub id's @revision, else main: --revision is the model's (a branch or commit of one repository, which another does not have)
        var (refinerId, refinerRevision) = WeightSource.Repository(x.Refiner!);
        var refinerOptions = options with { Revision = refinerRevision };
        using var refiner = WeightSource.Load("--refiner", x.Refiner!, () => NativeFailures.During($"loading --refiner {x.Refiner}",
            () => StableDiffusionXLImg2ImgPipeline.FromPretrained(PipelinePaths.Resolve(refinerId, refinerOptions), refinerOptions)));
        SchedulerSelection.Swap(refiner.Scheduler, r.Scheduler, r.SchedulerConfig, s => refiner.Scheduler = s);
        if (refiner.RequiresAestheticsScore && x.TargetSize is not null)
            throw new UserException($"--target-size does not apply to the refiner {x.Refiner} (requires_aesthetics_score: its time ids end with an aesthetic score)");
        ctx.Out.WriteLine($"refiner: {refiner.ClassName} from {x.Refiner} · takes over at {frac} of the schedule");
        using var latents = NativeFailures.During(what, () => ProgressDisplay.Run(ctx, steps, progress => pipe.Generate(o.Prompt, x.Prompt2,
            o.Height, o.Width, steps, frac, guidance, o.NegativePrompt, x.NegativePrompt2, r.Batch, r.Eta ?? 0.0, generator: generator,
            outputType: OutputType.Latent, guidanceRescale: o.GuidanceRescale ?? 0.0, originalSize: x.OriginalHeightWidth,
            cropsCoordsTopLeft: x.CropTopLeft, targetSize: x.TargetHeightWidth, clipSkip: o.ClipSkip, callbackOnStepEnd: onStepEnd, progress: progress,
            cancellationToken: ctx.CancellationToken)));
        return NativeFailures.During($"refining with {x.Refiner}", () => ProgressDisplay.Run(ctx, steps, progress => refiner.Generate(o.Prompt,
            latents.Tensor!, x.Prompt2, numInferenceSteps: steps, denoisingStart: frac, guidanceScale: guidance, negativePrompt: o.NegativePrompt,
            negativePrompt2: x.NegativePrompt2, numImagesPerPrompt: r.Batch, eta: r.Eta ?? 0.0, generator: generator, outputType: outputType,
            originalSize: x.OriginalHeightWidth, cropsCoordsTopLeft: x.CropTopLeft, targetSize: refiner.RequiresAestheticsScore ? null : x.TargetHeightWidth,
            clipSkip: o.ClipSkip, callbackOnStepEnd: onStepEnd, progress: progress, cancellationToken: ctx.CancellationToken)));
    }

    /// <summary>Refuses the options the loaded pipeline would ignore.</summary>
    private static void CheckApplies(StableDiffusionXLPipelineBase pipe, StableDiffusionXLOptions.Values x, string folder)
    {
        if (pipe.TextEncoder is null && x.Prompt2 is not null)
            throw new UserException($"--prompt-2 does not apply to {folder}: it has only the second text encoder, which encodes --prompt");
        if (pipe.TextEncoder is null && x.NegativePrompt2 is not null)
            throw new UserException($"--negative-prompt-2 does not apply to {folder}: it has only the second text encoder, which encodes --negative-prompt");
        if (pipe.RequiresAestheticsScore && x.TargetSize is not null)
            throw new UserException($"--target-size does not apply to {folder} (requires_aesthetics_score: its time ids end with an aesthetic score)");
    }

    /// <summary>
    /// --vae swaps the VAE ('tiny' = TAESDXL, <see cref="VaeLoader.TaesdIdFor"/>; in the UNet's dtype and on its device, as
    /// on SD: <see cref="ComponentOptions.LoadVae"/>); --embedding loads textual inversion into both text encoders
    /// (clip_l / clip_g); Hub ids are fetched into <paramref name="cacheDir"/> (null: the environment's cache).
    /// </summary>
    private static void Apply(CliContext ctx, ComponentOptions.Values v, StableDiffusionXLPipelineBase pipe, string? cacheDir)
    {
        if (v.Vae is { } vae)
        {
            var loaded = ComponentOptions.LoadVae(ctx, vae, pipe.LatentSpace, pipe.Unet, cacheDir);
            var old = pipe.Vae;
            pipe.Vae = loaded;
            old.Dispose();
        }
        var embeddings = ComponentOptions.Locate(v.ParseEmbeddings(), fileNameTokens: true, cacheDir);
        if (embeddings.Count > 0)
        {
            var tokens = pipe.LoadTextualInversion(embeddings.Select(e => e.File).ToList(), embeddings.Select(e => e.Token).ToList());
            ctx.Out.WriteLine($"textual inversion: {string.Join(", ", tokens)}");
        }
    }
}
