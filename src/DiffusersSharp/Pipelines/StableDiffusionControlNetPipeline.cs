using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// diffusers' <c>StableDiffusionControlNetPipeline</c> (0.25.1): text to image guided by one or several ControlNets.
/// <code>
/// using var controlnet = ControlNetModel.FromPretrained("lllyasviel/sd-controlnet-canny");
/// using var pipe = StableDiffusionControlNetPipeline.FromPretrained("runwayml/stable-diffusion-v1-5", controlnet);
/// using var result = pipe.Generate("a photo of a cat", [Image.LoadImage("edges.png")], numInferenceSteps: 30, seed: 0);
/// </code>
/// With the same seed it draws what diffusers draws on the CPU. The pipeline owns (and disposes) the ControlNet it is given.
/// </summary>
public sealed class StableDiffusionControlNetPipeline : StableDiffusionControlNetPipelineBase
{
    /// <summary>diffusers' class name.</summary>
    public const string Name = "StableDiffusionControlNetPipeline";

    /// <summary>Builds the pipeline from its components; <paramref name="controlnet"/> is a <see cref="ControlNetModel"/> or a <see cref="MultiControlNetModel"/>.</summary>
    public StableDiffusionControlNetPipeline(IVae vae, CLIPTextModel textEncoder, CLIPTokenizer tokenizer,
        UNet2DConditionModel unet, nn.Module controlnet, IScheduler scheduler, Action<string>? log = null)
        : base(vae, textEncoder, tokenizer, unet, controlnet, scheduler, log) { }

    /// <inheritdoc/>
    public override string ClassName => Name;

    /// <summary>
    /// Loads a StableDiffusionControlNetPipeline folder (or Hub id) as diffusers' <c>save_pretrained</c> writes it: the Stable Diffusion components and
    /// the <c>controlnet</c> subfolder (a MultiControlNetModel's nets in <c>controlnet</c>, <c>controlnet_1</c>, …), each with
    /// <paramref name="options"/>; <see cref="DiffusionPipeline.FromPretrained"/> dispatches here by model_index.json's class.
    /// </summary>
    public static new StableDiffusionControlNetPipeline FromPretrained(string idOrPath, LoadOptions? options = null) =>
        StableDiffusionLoader.Load(idOrPath, options, Name, [Name],
            c => WithControlNets(c.Index, options, controlnet => new StableDiffusionControlNetPipeline(c.Vae, c.TextEncoder, c.Tokenizer, c.Unet, controlnet, c.Scheduler, options?.Log)));

    /// <summary>
    /// diffusers' <c>StableDiffusionControlNetPipeline.from_pretrained(sd, controlnet=...)</c>: the Stable Diffusion
    /// components of <paramref name="idOrPath"/> (a StableDiffusionPipeline folder or Hub id), each loaded with
    /// <paramref name="options"/>, and <paramref name="controlnet"/> (a <see cref="ControlNetModel"/>, or a
    /// <see cref="MultiControlNetModel"/> for several), which the pipeline then owns.
    /// </summary>
    public static StableDiffusionControlNetPipeline FromPretrained(string idOrPath, nn.Module controlnet, LoadOptions? options = null) =>
        StableDiffusionLoader.Load(idOrPath, options, Name, [Name, StableDiffusionPipeline.Name],
            c => new StableDiffusionControlNetPipeline(c.Vae, c.TextEncoder, c.Tokenizer, c.Unet, controlnet, c.Scheduler, options?.Log));

