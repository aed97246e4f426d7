using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// diffusers' <c>StableDiffusionXLPipeline</c> (0.25.1): text to image with the two SDXL text encoders and the UNet's
/// micro-conditioning (original size, crop, target size).
/// <code>
/// using var pipe = StableDiffusionXLPipeline.FromPretrained("stabilityai/stable-diffusion-xl-base-1.0");
/// using var result = pipe.Generate("a photo of a cat", numInferenceSteps: 30, seed: 0);
/// result.Images[0].Save("cat.png");
/// </code>
/// With the same seed it draws what diffusers draws on the CPU: the initial latents, then the scheduler's noise.
/// </summary>
public sealed class StableDiffusionXLPipeline : StableDiffusionXLPipelineBase
{
    /// <summary>diffusers' class name.</summary>
    public const string Name = "StableDiffusionXLPipeline";

    /// <summary>Builds the pipeline from its components (<paramref name="forceZerosForEmptyPrompt"/>: model_index.json's option).</summary>
    public StableDiffusionXLPipeline(IVae vae, CLIPTextModel textEncoder, CLIPTokenizer tokenizer,
        CLIPTextModelWithProjection textEncoder2, CLIPTokenizer tokenizer2, UNet2DConditionModel unet, IScheduler scheduler,
        bool forceZerosForEmptyPrompt = true, Action<string>? log = null)
        : base(vae, textEncoder ?? throw new ArgumentNullException(nameof(textEncoder)), tokenizer, textEncoder2, tokenizer2, unet,
            scheduler, forceZerosForEmptyPrompt, requiresAestheticsScore: false, log)
    {
    }

    /// <inheritdoc/>
    public override string ClassName => Name;

    /// <summary>
    /// Loads a StableDiffusionXLPipeline folder (or a Hub id): <c>vae</c>, <c>text_encoder</c>, <c>tokenizer</c>,
    /// <c>text_encoder_2</c>, <c>tokenizer_2</c>, <c>unet</c>, <c>scheduler</c>, each with <paramref name="options"/>, and
    /// model_index.json's <c>force_zeros_for_empty_prompt</c>.
    /// </summary>
    public static new StableDiffusionXLPipeline FromPretrained(string idOrPath, LoadOptions? options = null) =>
        StableDiffusionXLLoader.Load(idOrPath, options, Name, [Name],
            c => new StableDiffusionXLPipeline(c.Vae,
                c.TextEncoder ?? throw new ConfigException($"{c.Index.Path}: {Name} needs a text_encoder (this looks like a refiner folder; load it with StableDiffusionXLImg2ImgPipeline)")
                { FilePath = c.Index.Path, Key = "text_encoder" },
                c.Tokenizer!, c.TextEncoder2, c.Tokenizer2, c.Unet, c.Scheduler, c.ForceZerosForEmptyPrompt, options?.Log));

    /// <summary>
    /// Loads an SDXL base checkpoint in the original layout (A1111/CivitAI <c>.safetensors</c>, or <c>.ckpt</c>), as diffusers'
    /// <c>from_single_file</c>; <paramref name="options"/> may give a diffusers folder / Hub id whose configs and tokenizers to
    /// use (<see cref="SingleFileOptions.Config"/>). A refiner file is refused (load it with the img2img pipeline).
    /// </summary>
    public static StableDiffusionXLPipeline FromSingleFile(string path, SingleFileOptions? options = null) =>
        StableDiffusionXLSingleFile.Load(path, options, Name, allowRefiner: false, p => new StableDiffusionXLPipeline(
            p.Vae, p.TextEncoder!, p.Tokenizer!, p.TextEncoder2, p.Tokenizer2, p.Unet, p.Scheduler, forceZerosForEmptyPrompt: true, options?.Log));

