using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// diffusers' <c>StableDiffusionXLControlNetPipeline</c> (0.25.1, pipelines/controlnet/pipeline_controlnet_sd_xl.py):
/// SDXL text to image guided by one or several ControlNets, which get the same added conditioning (pooled text
/// embeddings and time ids) as the UNet.
/// <code>
/// using var controlnet = ControlNetModel.FromPretrained("diffusers/controlnet-canny-sdxl-1.0");
/// using var pipe = StableDiffusionXLControlNetPipeline.FromPretrained("stabilityai/stable-diffusion-xl-base-1.0", controlnet);
/// using var result = pipe.Generate("a photo of a cat", image: [Image.LoadImage("edges.png")], numInferenceSteps: 30, seed: 0);
/// </code>
/// With the same seed it draws what diffusers draws on the CPU. The pipeline owns (and disposes) the ControlNet it is given.
/// </summary>
public sealed class StableDiffusionXLControlNetPipeline : StableDiffusionXLControlNetPipelineBase
{
    /// <summary>diffusers' class name.</summary>
    public const string Name = "StableDiffusionXLControlNetPipeline";

    /// <summary>
    /// Builds the pipeline from its components; <paramref name="controlnet"/> is a <see cref="ControlNetModel"/> or a
    /// <see cref="MultiControlNetModel"/> whose nets fit the UNet (cross_attention_dim = both encoders' widths, the same
    /// blocks), else <see cref="ConfigException"/>.
    /// </summary>
    public StableDiffusionXLControlNetPipeline(IVae vae, CLIPTextModel textEncoder, CLIPTokenizer tokenizer,
        CLIPTextModelWithProjection textEncoder2, CLIPTokenizer tokenizer2, UNet2DConditionModel unet, nn.Module controlnet,
        IScheduler scheduler, bool forceZerosForEmptyPrompt = true, Action<string>? log = null)
        : base(vae, textEncoder, tokenizer, textEncoder2, tokenizer2, unet, controlnet, scheduler, forceZerosForEmptyPrompt,
            requiresAestheticsScore: false, log)
    {
    }

    /// <inheritdoc/>
    public override string ClassName => Name;

    /// <summary>
    /// Loads a StableDiffusionXLControlNetPipeline folder (or Hub id) as diffusers' <c>save_pretrained</c> writes it: the SDXL
    /// components and the <c>controlnet</c> subfolder (a MultiControlNetModel's nets in <c>controlnet</c>,
    /// <c>controlnet_1</c>, …), each with <paramref name="options"/>; <see cref="DiffusionPipeline.FromPretrained"/>
    /// dispatches here by model_index.json's class.
    /// </summary>
    public static new StableDiffusionXLControlNetPipeline FromPretrained(string idOrPath, LoadOptions? options = null) =>
        StableDiffusionXLLoader.Load(idOrPath, options, Name, [Name],
            c => ControlNetSet.WithControlNets(c.Index, options, controlnet => Create(c, controlnet, options)));

    /// <summary>
    /// diffusers' <c>StableDiffusionXLControlNetPipeline.from_pretrained(sdxl, controlnet=...)</c>: the SDXL components of
    /// <paramref name="idOrPath"/> (a StableDiffusionXLPipeline folder or Hub id), each loaded with <paramref name="options"/>,
    /// and <paramref name="controlnet"/>, which the pipeline then owns.
    /// </summary>
    public static StableDiffusionXLControlNetPipeline FromPretrained(string idOrPath, nn.Module controlnet, LoadOptions? options = null) =>
        StableDiffusionXLLoader.Load(idOrPath, options, Name, [Name, StableDiffusionXLPipeline.Name], c => Create(c, controlnet, options));

    private static StableDiffusionXLControlNetPipeline Create(StableDiffusionXLLoader.Loaded c, nn.Module controlnet, LoadOptions? options) =>
        new(c.Vae,
            c.TextEncoder ?? throw new ConfigException($"{c.Index.Path}: {Name} needs a text_encoder (this looks like a refiner folder)")
            { FilePath = c.Index.Path, Key = "text_encoder" },
            c.Tokenizer!, c.TextEncoder2, c.Tokenizer2, c.Unet, controlnet, c.Scheduler, c.ForceZerosForEmptyPrompt, options?.Log);

