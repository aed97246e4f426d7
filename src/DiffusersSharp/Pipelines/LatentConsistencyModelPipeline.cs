using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// diffusers' <c>LatentConsistencyModelPipeline</c> (0.25.1): text to image with a latent consistency model (e.g.
/// SimianLuo/LCM_Dreamshaper_v7), a Stable Diffusion UNet distilled with a guidance embedding (<c>time_cond_proj_dim</c>).
/// What differs from <see cref="StableDiffusionPipeline"/>: 4 steps and guidance 8.5 by default; no negative prompt and no
/// classifier-free-guidance batch ever: the guidance scale w − 1 enters as the UNet's <c>timestep_cond</c>; the scheduler
/// must be <see cref="LCMScheduler"/> (<c>original_inference_steps</c> picks the schedule the steps are drawn from); the
/// image decoded is the last step's consistency estimate <c>denoised</c>, not the latents.
/// <code>
/// using var pipe = LatentConsistencyModelPipeline.FromPretrained("SimianLuo/LCM_Dreamshaper_v7");
/// using var result = pipe.Generate("a photo of a cat", seed: 0);   // 4 steps, guidance 8.5
/// </code>
/// </summary>
public sealed class LatentConsistencyModelPipeline : StableDiffusionPipelineBase
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>model_index.json</c>.</summary>
    public const string Name = "LatentConsistencyModelPipeline";

    /// <summary>
    /// A pipeline of loaded components (the pipeline disposes them); the UNet must have <c>time_cond_proj_dim</c> (a
    /// <see cref="ConfigException"/> otherwise). diffusers' constructor corrects no scheduler config.
    /// </summary>
    public LatentConsistencyModelPipeline(IVae vae, CLIPTextModel textEncoder, CLIPTokenizer tokenizer,
        UNet2DConditionModel unet, IScheduler scheduler, Action<string>? log = null)
        : base(vae, textEncoder, tokenizer, unet, scheduler, log)
    {
        LatentConsistencyDenoisingLoop.RequireGuidanceEmbedding(Name, unet);
    }

    /// <summary>A LatentConsistencyModelPipeline around <paramref name="lender"/>'s components that borrows them and <paramref name="scheduler"/>,
    /// never disposed (the generation service's on a latent consistency folder; see the base's constructor).</summary>
    internal LatentConsistencyModelPipeline(StableDiffusionPipelineBase lender, IScheduler scheduler)
        : base(lender, scheduler)
    {
        LatentConsistencyDenoisingLoop.RequireGuidanceEmbedding(Name, Unet);
    }

    /// <inheritdoc/>
    public override string ClassName => Name;

    /// <summary>
    /// Loads a LatentConsistencyModelPipeline folder (or a Hub id) as <see cref="StableDiffusionPipeline.FromPretrained"/>
    /// loads its own: <c>vae</c>, <c>text_encoder</c>, <c>tokenizer</c>, <c>unet</c>, <c>scheduler</c>, with <paramref name="options"/>.
    /// </summary>
    public static new LatentConsistencyModelPipeline FromPretrained(string idOrPath, LoadOptions? options = null) =>
        StableDiffusionLoader.Load(idOrPath, options, Name, [Name, LatentConsistencyModelImg2ImgPipeline.Name],
            c => new LatentConsistencyModelPipeline(c.Vae, c.TextEncoder, c.Tokenizer, c.Unet, c.Scheduler, options?.Log));

    /// <summary>
    /// Generates images (diffusers' <c>__call__</c>). <paramref name="height"/>/<paramref name="width"/> default to the
    /// UNet's sample_size × vae_scale_factor and must be multiples of 8. <paramref name="numInferenceSteps"/> (default 4) are
    /// drawn from the LCM scheduler's <paramref name="originalInferenceSteps"/>-step schedule (default: its config's
    /// <c>original_inference_steps</c>), or <paramref name="timesteps"/> replace them. <paramref name="guidanceScale"/>
    /// (default 8.5) is embedded as <c>w = guidance_scale − 1</c> (diffusers' Imagen formulation; no guidance batch).
    /// Randomness, <paramref name="latents"/>, <paramref name="promptEmbeds"/>, <paramref name="clipSkip"/>,
    /// <paramref name="crossAttentionKwargs"/> and <paramref name="ipAdapterImage"/> as in
    /// <see cref="StableDiffusionPipeline.Generate"/>. <paramref name="callbackOnStepEnd"/> sees <c>latents</c>,
    /// <c>denoised</c>, <c>prompt_embeds</c> and <c>w_embedding</c> (diffusers' callback tensor inputs) and may replace them;
    /// the image is decoded from <c>denoised</c>.
    /// </summary>
    public ImagePipelineOutput Generate(PromptInput prompt = default, int? height = null, int? width = null, int numInferenceSteps = 4,
        int? originalInferenceSteps = null, IReadOnlyList<long>? timesteps = null, double guidanceScale = 8.5, int numImagesPerPrompt = 1,
        long? seed = null, Generator? generator = null, IReadOnlyList<Generator>? generators = null, Tensor? latents = null,
        Tensor? promptEmbeds = null, ImageInput ipAdapterImage = default, OutputType outputType = OutputType.Pil,
        CrossAttentionOptions? crossAttentionKwargs = null, int? clipSkip = null, StepEndCallback? callbackOnStepEnd = null,
        IProgress<PipelineProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        // 0. default height and width to the UNet's
        var (dh, dw) = DefaultSize();
        int h = height ?? dh, w = width ?? dw;

        // 1. check inputs (diffusers' check_inputs has no negative prompt); the scheduler must be LCM's
        PipelineSteps.CheckSize(Name, h, w, 8);
        CheckPromptInputs(prompt, default, promptEmbeds, null);
        var lcm = LatentConsistencyDenoisingLoop.RequireLcmScheduler(Name, Scheduler);
        CheckCommon(PipelineSteps.StepCount(Name, lcm, numInferenceSteps, timesteps), numImagesPerPrompt, guidanceScale, 0.0);

        // 2. call parameters
        using var call = BeginCall(prompt, promptEmbeds, numImagesPerPrompt, seed, generator, generators);
        var (total, gens) = call;

        // 3. encode the prompt, never with guidance (LCMs are distilled with the unconditional prompt "")
        using var embeds = EncodePrompt(prompt, numImagesPerPrompt, false, default, promptEmbeds, null, clipSkip, crossAttentionKwargs?.Scale);
        RecordEmbeddings(embeds);
        var imageEmbeds = EncodeIPAdapterImage(ipAdapterImage, numImagesPerPrompt, cfg: false);

        // 4. timesteps
        var schedule = LatentConsistencyDenoisingLoop.Timesteps(Name, lcm, numInferenceSteps, timesteps, originalInferenceSteps, 1.0, Unet.Device);

        // 5. latents
        var current = InitialLatents(latents, [total, Unet.Config.InChannels, h / VaeScaleFactor, w / VaeScaleFactor],
            embeds.PromptEmbeds.dtype, gens);

        // 6. the guidance embedding; 7-8. the LCM loop; 9. decode the last step's denoised sample
        return DenoiseLatentConsistency(schedule, current, embeds, guidanceScale, total, gens, imageEmbeds, crossAttentionKwargs,
            callbackOnStepEnd, progress, cancellationToken, outputType);
    }
}
