using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// diffusers' <c>LatentConsistencyModelImg2ImgPipeline</c> (0.25.1): image to image with a latent consistency model. As
/// <see cref="LatentConsistencyModelPipeline"/> (4 steps, guidance 8.5, no negative prompt or guidance batch, LCMScheduler
/// only, <c>denoised</c> decoded), with the init image encoded and noised as <see cref="StableDiffusionImg2ImgPipeline"/>
/// does; but strength (default 0.8) goes to the LCM scheduler's <c>set_timesteps</c>: the num_inference_steps
/// steps are drawn from the first <c>int(original_inference_steps · strength)</c> of its schedule (all of them run), and
/// custom timesteps keep their last <c>int(len · strength)</c>.
/// </summary>
public sealed class LatentConsistencyModelImg2ImgPipeline : StableDiffusionPipelineBase
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>model_index.json</c>.</summary>
    public const string Name = "LatentConsistencyModelImg2ImgPipeline";

    /// <summary>A pipeline of loaded components (the pipeline disposes them); the UNet must have <c>time_cond_proj_dim</c>.</summary>
    public LatentConsistencyModelImg2ImgPipeline(IVae vae, CLIPTextModel textEncoder, CLIPTokenizer tokenizer,
        UNet2DConditionModel unet, IScheduler scheduler, Action<string>? log = null)
        : base(vae, textEncoder, tokenizer, unet, scheduler, log)
    {
        LatentConsistencyDenoisingLoop.RequireGuidanceEmbedding(Name, unet);
    }

    /// <summary>A LatentConsistencyModelImg2ImgPipeline around <paramref name="lender"/>'s components that borrows them and <paramref name="scheduler"/>,
    /// never disposed (the generation service's on a latent consistency folder; see the base's constructor).</summary>
    internal LatentConsistencyModelImg2ImgPipeline(StableDiffusionPipelineBase lender, IScheduler scheduler)
        : base(lender, scheduler)
    {
        LatentConsistencyDenoisingLoop.RequireGuidanceEmbedding(Name, Unet);
    }

    /// <inheritdoc/>
    public override string ClassName => Name;

    /// <summary>Loads an LCM img2img folder, or a LatentConsistencyModelPipeline folder (the same components).</summary>
    public static new LatentConsistencyModelImg2ImgPipeline FromPretrained(string idOrPath, LoadOptions? options = null) =>
        StableDiffusionLoader.Load(idOrPath, options, Name, [Name, LatentConsistencyModelPipeline.Name],
            c => new LatentConsistencyModelImg2ImgPipeline(c.Vae, c.TextEncoder, c.Tokenizer, c.Unet, c.Scheduler, options?.Log));

    /// <summary>
    /// Transforms <paramref name="image"/> guided by the prompt (diffusers' <c>__call__</c>). The random draws, in diffusers'
    /// order: the VAE posterior sample of the image, the noise added to it at the first timestep, then the scheduler's noise.
    /// The other arguments as in <see cref="LatentConsistencyModelPipeline.Generate"/> (diffusers' img2img call has no
    /// height, width or usable latents: the output has the image's size).
    /// </summary>
    public ImagePipelineOutput Generate(PromptInput prompt = default, ImageInput image = default, int numInferenceSteps = 4,
        double strength = 0.8, int? originalInferenceSteps = null, IReadOnlyList<long>? timesteps = null, double guidanceScale = 8.5,
        int numImagesPerPrompt = 1, long? seed = null, Generator? generator = null, IReadOnlyList<Generator>? generators = null,
        Tensor? promptEmbeds = null, ImageInput ipAdapterImage = default, OutputType outputType = OutputType.Pil,
        CrossAttentionOptions? crossAttentionKwargs = null, int? clipSkip = null, StepEndCallback? callbackOnStepEnd = null,
        IProgress<PipelineProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        // 1. check inputs
        PipelineSteps.CheckStrengthRange(Name, strength);
        PipelineSteps.RequireImages(Name, image);
        CheckPromptInputs(prompt, default, promptEmbeds, null);
        var lcm = LatentConsistencyDenoisingLoop.RequireLcmScheduler(Name, Scheduler);
        CheckCommon(PipelineSteps.StepCount(Name, lcm, numInferenceSteps, timesteps), numImagesPerPrompt, guidanceScale, 0.0);

        // 2. call parameters (the generators are checked against the batch with the latents, as diffusers does)
        using var call = BeginCall(prompt, promptEmbeds, numImagesPerPrompt, seed, generator, generators, checkGeneratorCount: false);
        var (total, gens) = call;

        // 3. encode the prompt, never with guidance
        using var embeds = EncodePrompt(prompt, numImagesPerPrompt, false, default, promptEmbeds, null, clipSkip, crossAttentionKwargs?.Scale);
        RecordEmbeddings(embeds);
        var imageEmbeds = EncodeIPAdapterImage(ipAdapterImage, numImagesPerPrompt, cfg: false);

        // 4. preprocess the image
        var pixels = image.Preprocess("init image", null, null, VaeScaleFactor, normalize: true, grayscale: false, binarize: false);
        PipelineSteps.CheckInitImageChannels(Name, pixels, Vae, allowLatents: true);
        Record("image_preprocessed", pixels);

        // 5. timesteps: strength shortens the LCM schedule (set_timesteps(strength=…)), not get_timesteps
        var schedule = LatentConsistencyDenoisingLoop.Timesteps(Name, lcm, numInferenceSteps, timesteps, originalInferenceSteps, strength, Unet.Device);

        // 6. latents: encode, duplicate per prompt, noise to the first timestep
        CheckGeneratorCount(gens, total);
        var current = NoisedImageLatents(pixels.to(embeds.PromptEmbeds.dtype, Unet.Device), schedule, total, gens);

        // 7. the guidance embedding; 8. the LCM loop; 9. decode the last step's denoised sample
        return DenoiseLatentConsistency(schedule, current, embeds, guidanceScale, total, gens, imageEmbeds, crossAttentionKwargs,
            callbackOnStepEnd, progress, cancellationToken, outputType);
    }
}