    /// <summary>
    /// Generates images (diffusers' <c>__call__</c>). <paramref name="height"/>/<paramref name="width"/> default to the
    /// UNet's sample_size × vae_scale_factor and must be multiples of 8. <paramref name="originalSize"/> and
    /// <paramref name="targetSize"/> (height, width) default to (height, width), <paramref name="cropsCoordsTopLeft"/> (top,
    /// left) to (0, 0); the negative row uses the <c>negative*</c> values only when both negative sizes are given.
    /// <paramref name="denoisingEnd"/> ∈ (0, 1) stops early (output latents for a refiner with the same
    /// <c>denoising_start</c>); 1 or more runs every step, as diffusers, which ignores it there. Randomness: a <paramref name="seed"/>, one <paramref name="generator"/>, a list of
    /// <paramref name="generators"/> (one per image), or none. <paramref name="callbackOnStepEnd"/> sees <c>latents</c>,
    /// <c>prompt_embeds</c>, <c>add_text_embeds</c>, <c>add_time_ids</c> and the negative ones.
    /// <paramref name="crossAttentionKwargs"/> (diffusers' <c>cross_attention_kwargs</c>): its <c>Scale</c> weighs the loaded
    /// LoRAs in the UNet for this call and becomes both text encoders' LoRA scale (kept for later calls, as in 0.25.1).
    /// <paramref name="ipAdapterImage"/>: the image prompt of a loaded IP-Adapter (diffusers' <c>ip_adapter_image</c>; <see cref="StableDiffusionXLPipelineBase.LoadIPAdapter"/>).
    /// </summary>
    public ImagePipelineOutput Generate(PromptInput prompt = default, PromptInput prompt2 = default, int? height = null,
        int? width = null, int numInferenceSteps = 50, double? denoisingEnd = null, double guidanceScale = 5.0,
        PromptInput negativePrompt = default, PromptInput negativePrompt2 = default, int numImagesPerPrompt = 1, double eta = 0.0,
        long? seed = null, Generator? generator = null, IReadOnlyList<Generator>? generators = null, Tensor? latents = null,
        Tensor? promptEmbeds = null, Tensor? negativePromptEmbeds = null, Tensor? pooledPromptEmbeds = null,
        Tensor? negativePooledPromptEmbeds = null, OutputType outputType = OutputType.Pil, double guidanceRescale = 0.0,
        (int Height, int Width)? originalSize = null, (int Top, int Left) cropsCoordsTopLeft = default,
        (int Height, int Width)? targetSize = null, (int Height, int Width)? negativeOriginalSize = null,
        (int Top, int Left) negativeCropsCoordsTopLeft = default, (int Height, int Width)? negativeTargetSize = null,
        int? clipSkip = null, StepEndCallback? callbackOnStepEnd = null, IProgress<PipelineProgress>? progress = null,
        CancellationToken cancellationToken = default, CrossAttentionOptions? crossAttentionKwargs = null, IReadOnlyList<long>? timesteps = null,
        ImageInput ipAdapterImage = default)
    {
        // 0. default height and width to the UNet's
        int[] sample = Unet.Config.SampleSize ?? throw new DiffusersException($"{Name}: the UNet config has no sample_size; pass height and width");
        int h = height ?? sample[0] * VaeScaleFactor, w = width ?? sample[^1] * VaeScaleFactor;
        var original = originalSize ?? (h, w);
        var target = targetSize ?? (h, w);

        // 1. check inputs
        PipelineSteps.CheckSize(Name, h, w, 8);
        CheckPromptInputs(prompt, prompt2, negativePrompt, negativePrompt2, promptEmbeds, negativePromptEmbeds);
        CheckCommon(PipelineSteps.StepCount(Name, Scheduler, numInferenceSteps, timesteps), numImagesPerPrompt, guidanceScale, guidanceRescale, eta);
        CheckDenoisingEnd(denoisingEnd);
        CheckMicroConditioning(original, cropsCoordsTopLeft, target, negativeOriginalSize, negativeCropsCoordsTopLeft, negativeTargetSize);

        // 2. call parameters: batch, generators, no-grad mode and the call's dispose scope
        using var call = BeginCall(prompt, promptEmbeds, numImagesPerPrompt, seed, generator, generators);
        var (total, gens) = call;
        bool cfg = DoClassifierFreeGuidance(guidanceScale);

        // 3. encode the prompt
        using var embeds = EncodePrompt(prompt, prompt2, numImagesPerPrompt, cfg, negativePrompt, negativePrompt2, promptEmbeds,
            negativePromptEmbeds, pooledPromptEmbeds, negativePooledPromptEmbeds, clipSkip,
            crossAttentionKwargs?.Scale);
        Record("prompt_embeds", embeds.PromptEmbeds);
        var imageEmbeds = EncodeIPAdapterImage(ipAdapterImage, numImagesPerPrompt, cfg);

        // 4. timesteps; 5. latents
        var schedule = PipelineSteps.Timesteps(Scheduler, numInferenceSteps, Unet.Device, Name, timesteps);
        var dtype = embeds.PromptEmbeds.dtype;
        var current = InitialLatents(latents, [total, Unet.Config.InChannels, h / VaeScaleFactor, w / VaeScaleFactor], dtype, gens);

        // 7. added time ids; with guidance diffusers repeats the [negative; positive] pair per image, so the rows alternate
        var (unetTimeIds, negativeAddTimeIds) = Txt2ImgTimeIds(total, cfg, dtype, original, cropsCoordsTopLeft, target,
            negativeOriginalSize, negativeCropsCoordsTopLeft, negativeTargetSize);

        // 8. denoising loop (denoising_end keeps the timesteps at or above its cutoff)
        schedule = ApplyDenoisingEnd(schedule, denoisingEnd);
        var loop = PipelineSteps.GuidedLoop(Unet, cfg, guidanceScale, guidanceRescale, total, current.dtype, crossAttentionKwargs);
        current = loop.Run(LoopContext(schedule, current, embeds, unetTimeIds, cfg ? negativeAddTimeIds : null, cfg, eta, gens,
            callbackOnStepEnd, progress, cancellationToken, imageEmbeds));

        // 9. decode (upcast when force_upcast) and postprocess
        return Finish(current, outputType);
    }
}