    /// <summary>
    /// Generates images (diffusers' <c>__call__</c>). <paramref name="image"/>: the control image of each net, in net order;
    /// the output size defaults to the first control image's (rounded down to a multiple of 8), and so does
    /// <paramref name="originalSize"/> (the control image's size), <paramref name="targetSize"/> to (height, width).
    /// <paramref name="controlnetConditioningScale"/> (default 1.0), <paramref name="controlGuidanceStart"/> /
    /// <paramref name="controlGuidanceEnd"/> (default 0 and 1): one value or one per net. <paramref name="guessMode"/>: the
    /// ControlNet sees only the conditional half of the guidance batch. <paramref name="crossAttentionKwargs"/>: the LoRA
    /// scale, as in <see cref="StableDiffusionXLPipeline.Generate"/>, whose other arguments these are.
    /// <paramref name="ipAdapterImage"/>: the image prompt of a loaded IP-Adapter (diffusers' <c>ip_adapter_image</c>; <see cref="StableDiffusionXLPipelineBase.LoadIPAdapter"/>).
    /// </summary>
    public ImagePipelineOutput Generate(PromptInput prompt = default, IReadOnlyList<ImageInput>? image = null,
        PromptInput prompt2 = default, int? height = null, int? width = null, int numInferenceSteps = 50, double guidanceScale = 5.0,
        PromptInput negativePrompt = default, PromptInput negativePrompt2 = default, int numImagesPerPrompt = 1, double eta = 0.0,
        long? seed = null, Generator? generator = null, IReadOnlyList<Generator>? generators = null, Tensor? latents = null,
        Tensor? promptEmbeds = null, Tensor? negativePromptEmbeds = null, Tensor? pooledPromptEmbeds = null,
        Tensor? negativePooledPromptEmbeds = null, OutputType outputType = OutputType.Pil,
        CrossAttentionOptions? crossAttentionKwargs = null, IReadOnlyList<double>? controlnetConditioningScale = null,
        bool guessMode = false, IReadOnlyList<double>? controlGuidanceStart = null, IReadOnlyList<double>? controlGuidanceEnd = null,
        (int Height, int Width)? originalSize = null, (int Top, int Left) cropsCoordsTopLeft = default,
        (int Height, int Width)? targetSize = null, (int Height, int Width)? negativeOriginalSize = null,
        (int Top, int Left) negativeCropsCoordsTopLeft = default, (int Height, int Width)? negativeTargetSize = null,
        int? clipSkip = null, StepEndCallback? callbackOnStepEnd = null, IProgress<PipelineProgress>? progress = null,
        CancellationToken cancellationToken = default, ImageInput ipAdapterImage = default)
    {
        // 1. check inputs
        PipelineSteps.CheckOptionalSize(Name, height, width);
        CheckPromptInputs(prompt, prompt2, negativePrompt, negativePrompt2, promptEmbeds, negativePromptEmbeds);
        CheckCommon(numInferenceSteps, numImagesPerPrompt, guidanceScale, 0.0, eta);
        var (scales, start, end) = Set.ControlArguments(controlnetConditioningScale, 1.0, controlGuidanceStart, controlGuidanceEnd);

        // 2. call parameters: batch, generators, no-grad mode and the call's dispose scope
        using var call = BeginCall(prompt, promptEmbeds, numImagesPerPrompt, seed, generator, generators);
        var (total, gens) = call;
        bool cfg = DoClassifierFreeGuidance(guidanceScale);
        bool guess = Set.GuessMode(guessMode);

        // 3. encode the prompt (both encoders take the LoRA scale)
        using var embeds = EncodePrompt(prompt, prompt2, numImagesPerPrompt, cfg, negativePrompt, negativePrompt2, promptEmbeds,
            negativePromptEmbeds, pooledPromptEmbeds, negativePooledPromptEmbeds, clipSkip, crossAttentionKwargs?.Scale);
        Record("prompt_embeds", embeds.PromptEmbeds);
        var imageEmbeds = EncodeIPAdapterImage(ipAdapterImage, numImagesPerPrompt, cfg);

        // 4. control images; they set the output size
        var images = Set.PrepareControlImages(image, "image", height, width, total, numImagesPerPrompt, cfg, guess);
        Record("control_image", images[0]);
        int h = (int)images[0].shape[2], w = (int)images[0].shape[3];
        var original = originalSize ?? (h, w);
        var target = targetSize ?? (h, w);
        CheckMicroConditioning(original, cropsCoordsTopLeft, target, negativeOriginalSize, negativeCropsCoordsTopLeft, negativeTargetSize);

        // 5. timesteps; 6. latents
        var timesteps = PipelineSteps.Timesteps(Scheduler, numInferenceSteps, Unet.Device);
        var dtype = embeds.PromptEmbeds.dtype;
        var current = InitialLatents(latents, [total, Unet.Config.InChannels, h / VaeScaleFactor, w / VaeScaleFactor], dtype, gens);

        // 7. added time ids; with guidance the [negative; positive] pair is repeated per image, as in the txt2img pipeline
        var (unetTimeIds, negativeAddTimeIds) = Txt2ImgTimeIds(total, cfg, dtype, original, cropsCoordsTopLeft, target,
            negativeOriginalSize, negativeCropsCoordsTopLeft, negativeTargetSize);

        // 8. denoising loop with the ControlNet residuals (the nets get the UNet's added conditioning)
        var loop = PipelineSteps.GuidedLoop(Unet, cfg, guidanceScale, 0.0, total, current.dtype, crossAttentionKwargs,
            Set.Residuals(images, scales, start, end, guess, cfg));
        current = loop.Run(LoopContext(timesteps, current, embeds, unetTimeIds, cfg ? negativeAddTimeIds : null, cfg, eta, gens,
            callbackOnStepEnd, progress, cancellationToken, imageEmbeds));

        // 9. decode (upcast when force_upcast) and postprocess
        return Finish(current, outputType);
    }
}
