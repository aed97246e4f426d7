using System.Diagnostics;
using DiffusersSharp.Imaging;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Schedulers;

namespace DiffusersSharp.Generation;

/// <summary>What one served run hands the pipeline beyond the request: its seed, scheduler, step callback, progress and cancellation.</summary>
internal readonly record struct ServedCall(GenerationRequest Request, long Seed, IScheduler Scheduler, StepEndCallback OnStepEnd,
    IProgress<PipelineProgress> Progress, CancellationToken CancellationToken);

/// <summary>
/// The one contract by which <see cref="GenerationService"/> runs a loaded Stable Diffusion 1.x/2.x folder as its own
/// diffusers family: which pipeline classes run text to image and image to image (the loaded pipeline when it is of that
/// class, else one that borrows its components and the request's scheduler), and which requests the family refuses
/// (<see cref="Refusal"/>: what its diffusers classes have no argument or class for). Inpainting is the Stable Diffusion
/// family's alone. <see cref="For"/> is the only place that looks at the loaded class.
/// </summary>
internal abstract class ServedFamily(StableDiffusionPipelineBase pipe)
{
    /// <summary>The loaded pipeline whose components the family's pipelines share.</summary>
    protected StableDiffusionPipelineBase Pipe { get; } = pipe;

    /// <summary>The family of <paramref name="pipe"/>'s class: LCM, panorama, or Stable Diffusion (every other class).</summary>
    public static ServedFamily For(StableDiffusionPipelineBase pipe) => pipe switch
    {
        LatentConsistencyModelPipeline or LatentConsistencyModelImg2ImgPipeline => new LatentConsistency(pipe),
        StableDiffusionPanoramaPipeline panorama => new Panorama(panorama),
        _ => new StableDiffusion(pipe),
    };

    /// <summary>Why the family cannot run <paramref name="r"/> (a message naming the field and the class), or null when it can.</summary>
    public abstract string? Refusal(GenerationRequest r, string modelId);

    /// <summary>Text to image with the request's size (null: the class's default).</summary>
    public abstract ImagePipelineOutput TextToImage(ServedCall c);

    /// <summary>Image to image of <paramref name="init"/> (already fitted to the request's size).</summary>
    public abstract ImagePipelineOutput ImageToImage(ServedCall c, Image init);

    /// <summary>The request's negative prompt (none: the empty input).</summary>
    protected static PromptInput Negative(GenerationRequest r) => r.NegativePrompt is null ? default : r.NegativePrompt;

    /// <summary>
    /// <paramref name="loaded"/> (the loaded pipeline, when it is of the class the request needs) holding the service's
    /// <paramref name="scheduler"/> (the one it replaces is the service's too), else a pipeline of that class that borrows
    /// the loaded components and the scheduler (never disposed: the loaded pipeline owns the models, the service the
    /// scheduler; no scheduler is built for it).
    /// </summary>
    public static TPipeline WithScheduler<TPipeline>(TPipeline? loaded, Func<IScheduler, TPipeline> borrowing, IScheduler scheduler)
        where TPipeline : StableDiffusionPipelineBase
    {
        if (loaded is null) return borrowing(scheduler);
        loaded.Scheduler = scheduler;
        return loaded;
    }

    /// <summary>StableDiffusionPipeline, StableDiffusionImg2ImgPipeline (and the service's StableDiffusionInpaintPipeline).</summary>
    private sealed class StableDiffusion(StableDiffusionPipelineBase pipe) : ServedFamily(pipe)
    {
        public override string? Refusal(GenerationRequest r, string modelId) => null;

        public override ImagePipelineOutput TextToImage(ServedCall c)
        {
            var r = c.Request;
            var text = WithScheduler(Pipe as StableDiffusionPipeline, s => new StableDiffusionPipeline(Pipe, s), c.Scheduler);
            return text.Generate(r.Prompt, Negative(r), r.GuidanceScale, numImagesPerPrompt: r.Count, height: r.Height, width: r.Width,
                numInferenceSteps: r.Steps, seed: c.Seed, callbackOnStepEnd: c.OnStepEnd, progress: c.Progress,
                cancellationToken: c.CancellationToken, ipAdapterImage: r.IPAdapterImage, timesteps: r.Timesteps);
        }

        public override ImagePipelineOutput ImageToImage(ServedCall c, Image init)
        {
            var r = c.Request;
            var img2img = WithScheduler(Pipe as StableDiffusionImg2ImgPipeline, s => new StableDiffusionImg2ImgPipeline(Pipe, s), c.Scheduler);
            return img2img.Generate(r.Prompt, init, r.Strength ?? 0.8, Negative(r), r.GuidanceScale, r.Count, r.Steps, seed: c.Seed,
                callbackOnStepEnd: c.OnStepEnd, progress: c.Progress, cancellationToken: c.CancellationToken,
                ipAdapterImage: r.IPAdapterImage, timesteps: r.Timesteps);
        }
    }