    /// <summary>
    /// Generates images (diffusers' <c>__call__</c>). <paramref name="image"/>: the control image of each net, in net order
    /// (one image, a batch of one per prompt, or a [B, 3, H, W] tensor in [0, 1]); the output size defaults to the first
    /// control image's (rounded down to a multiple of 8). <paramref name="controlnetConditioningScale"/> (default 1.0),
    /// <paramref name="controlGuidanceStart"/> / <paramref name="controlGuidanceEnd"/> (default 0 and 1, the fraction of
    /// the steps each net acts in): one value or one per net. <paramref name="guessMode"/>: the ControlNet sees only the
    /// conditional half of the guidance batch. The other arguments are <see cref="StableDiffusionPipeline.Generate"/>'s.
    /// <paramref name="ipAdapterImage"/>: the image prompt of a loaded IP-Adapter (diffusers' <c>ip_adapter_image</c>; <see cref="StableDiffusionPipelineBase.LoadIPAdapter"/>).
    /// </summary>
    public ImagePipelineOutput Generate(PromptInput prompt = default, IReadOnlyList<ImageInput>? image = null,
        int? height = null, int? width = null, int numInferenceSteps = 50, double guidanceScale = 7.5,
        PromptInput negativePrompt = default, int numImagesPerPrompt = 1, double eta = 0.0, long? seed = null,
        Generator? generator = null, IReadOnlyList<Generator>? generators = null, Tensor? latents = null,
        Tensor? promptEmbeds = null, Tensor? negativePromptEmbeds = null, OutputType outputType = OutputType.Pil,
        IReadOnlyList<double>? controlnetConditioningScale = null, bool guessMode = false,
        IReadOnlyList<double>? controlGuidanceStart = null, IReadOnlyList<double>? controlGuidanceEnd = null,
        int? clipSkip = null, StepEndCallback? callbackOnStepEnd = null, IProgress<PipelineProgress>? progress = null,
        CancellationToken cancellationToken = default, ImageInput ipAdapterImage = default, IReadOnlyList<long>? timesteps = null)
    {
        // 1. check inputs
        PipelineSteps.CheckOptionalSize(Name, height, width);
        CheckPromptInputs(prompt, negativePrompt, promptEmbeds, negativePromptEmbeds);
        CheckCommon(PipelineSteps.StepCount(Name, Scheduler, numInferenceSteps, timesteps), numImagesPerPrompt, guidanceScale, eta);
        var (scales, start, end) = ControlArguments(controlnetConditioningScale, 1.0, controlGuidanceStart, controlGuidanceEnd);

        // 2. call parameters: batch, generators, no-grad mode and the call's dispose scope
        using var call = BeginCall(prompt, promptEmbeds, numImagesPerPrompt, seed, generator, generators);
        var (total, gens) = call;
        bool cfg = DoClassifierFreeGuidance(guidanceScale);
        bool guess = GuessMode(guessMode);

        // 3. encode the prompt; CFG batch = [negative, prompt]
        using var embeds = EncodePrompt(prompt, numImagesPerPrompt, cfg, negativePrompt, promptEmbeds, negativePromptEmbeds, clipSkip);
        var imageEmbeds = EncodeIPAdapterImage(ipAdapterImage, numImagesPerPrompt, cfg);
        Record("prompt_embeds", embeds.PromptEmbeds);

        // 4. control images; they set the output size
        var images = PrepareControlImages(image, "image", height, width, total, numImagesPerPrompt, cfg, guess);
        RecordControl(images);
        int h = (int)images[0].shape[2], w = (int)images[0].shape[3];

        // 5. timesteps
        var schedule = PipelineSteps.Timesteps(Scheduler, numInferenceSteps, Unet.Device, Name, timesteps);

        // 6. latents
        var current = InitialLatents(latents, [total, Unet.Config.InChannels, h / VaeScaleFactor, w / VaeScaleFactor],
            embeds.PromptEmbeds.dtype, gens);

        // 7. denoising loop with the ControlNet residuals
        var loop = PipelineSteps.GuidedLoop(Unet, cfg, guidanceScale, 0.0, total, current.dtype, null,
            Residuals(images, scales, start, end, guess, cfg));
        current = loop.Run(LoopContext(schedule, current, embeds, cfg, eta, gens, callbackOnStepEnd, progress, cancellationToken, imageEmbeds));

        // 8. decode and postprocess
        return Finish(current, outputType);
    }
}
