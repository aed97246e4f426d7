using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// diffusers' <c>StableDiffusionImg2ImgPipeline</c> (0.25.1): the init image is encoded with the VAE (a posterior
/// sample drawn from the generator), noised to the start timestep with <c>scheduler.add_noise</c>, and denoised
/// over the last <c>int(num_inference_steps · strength)</c> steps. The output has the input image's size (rounded
/// down to a multiple of the VAE scale factor).
/// </summary>
public sealed class StableDiffusionImg2ImgPipeline : StableDiffusionPipelineBase
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>model_index.json</c>.</summary>
    public const string Name = "StableDiffusionImg2ImgPipeline";

    /// <summary>
    /// A pipeline of loaded components (the pipeline disposes them); <paramref name="log"/> receives its notes (null:
    /// stderr).
    /// </summary>
    public StableDiffusionImg2ImgPipeline(IVae vae, CLIPTextModel textEncoder, CLIPTokenizer tokenizer,
        UNet2DConditionModel unet, IScheduler scheduler, Action<string>? log = null)
        : base(vae, textEncoder, tokenizer, unet, scheduler, log, SchedulerConfigFixes.StepsOffset | SchedulerConfigFixes.ClipSample) { }

    /// <summary>A StableDiffusionImg2ImgPipeline around <paramref name="lender"/>'s components that borrows them and <paramref name="scheduler"/>,
    /// never disposed (the generation service's; see the base's constructor).</summary>
    internal StableDiffusionImg2ImgPipeline(StableDiffusionPipelineBase lender, IScheduler scheduler)
        : base(lender, scheduler) { }

    /// <inheritdoc/>
    public override string ClassName => Name;

    /// <summary>
    /// Loads a single-file checkpoint in the original layout (A1111/CivitAI/CompVis <c>.safetensors</c> or <c>.ckpt</c>), as
    /// diffusers' <c>from_single_file</c>, for image to image: the architecture is inferred from the keys and shapes (SD 1.x,
    /// 2.x with v-prediction) unless <paramref name="options"/> give an original YAML or a diffusers folder's configs; the
    /// tokenizer is the shipped CLIP vocabulary, the scheduler diffusers' (PNDM by default). Errors name the file and the key.
    /// </summary>
    public static StableDiffusionImg2ImgPipeline FromSingleFile(string path, SingleFileOptions? options = null)
    {
        using var c = SingleFile.SingleFileComponents.Load(path, options, Name);
        return c.Into((vae, text, tokenizer, unet, scheduler) => new StableDiffusionImg2ImgPipeline(vae, text, tokenizer, unet, scheduler, options?.Log), options?.TextEncoder);
    }

    /// <summary>Loads an img2img folder, or a StableDiffusionPipeline folder (diffusers accepts both).</summary>
    public static new StableDiffusionImg2ImgPipeline FromPretrained(string idOrPath, LoadOptions? options = null) =>
        StableDiffusionLoader.Load(idOrPath, options, Name, [Name, StableDiffusionPipeline.Name],
            c => new StableDiffusionImg2ImgPipeline(c.Vae, c.TextEncoder, c.Tokenizer, c.Unet, c.Scheduler, options?.Log));

    /// <summary>
    /// diffusers' <c>get_timesteps</c>: <c>init_timestep = min(int(n · strength), n)</c>, <c>t_start = max(n −
    /// init_timestep, 0)</c>, the loop runs <c>scheduler.timesteps[t_start · order:]</c> (for PNDM with
    /// skip_prk_steps that slice starts at the repeated timestep, as in diffusers). Returns the start index.
    /// </summary>
    public static int StartIndex(IScheduler scheduler, int numInferenceSteps, double strength) =>
        PipelineSteps.StartIndex(scheduler, numInferenceSteps, strength);

    /// <summary>
    /// Transforms <paramref name="image"/> guided by the prompt (diffusers' <c>__call__</c>; default strength 0.8).
    /// The random draws, in diffusers' order: the VAE posterior sample of the image, then the noise added to it,
    /// then whatever the scheduler draws. <paramref name="crossAttentionKwargs"/>: the LoRA scale, as in
    /// <see cref="StableDiffusionPipeline.Generate"/>. <paramref name="ipAdapterImage"/>: the image prompt of a loaded IP-Adapter (diffusers' <c>ip_adapter_image</c>; <see cref="StableDiffusionPipelineBase.LoadIPAdapter"/>).
    /// </summary>
    public ImagePipelineOutput Generate(PromptInput prompt = default, ImageInput image = default, double strength = 0.8,
        PromptInput negativePrompt = default, double guidanceScale = 7.5, int numImagesPerPrompt = 1, int numInferenceSteps = 50,
        double eta = 0.0, long? seed = null, Generator? generator = null, IReadOnlyList<Generator>? generators = null,
        Tensor? promptEmbeds = null, Tensor? negativePromptEmbeds = null, int? clipSkip = null,
        OutputType outputType = OutputType.Pil, StepEndCallback? callbackOnStepEnd = null,
        IProgress<PipelineProgress>? progress = null, CancellationToken cancellationToken = default,
        CrossAttentionOptions? crossAttentionKwargs = null, ImageInput ipAdapterImage = default, IReadOnlyList<long>? timesteps = null)
    {
        // 1. check inputs
        PipelineSteps.CheckStrengthRange(Name, strength);
        PipelineSteps.RequireImages(Name, image);
        CheckPromptInputs(prompt, negativePrompt, promptEmbeds, negativePromptEmbeds);
        CheckCommon(PipelineSteps.StepCount(Name, Scheduler, numInferenceSteps, timesteps), numImagesPerPrompt, guidanceScale, eta);

        // 2. call parameters (the generators are checked against the batch with the latents, as diffusers does)
        using var call = BeginCall(prompt, promptEmbeds, numImagesPerPrompt, seed, generator, generators, checkGeneratorCount: false);
        var (total, gens) = call;
        bool cfg = DoClassifierFreeGuidance(guidanceScale);

        // 3. encode the prompt
        using var embeds = EncodePrompt(prompt, numImagesPerPrompt, cfg, negativePrompt, promptEmbeds, negativePromptEmbeds, clipSkip,
            crossAttentionKwargs?.Scale);
        RecordEmbeddings(embeds);
        var imageEmbeds = EncodeIPAdapterImage(ipAdapterImage, numImagesPerPrompt, cfg);

        // 4. preprocess the image
        var pixels = image.Preprocess("init image", null, null, VaeScaleFactor, normalize: true, grayscale: false, binarize: false);
        PipelineSteps.CheckInitImageChannels(Name, pixels, Vae, allowLatents: true);
        Record("image_preprocessed", pixels);

        // 5. timesteps
        var (_, stepCount) = PipelineSteps.RetrieveTimesteps(Name, Scheduler, numInferenceSteps, timesteps, Unet.Device);
        var schedule = PipelineSteps.Img2ImgTimesteps(Name, Scheduler, stepCount, strength);

        // 6. latents: encode, duplicate per prompt, add noise
        var dtype = embeds.PromptEmbeds.dtype;
        CheckGeneratorCount(gens, total);
        var current = NoisedImageLatents(pixels.to(dtype, Unet.Device), schedule, total, gens);


        // 8. denoising loop
        var loop = PipelineSteps.GuidedLoop(Unet, cfg, guidanceScale, 0.0, total, current.dtype, crossAttentionKwargs);
        current = loop.Run(LoopContext(schedule, current, embeds, cfg, eta, gens, callbackOnStepEnd, progress, cancellationToken, imageEmbeds));

        // 9. decode and postprocess
        return Finish(current, outputType);
    }
}
