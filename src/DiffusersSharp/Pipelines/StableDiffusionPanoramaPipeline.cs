using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// diffusers' <c>StableDiffusionPanoramaPipeline</c> (0.25.1; MultiDiffusion, Bar-Tal et al. 2023): text to a wide
/// image (default 512 × 2048) from an ordinary Stable Diffusion folder. At every step the latents are cut into
/// overlapping 64 × 64 windows, 8 apart (<see cref="GetViews"/>), each window is denoised and stepped by the scheduler,
/// and every latent becomes the mean of the windows that cover it. diffusers keeps one scheduler state per batch of
/// windows (a deep copy of <c>scheduler.__dict__</c>); here the pipeline's scheduler steps the first batch and a fresh
/// scheduler of its class and config, with the same timesteps, each other batch, so a multistep solver's history stays
/// per window. <c>circularPadding</c> wraps the windows around the right edge (a 360° panorama) and decodes with 8
/// latent columns of the other edge on each side.
/// <code>
/// using var pipe = StableDiffusionPanoramaPipeline.FromPretrained("stabilityai/stable-diffusion-2-base");
/// using var sd = pipe.Scheduler;
/// pipe.Scheduler = DDIMScheduler.FromConfig(sd.Config);
/// using var result = pipe.Generate("a photo of the dolomites", seed: 0);
/// </code>
/// </summary>
public sealed class StableDiffusionPanoramaPipeline : StableDiffusionPipelineBase
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>model_index.json</c>.</summary>
    public const string Name = "StableDiffusionPanoramaPipeline";

    /// <summary>The side of a window in latents (diffusers' <c>get_views</c> default, which <c>__call__</c> keeps).</summary>
    public const int WindowSize = 64;

    /// <summary>The distance between two windows in latents (diffusers' <c>get_views</c> default).</summary>
    public const int Stride = 8;

    /// <summary>
    /// A pipeline of loaded components (the pipeline disposes them); <paramref name="log"/> receives its notes (null:
    /// stderr). diffusers' constructor corrects no scheduler config.
    /// </summary>
    public StableDiffusionPanoramaPipeline(IVae vae, CLIPTextModel textEncoder, CLIPTokenizer tokenizer,
        UNet2DConditionModel unet, IScheduler scheduler, Action<string>? log = null)
        : base(vae, textEncoder, tokenizer, unet, scheduler, log) { }

    /// <inheritdoc/>
    public override string ClassName => Name;

    /// <summary>
    /// Loads a Stable Diffusion folder (or Hub id) whose model_index.json names <see cref="Name"/> or
    /// <c>StableDiffusionPipeline</c> (diffusers' example: stabilityai/stable-diffusion-2-base with a DDIMScheduler swapped
    /// in), with <paramref name="options"/> as <see cref="StableDiffusionPipeline.FromPretrained"/>.
    /// </summary>
    public static new StableDiffusionPanoramaPipeline FromPretrained(string idOrPath, LoadOptions? options = null) =>
        StableDiffusionLoader.Load(idOrPath, options, Name, [Name, StableDiffusionPipeline.Name],
            c => new StableDiffusionPanoramaPipeline(c.Vae, c.TextEncoder, c.Tokenizer, c.Unet, c.Scheduler, options?.Log));

    /// <summary>
    /// diffusers' <c>get_views</c>: the windows (latent rows and columns, end exclusive) over a panorama of
    /// <paramref name="height"/> × <paramref name="width"/> pixels. As diffusers it measures the panorama in pixels / 8,
    /// whatever the VAE's scale factor; a side of at most <paramref name="windowSize"/> gets one window (which then
    /// reaches past the latents and is cut to them); with <paramref name="circularPadding"/> the columns run
    /// <c>width / 8 // stride</c> windows from 0, the last ones wrapping around the right edge.
    /// </summary>
    public static IReadOnlyList<PanoramaView> GetViews(int height, int width, int windowSize = WindowSize, int stride = Stride,
        bool circularPadding = false)
    {
        if (height <= 0 || width <= 0 || height % 8 != 0 || width % 8 != 0)
            throw new DiffusersException($"{Name}: height and width have to be positive and divisible by 8 but are {height} and {width}");
        if (windowSize < 1 || stride < 1)
            throw new DiffusersException($"{Name}: window_size and stride must be at least 1, got {windowSize} and {stride}");
        int h = height / 8, w = width / 8;
        int blocksHigh = h > windowSize ? (h - windowSize) / stride + 1 : 1;
        int blocksWide = circularPadding
            ? (w > windowSize ? w / stride : 1)
            : (w > windowSize ? (w - windowSize) / stride + 1 : 1);
        var views = new List<PanoramaView>(blocksHigh * blocksWide);
        for (int i = 0; i < blocksHigh * blocksWide; i++)
        {
            int hStart = i / blocksWide * stride, wStart = i % blocksWide * stride;
            views.Add(new PanoramaView(hStart, hStart + windowSize, wStart, wStart + windowSize));
        }
        return views;
    }

    /// <summary>
    /// Generates panoramas (diffusers' <c>__call__</c>; defaults 512 × 2048, 50 steps, guidance 7.5, one window per UNet
    /// call). <paramref name="viewBatchSize"/> windows go through the UNet and the scheduler together (the same result,
    /// more memory). <paramref name="circularPadding"/>: the right edge continues into the left. Randomness as
    /// <see cref="StableDiffusionPipeline.Generate"/>: the initial latents, then the scheduler's draws window batch by
    /// window batch. <paramref name="callbackOnStepEnd"/> sees <c>latents</c> (the averaged panorama) and
    /// <c>prompt_embeds</c> after every step (diffusers 0.25.1's panorama has the older <c>callback(step, t, latents)</c>).
    /// <paramref name="crossAttentionKwargs"/>'s <c>Scale</c>: the LoRA scale, as in <see cref="StableDiffusionPipeline.Generate"/>.
    /// <paramref name="ipAdapterImage"/>: the image prompt of a loaded IP-Adapter, with one window per UNet call.
    /// As diffusers 0.25.1, with guidance and more than one image per call the UNet rows pair each window's latents with
    /// the guidance batch in diffusers' order (<c>repeat_interleave</c> of the latents against <c>[negative; prompt]</c>
    /// repeated), so the images are not guided as one image alone would be (a warning says so).
    /// </summary>
    public ImagePipelineOutput Generate(PromptInput prompt = default, int height = 512, int width = 2048, int numInferenceSteps = 50,
        double guidanceScale = 7.5, int viewBatchSize = 1, PromptInput negativePrompt = default, int numImagesPerPrompt = 1,
        double eta = 0.0, long? seed = null, Generator? generator = null, IReadOnlyList<Generator>? generators = null,
        Tensor? latents = null, Tensor? promptEmbeds = null, Tensor? negativePromptEmbeds = null, ImageInput ipAdapterImage = default,
        OutputType outputType = OutputType.Pil, StepEndCallback? callbackOnStepEnd = null, IProgress<PipelineProgress>? progress = null,
        CancellationToken cancellationToken = default, CrossAttentionOptions? crossAttentionKwargs = null, bool circularPadding = false,
        int? clipSkip = null)
    {
        // 1. check inputs
        PipelineSteps.CheckSize(Name, height, width, 8);
        CheckPromptInputs(prompt, negativePrompt, promptEmbeds, negativePromptEmbeds);
        CheckCommon(numInferenceSteps, numImagesPerPrompt, guidanceScale, eta);
        if (viewBatchSize < 1)
            throw new DiffusersException($"{Name}: view_batch_size must be at least 1, got {viewBatchSize}");
        int latentHeight = height / VaeScaleFactor, latentWidth = width / VaeScaleFactor;
        var views = GetViews(height, width, circularPadding: circularPadding);
        CheckViews(views, height, width, latentHeight, latentWidth, circularPadding, outputType);
        var viewBatches = views.Chunk(viewBatchSize).ToList();
        if (!ipAdapterImage.IsNone && viewBatches.Any(b => b.Length > 1))
            throw new DiffusersException(
                $"{Name}: ipAdapterImage needs view_batch_size 1 here ({views.Count} windows, view_batch_size {viewBatchSize}): diffusers " +
                "0.25.1 gives the UNet the image embeds of one window for a batch of windows and fails on the batch mismatch");

        // 2. call parameters; diffusers' do_classifier_free_guidance here is guidance_scale > 1 alone
        using var call = BeginCall(prompt, promptEmbeds, numImagesPerPrompt, seed, generator, generators);
        var (total, gens) = call;
        bool cfg = guidanceScale > 1.0;
        if (cfg && total > 1)
            Log($"{Name}: {total} images with guidance: as diffusers 0.25.1, each window's UNet rows pair the latents " +
                "(repeat_interleave) with [negative; prompt] repeated, so only a batch of one image is guided as the prompt asks");

        // 3. the IP-Adapter image and the prompt; the CFG batch = [negative, prompt]
        var imageEmbeds = EncodeIPAdapterImage(ipAdapterImage, numImagesPerPrompt, cfg);
        using var embeds = EncodePrompt(prompt, numImagesPerPrompt, cfg, negativePrompt, promptEmbeds, negativePromptEmbeds, clipSkip,
            crossAttentionKwargs?.Scale);
        RecordEmbeddings(embeds);

        // 4. timesteps; one scheduler per batch of windows (the pipeline's for the first)
        var device = Unet.Device;
        var schedule = PipelineSteps.Timesteps(Scheduler, numInferenceSteps, device, Name);
        var schedulers = new List<IScheduler> { Scheduler };
        try
        {
            for (int j = 1; j < viewBatches.Count; j++)
            {
                var copy = SchedulerFactory.FromConfig(Scheduler.ClassName, (DiffusersConfig)Scheduler.Config);
                schedulers.Add(copy);
                copy.SetTimesteps(numInferenceSteps, device);
            }

            // 5. latents
            var current = InitialLatents(latents, [total, Unet.Config.InChannels, latentHeight, latentWidth], embeds.PromptEmbeds.dtype, gens);

            // 6-8. the MultiDiffusion loop
            var loop = new PanoramaDenoisingLoop(Unet, cfg, guidanceScale, crossAttentionKwargs, viewBatches, schedulers, circularPadding);
            current = loop.Run(LoopContext(schedule, current, embeds, cfg, eta, gens, callbackOnStepEnd, progress, cancellationToken, imageEmbeds));

            // 9. decode (circular: with 8 latent columns of the other edge on each side) and postprocess
            return PipelineSteps.Finish(current, outputType, circularPadding ? DecodeWithPadding : l => Vae.Decode(l / Vae.ScalingFactor).Sample,
                (name, t) => Record(name, t));
        }
        finally
        {
            for (int j = 1; j < schedulers.Count; j++) schedulers[j].Dispose();
        }
    }

    /// <summary>
    /// diffusers' <c>decode_latents_with_padding(latents, padding=8)</c>: the last 8 latent columns before the latents and the
    /// first 8 after them, decoded, and <c>vae_scale_factor · 8</c> pixels cut from each side.
    /// </summary>
    private Tensor DecodeWithPadding(Tensor latents)
    {
        const int padding = 8;
        var scaled = latents * (1.0 / Vae.ScalingFactor);
        long w = scaled.shape[3];
        var padded = torch.cat(new[] { scaled.narrow(3, w - padding, padding), scaled, scaled.narrow(3, 0, padding) }, 3);
        var image = Vae.Decode(padded).Sample;
        long pixels = (long)VaeScaleFactor * padding;
        return image.narrow(3, pixels, image.shape[3] - 2 * pixels);
    }

    /// <summary>
    /// Refuses, before any work, the sizes on which diffusers 0.25.1 fails or returns a wrong image: a window that misses the
    /// latents (a VAE scale factor above 8: <c>get_views</c> measures in pixels / 8), a wrapped window that does not start at
    /// the top row (circular padding over 568 pixels high: diffusers cuts it by the panorama's rows and fails on the shapes),
    /// and a circular decode of fewer than 8 latent columns (its padding would take the whole width). A VAE scale factor under
    /// 8 leaves latents no window covers; they are zeros after the first step, as in diffusers (a warning says so).
    /// </summary>
    private void CheckViews(IReadOnlyList<PanoramaView> views, int height, int width, int latentHeight, int latentWidth,
        bool circularPadding, OutputType outputType)
    {
        foreach (var v in views)
        {
            if (v.HStart >= latentHeight || v.WStart >= latentWidth)
                throw new DiffusersException(
                    $"{Name}: the window at latent rows {v.HStart}-{v.HEnd}, columns {v.WStart}-{v.WEnd} lies outside the {latentHeight} × {latentWidth} " +
                    $"latents: diffusers' get_views measures {height} × {width} pixels in units of 8, and this VAE's scale factor is {VaeScaleFactor}");
            if (circularPadding && v.HStart > 0 && v.WEnd > latentWidth)
                throw new DiffusersException(
                    $"{Name}: circular_padding with a height of {height} pixels ({views.Max(x => x.HStart) / Stride + 1} rows of windows): " +
                    "diffusers 0.25.1 fails on a wrapped window below the top row (it cuts the window by the panorama's rows); " +
                    $"use a height of at most {(WindowSize + Stride - 1) * 8} pixels, or no circular padding");
        }
        if (circularPadding && outputType != OutputType.Latent && latentWidth < 8)
            throw new DiffusersException(
                $"{Name}: circular_padding decodes with 8 latent columns from each edge (diffusers' decode_latents_with_padding), " +
                $"which needs a width of at least {8 * VaeScaleFactor} pixels, got {width}");
        var rows = new bool[latentHeight];
        var columns = new bool[latentWidth];
        foreach (var v in views)
        {
            for (int r = v.HStart; r < Math.Min(v.HEnd, latentHeight); r++) rows[r] = true;
            for (int c = v.WStart; c < Math.Min(v.WEnd, latentWidth); c++) columns[c] = true;
            if (circularPadding)
                for (int c = 0; c < Math.Min(v.WEnd - latentWidth, latentWidth); c++) columns[c] = true;
        }
        int coveredRows = rows.Count(x => x), coveredColumns = columns.Count(x => x);
        if (coveredRows < latentHeight || coveredColumns < latentWidth)
            Log($"{Name}: the windows cover {coveredRows} × {coveredColumns} of the {latentHeight} × {latentWidth} latents (diffusers' " +
                $"get_views measures the panorama in pixels / 8, and this VAE's scale factor is {VaeScaleFactor}); the rest become zeros, as in diffusers");
    }
}

/// <summary>One window of <see cref="StableDiffusionPanoramaPipeline.GetViews"/>: latent rows and columns, the ends exclusive.</summary>
public readonly record struct PanoramaView(int HStart, int HEnd, int WStart, int WEnd);
