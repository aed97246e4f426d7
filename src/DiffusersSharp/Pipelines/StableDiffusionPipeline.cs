using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// diffusers' <c>StableDiffusionPipeline</c> (0.25.1): text to image.
/// <code>
/// using var pipe = StableDiffusionPipeline.FromPretrained("runwayml/stable-diffusion-v1-5");
/// using var result = pipe.Generate("a photo of a cat", numInferenceSteps: 30, seed: 0);
/// result.Images[0].Save("cat.png");
/// </code>
/// With the same seed it draws what diffusers draws on the CPU: the initial latents, then the scheduler's noise.
/// </summary>
public sealed class StableDiffusionPipeline : StableDiffusionPipelineBase
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>model_index.json</c>.</summary>
    public const string Name = "StableDiffusionPipeline";

    /// <summary>
    /// A pipeline of loaded components (the pipeline disposes them); <paramref name="log"/> receives its notes (null:
    /// stderr).
    /// </summary>
    public StableDiffusionPipeline(IVae vae, CLIPTextModel textEncoder, CLIPTokenizer tokenizer,
        UNet2DConditionModel unet, IScheduler scheduler, Action<string>? log = null)
        : base(vae, textEncoder, tokenizer, unet, scheduler, log, SchedulerConfigFixes.StepsOffset | SchedulerConfigFixes.ClipSample) { }

    /// <summary>A StableDiffusionPipeline around <paramref name="lender"/>'s components that borrows them and <paramref name="scheduler"/>,
    /// never disposed (the generation service's; see the base's constructor).</summary>
    internal StableDiffusionPipeline(StableDiffusionPipelineBase lender, IScheduler scheduler)
        : base(lender, scheduler) { }

    /// <inheritdoc/>
    public override string ClassName => Name;

    /// <summary>
    /// Loads a single-file checkpoint in the original layout (A1111/CivitAI/CompVis <c>.safetensors</c> or <c>.ckpt</c>), as
    /// diffusers' <c>from_single_file</c>, for text to image: the architecture is inferred from the keys and shapes (SD 1.x,
    /// 2.x with v-prediction) unless <paramref name="options"/> give an original YAML or a diffusers folder's configs; the
    /// tokenizer is the shipped CLIP vocabulary, the scheduler diffusers' (PNDM by default). Errors name the file and the key.
    /// </summary>
    public static StableDiffusionPipeline FromSingleFile(string path, SingleFileOptions? options = null)
    {
        using var c = SingleFile.SingleFileComponents.Load(path, options, Name);
        return c.Into((vae, text, tokenizer, unet, scheduler) => new StableDiffusionPipeline(vae, text, tokenizer, unet, scheduler, options?.Log), options?.TextEncoder);
    }

    /// <summary>
    /// Loads a StableDiffusionPipeline folder (or a Hub id): <c>vae</c>, <c>text_encoder</c>, <c>tokenizer</c>,
    /// <c>unet</c>, <c>scheduler</c>, each with <paramref name="options"/>: <see cref="LoadOptions.Variant"/> picks weight
    /// files such as <c>*.fp16.safetensors</c>, <see cref="LoadOptions.Dtype"/> / <see cref="LoadOptions.Device"/> place the
    /// models, <see cref="LoadOptions.Log"/> receives the pipeline's warnings. An <c>image_encoder</c> entry
    /// (CLIPVisionModelWithProjection, as diffusers' save_pretrained writes after load_ip_adapter) becomes
    /// <see cref="StableDiffusionPipelineBase.ImageEncoder"/> and a <c>feature_extractor/</c> that is there
    /// <see cref="StableDiffusionPipelineBase.FeatureExtractor"/>; safety_checker entries (and a feature_extractor whose
    /// folder is absent) are not loaded (logged when present).
    /// </summary>
    public static new StableDiffusionPipeline FromPretrained(string idOrPath, LoadOptions? options = null) =>
        StableDiffusionLoader.Load(idOrPath, options, Name, [Name],
            c => new StableDiffusionPipeline(c.Vae, c.TextEncoder, c.Tokenizer, c.Unet, c.Scheduler, options?.Log));

    /// <summary>
    /// Generates images (diffusers' <c>__call__</c>). <paramref name="height"/>/<paramref name="width"/> default to the
    /// UNet's sample_size × vae_scale_factor and must be multiples of 8. Randomness: a <paramref name="seed"/>
    /// (= <c>torch.manual_seed(seed)</c>), one <paramref name="generator"/>, a list of <paramref name="generators"/>
    /// (one per image), or none (torch's global generator). <paramref name="latents"/> replaces the initial draw;
    /// <paramref name="promptEmbeds"/> / <paramref name="negativePromptEmbeds"/> replace the text encoder.
    /// <paramref name="callbackOnStepEnd"/> is called after every step with the loop's named tensors (diffusers'
    /// <c>callback_on_step_end</c>); <paramref name="cancellationToken"/> stops the loop. <paramref name="crossAttentionKwargs"/>
    /// (diffusers' <c>cross_attention_kwargs</c>): its <c>Scale</c> weighs the loaded LoRAs in the UNet for this call and
    /// becomes the text encoder's LoRA scale (kept for later calls, as in diffusers 0.25.1).
    /// <paramref name="timesteps"/> (diffusers' <c>timesteps</c>, e.g. LCM's [999, 759, 499, 259]) replace
    /// <paramref name="numInferenceSteps"/> with custom timesteps for a scheduler that takes them (DDPM, LCM,
    /// CMStochasticIterative; others are refused in diffusers' words), as diffusers' <c>retrieve_timesteps</c>; the
    /// other Stable Diffusion, SDXL, ControlNet txt2img and T2I-Adapter calls take them alike (img2img / inpaint then
    /// keep the last <c>int(len(timesteps) · strength)</c> of them, as diffusers' <c>get_timesteps</c>).
    /// </summary>
    public ImagePipelineOutput Generate(PromptInput prompt = default, PromptInput negativePrompt = default,
        double guidanceScale = 7.5, double guidanceRescale = 0.0, int numImagesPerPrompt = 1, int? height = null, int? width = null,
        int numInferenceSteps = 50, double eta = 0.0, long? seed = null, Generator? generator = null,
        IReadOnlyList<Generator>? generators = null, Tensor? latents = null, Tensor? promptEmbeds = null,
        Tensor? negativePromptEmbeds = null, int? clipSkip = null, OutputType outputType = OutputType.Pil,
        StepEndCallback? callbackOnStepEnd = null, IProgress<PipelineProgress>? progress = null,
        CancellationToken cancellationToken = default, CrossAttentionOptions? crossAttentionKwargs = null, ImageInput ipAdapterImage = default, IReadOnlyList<long>? timesteps = null)
    {
        // 0. default height and width to the UNet's
        var (dh, dw) = DefaultSize();
        int h = height ?? dh, w = width ?? dw;

        // 1. check inputs
        PipelineSteps.CheckSize(Name, h, w, 8);
        CheckPromptInputs(prompt, negativePrompt, promptEmbeds, negativePromptEmbeds);
        CheckCommon(PipelineSteps.StepCount(Name, Scheduler, numInferenceSteps, timesteps), numImagesPerPrompt, guidanceScale, eta);
        PipelineSteps.CheckGuidanceRescale(Name, guidanceRescale);

        // 2. call parameters: batch, generators, no-grad mode and the call's dispose scope
        using var call = BeginCall(prompt, promptEmbeds, numImagesPerPrompt, seed, generator, generators);
        var (total, gens) = call;
        bool cfg = DoClassifierFreeGuidance(guidanceScale);

        // 3. encode the prompt; CFG batch = [negative, prompt]
        using var embeds = EncodePrompt(prompt, numImagesPerPrompt, cfg, negativePrompt, promptEmbeds, negativePromptEmbeds, clipSkip,
            crossAttentionKwargs?.Scale);
        RecordEmbeddings(embeds);
        var imageEmbeds = EncodeIPAdapterImage(ipAdapterImage, numImagesPerPrompt, cfg);

        // 4. timesteps
        var schedule = PipelineSteps.Timesteps(Scheduler, numInferenceSteps, Unet.Device, Name, timesteps);

        // 5. latents
        var current = InitialLatents(latents, [total, Unet.Config.InChannels, h / VaeScaleFactor, w / VaeScaleFactor],
            embeds.PromptEmbeds.dtype, gens);

        // 6. guidance embedding (UNets with time_cond_proj_dim)

        // 7. denoising loop
        var loop = PipelineSteps.GuidedLoop(Unet, cfg, guidanceScale, guidanceRescale, total, current.dtype, crossAttentionKwargs);
        current = loop.Run(LoopContext(schedule, current, embeds, cfg, eta, gens, callbackOnStepEnd, progress, cancellationToken, imageEmbeds));

        // 8. decode and postprocess
        return Finish(current, outputType);
    }
}