    /// <summary>
    /// LatentConsistencyModelPipeline and LatentConsistencyModelImg2ImgPipeline: no negative prompt (diffusers' LCM
    /// pipelines have none: no guidance batch, the guidance scale is embedded), no inpainting (diffusers 0.25.1 has no LCM
    /// inpainting class); strength goes to the LCM scheduler's set_timesteps. The request's Steps and GuidanceScale are
    /// passed as given (the service's rule: the request's defaults, 50 and 7.5, not the LCM classes' 4 and 8.5).
    /// </summary>
    private sealed class LatentConsistency(StableDiffusionPipelineBase pipe) : ServedFamily(pipe)
    {
        public override string? Refusal(GenerationRequest r, string modelId)
        {
            if (r.NegativePrompt is not null)
                return $"negative_prompt: {modelId} is a latent consistency model, served as {LatentConsistencyModelPipeline.Name} and " +
                    $"{LatentConsistencyModelImg2ImgPipeline.Name}, which take no negative prompt (no guidance batch: the guidance scale is embedded)";
            if (r.Mask is not null)
                return $"mask: {modelId} is a latent consistency model, served as {LatentConsistencyModelPipeline.Name} (text to image) and " +
                    $"{LatentConsistencyModelImg2ImgPipeline.Name} (image to image); diffusers 0.25.1 has no latent consistency inpainting pipeline";
            return null;
        }

        public override ImagePipelineOutput TextToImage(ServedCall c)
        {
            var r = c.Request;
            var text = WithScheduler(Pipe as LatentConsistencyModelPipeline, s => new LatentConsistencyModelPipeline(Pipe, s), c.Scheduler);
            return text.Generate(r.Prompt, r.Height, r.Width, r.Steps, timesteps: r.Timesteps, guidanceScale: r.GuidanceScale,
                numImagesPerPrompt: r.Count, seed: c.Seed, ipAdapterImage: r.IPAdapterImage, callbackOnStepEnd: c.OnStepEnd,
                progress: c.Progress, cancellationToken: c.CancellationToken);
        }

        public override ImagePipelineOutput ImageToImage(ServedCall c, Image init)
        {
            var r = c.Request;
            var img2img = WithScheduler(Pipe as LatentConsistencyModelImg2ImgPipeline,
                s => new LatentConsistencyModelImg2ImgPipeline(Pipe, s), c.Scheduler);
            return img2img.Generate(r.Prompt, init, r.Steps, r.Strength ?? 0.8, timesteps: r.Timesteps, guidanceScale: r.GuidanceScale,
                numImagesPerPrompt: r.Count, seed: c.Seed, ipAdapterImage: r.IPAdapterImage, callbackOnStepEnd: c.OnStepEnd,
                progress: c.Progress, cancellationToken: c.CancellationToken);
        }
    }

    /// <summary>StableDiffusionPanoramaPipeline: text to image only, its own default size (512 × 2048) where the request gives none.</summary>
    private sealed class Panorama(StableDiffusionPanoramaPipeline pipe) : ServedFamily(pipe)
    {
        private const int DefaultHeight = 512, DefaultWidth = 2048;   // the panorama class's __call__ defaults

        public override string? Refusal(GenerationRequest r, string modelId) =>
            r.InitImage is not null
                ? $"image: {modelId} is a {StableDiffusionPanoramaPipeline.Name} folder, served as {StableDiffusionPanoramaPipeline.Name}: " +
                    "text to image only (no image or mask)"
            : r.Timesteps is not null
                ? $"timesteps: {modelId} is a {StableDiffusionPanoramaPipeline.Name} folder, served as {StableDiffusionPanoramaPipeline.Name}, " +
                    "which takes no custom timesteps (give steps)"
            : null;

        public override ImagePipelineOutput TextToImage(ServedCall c)
        {
            var r = c.Request;
            var panorama = WithScheduler((StableDiffusionPanoramaPipeline)Pipe, _ => throw new UnreachableException(), c.Scheduler);
            return panorama.Generate(r.Prompt, r.Height ?? DefaultHeight, r.Width ?? DefaultWidth, r.Steps, r.GuidanceScale,
                negativePrompt: Negative(r), numImagesPerPrompt: r.Count, seed: c.Seed, ipAdapterImage: r.IPAdapterImage,
                callbackOnStepEnd: c.OnStepEnd, progress: c.Progress, cancellationToken: c.CancellationToken);
        }

        public override ImagePipelineOutput ImageToImage(ServedCall c, Image init) => throw new UnreachableException();   // refused
    }
}
