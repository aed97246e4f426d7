using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// diffusers' <c>StableDiffusionControlNetInpaintPipeline</c> (0.25.1): inpainting (as
/// <see cref="StableDiffusionInpaintPipeline"/>: a 9-channel inpainting UNet sees the mask and the masked image latents, a
/// 4-channel one's result is blended with the noised init image outside the mask) guided by one or several ControlNets,
/// which see the 4-channel latents. Default <c>controlnet_conditioning_scale</c> 0.5. The pipeline owns the ControlNet it
/// is given.
/// </summary>
public sealed class StableDiffusionControlNetInpaintPipeline : StableDiffusionControlNetPipelineBase
{
    /// <summary>diffusers' class name.</summary>
    public const string Name = "StableDiffusionControlNetInpaintPipeline";

    /// <summary>Builds the pipeline from its components; <paramref name="controlnet"/> is a <see cref="ControlNetModel"/> or a <see cref="MultiControlNetModel"/>.</summary>
    public StableDiffusionControlNetInpaintPipeline(IVae vae, CLIPTextModel textEncoder, CLIPTokenizer tokenizer,
        UNet2DConditionModel unet, nn.Module controlnet, IScheduler scheduler, Action<string>? log = null)
        : base(vae, textEncoder, tokenizer, unet, controlnet, scheduler, log) => PipelineSteps.CheckInpaintUnet(Name, unet);

    /// <inheritdoc/>
    public override string ClassName => Name;

    /// <summary>
    /// Loads a StableDiffusionControlNetInpaintPipeline folder (or Hub id) as diffusers' <c>save_pretrained</c> writes it: the Stable Diffusion components and
    /// the <c>controlnet</c> subfolder (a MultiControlNetModel's nets in <c>controlnet</c>, <c>controlnet_1</c>, …), each with
    /// <paramref name="options"/>; <see cref="DiffusionPipeline.FromPretrained"/> dispatches here by model_index.json's class.
    /// </summary>
    public static new StableDiffusionControlNetInpaintPipeline FromPretrained(string idOrPath, LoadOptions? options = null) =>
        StableDiffusionLoader.Load(idOrPath, options, Name, [Name],
            c => WithControlNets(c.Index, options, controlnet => new StableDiffusionControlNetInpaintPipeline(c.Vae, c.TextEncoder, c.Tokenizer, c.Unet, controlnet, c.Scheduler, options?.Log)));

    /// <summary>
    /// The components of an inpainting folder (or a StableDiffusionPipeline folder: 4-channel UNet path) at
    /// <paramref name="idOrPath"/>, each loaded with <paramref name="options"/>, and <paramref name="controlnet"/>.
    /// </summary>
    public static StableDiffusionControlNetInpaintPipeline FromPretrained(string idOrPath, nn.Module controlnet, LoadOptions? options = null) =>
        StableDiffusionLoader.Load(idOrPath, options, Name, [Name, StableDiffusionInpaintPipeline.Name, StableDiffusionPipeline.Name],
            c => new StableDiffusionControlNetInpaintPipeline(c.Vae, c.TextEncoder, c.Tokenizer, c.Unet, controlnet, c.Scheduler, options?.Log));

    /// <summary>
    /// Repaints the <paramref name="maskImage"/> region of <paramref name="image"/> guided by the prompt and the
    /// <paramref name="controlImage"/> of each net (diffusers' <c>__call__</c>; default strength 1.0). Image, mask and control
    /// images are resized to <paramref name="height"/> × <paramref name="width"/> (default: the init image's size). The
    /// ControlNet arguments are <see cref="StableDiffusionControlNetPipeline.Generate"/>'s, with a default scale of 0.5.
    /// Random draws in diffusers' order: with strength &lt; 1 (or a 4-channel UNet) the image's VAE sample, then the noise,
    /// then the masked image's VAE sample.
    /// <paramref name="ipAdapterImage"/>: the image prompt of a loaded IP-Adapter (diffusers' <c>ip_adapter_image</c>; <see cref="StableDiffusionPipelineBase.LoadIPAdapter"/>).
    /// </summary>
    public ImagePipelineOutput Generate(PromptInput prompt = default, ImageInput image = default, ImageInput maskImage = default,
        IReadOnlyList<ImageInput>? controlImage = null, int? height = null, int? width = null, double strength = 1.0,
        int numInferenceSteps = 50, double guidanceScale = 7.5, PromptInput negativePrompt = default, int numImagesPerPrompt = 1,
        double eta = 0.0, long? seed = null, Generator? generator = null, IReadOnlyList<Generator>? generators = null,
        Tensor? latents = null, Tensor? promptEmbeds = null, Tensor? negativePromptEmbeds = null,
        OutputType outputType = OutputType.Pil, IReadOnlyList<double>? controlnetConditioningScale = null, bool guessMode = false,
        IReadOnlyList<double>? controlGuidanceStart = null, IReadOnlyList<double>? controlGuidanceEnd = null,
        int? clipSkip = null, StepEndCallback? callbackOnStepEnd = null, IProgress<PipelineProgress>? progress = null,
        CancellationToken cancellationToken = default, ImageInput ipAdapterImage = default)
    {
        // 1. check inputs
        PipelineSteps.CheckStrengthRange(Name, strength);
        int vsf = VaeScaleFactor;
        if (height is int hh && (hh <= 0 || hh % 8 != 0) || width is int ww && (ww <= 0 || ww % 8 != 0))
            throw new DiffusersException($"{Name}: `height` and `width` have to be divisible by 8 but are {height} and {width}.");
        PipelineSteps.RequireImages(Name, image, maskImage);
        CheckPromptInputs(prompt, negativePrompt, promptEmbeds, negativePromptEmbeds);
        CheckCommon(numInferenceSteps, numImagesPerPrompt, guidanceScale, eta);
        var (scales, start, end) = ControlArguments(controlnetConditioningScale, 0.5, controlGuidanceStart, controlGuidanceEnd);

        // 2. call parameters: batch, generators, no-grad mode and the call's dispose scope
        using var call = BeginCall(prompt, promptEmbeds, numImagesPerPrompt, seed, generator, generators);
        var (total, gens) = call;
        bool cfg = guidanceScale > 1.0;   // diffusers' ControlNet inpaint: no time_cond_proj_dim condition (and no guidance embedding)
        bool guess = GuessMode(guessMode);
        var device = Unet.Device;

        // 3. encode the prompt
        using var embeds = EncodePrompt(prompt, numImagesPerPrompt, cfg, negativePrompt, promptEmbeds, negativePromptEmbeds, clipSkip);
        var imageEmbeds = EncodeIPAdapterImage(ipAdapterImage, numImagesPerPrompt, cfg);
        Record("prompt_embeds", embeds.PromptEmbeds);

        // 4. init image (to float32), its size for the mask and the control images
        var initImage = image.Preprocess("init image", height, width, vsf, normalize: true, grayscale: false, binarize: false).to(ScalarType.Float32);
        PipelineSteps.CheckInitImageChannels(Name, initImage, Vae, allowLatents: false);
        int h = (int)initImage.shape[2], w = (int)initImage.shape[3];
        Record("image_preprocessed", initImage);
        var images = PrepareControlImages(controlImage, "control_image", h, w, total, numImagesPerPrompt, cfg, guess);
        RecordControl(images);
        var maskCondition = maskImage.Preprocess("mask image", h, w, vsf, normalize: false, grayscale: true, binarize: true);
        var maskedImage = PipelineSteps.MaskedImage(Name, initImage, maskCondition);

        // 5. timesteps (as the inpaint pipeline: int(n · strength) ≥ 1)
        Scheduler.SetTimesteps(numInferenceSteps, device);
        var timesteps = PipelineSteps.Img2ImgTimesteps(Name, Scheduler, numInferenceSteps, strength, needsInitStep: true);
        var latentTimestep = timesteps.narrow(0, 0, 1).repeat(total);

        // 6. latents
        var dtype = embeds.PromptEmbeds.dtype;
        int unetChannels = Unet.Config.InChannels;
        var imageLatents = PipelineSteps.InpaintImageLatents(Name, unetChannels, latents, strength, total,
            () => EncodeVaeImage(initImage.to(dtype, device), gens, "image_latent"), diffusersWording: true);
        var (noise, current) = PipelineSteps.InpaintLatents(Name, Scheduler, latents, [total, Vae.LatentChannels, h / vsf, w / vsf],
            imageLatents, strength == 1.0, latentTimestep, gens, dtype, device);
        Record("noise", noise);
        Record("initial_latents", current);

        // 7. mask and masked image latents (doubled for guidance; diffusers' words when they do not divide the batch)
        var mask = torch.nn.functional.interpolate(maskCondition, new long[] { h / vsf, w / vsf }).to(dtype, device);
        var maskedImageLatents = EncodeVaeImage(maskedImage.to(dtype, device), gens, "masked_image_latent");
        mask = PipelineSteps.ForGuidance(PipelineSteps.RepeatToBatch(Name, mask, total, "masks", diffusersWording: true), cfg);
        maskedImageLatents = PipelineSteps.ForGuidance(
            PipelineSteps.RepeatToBatch(Name, maskedImageLatents, total, "images", diffusersWording: true), cfg);
        PipelineSteps.CheckInpaintChannels(Name, unetChannels, Vae.LatentChannels, mask, maskedImageLatents);

        // 8. denoising loop: the ControlNets see the 4-channel latents, the UNet its extra channels
        var loop = new InpaintDenoisingLoop(Unet, cfg, guidanceScale, null, imageLatents, noise)
        {
            ControlNet = Residuals(images, scales, start, end, guess, cfg),
        };
        var ctx = LoopContext(timesteps, current, embeds, cfg, eta, gens, callbackOnStepEnd, progress, cancellationToken, imageEmbeds);
        ctx.Tensors[InpaintDenoisingLoop.MaskKey] = mask;
        ctx.Tensors[InpaintDenoisingLoop.MaskedImageLatentsKey] = maskedImageLatents;
        current = loop.Run(ctx);

        // 9. decode and postprocess
        return Finish(current, outputType);
    }
}
