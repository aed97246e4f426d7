using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// diffusers' <c>StableDiffusionInpaintPipeline</c> (0.25.1). White mask pixels (≥ 0.5 after greyscale conversion)
/// are repainted. With a 9-channel inpainting UNet (stable-diffusion-inpainting / 2-inpainting) the UNet input is
/// <c>cat([scale_model_input(latents), mask, masked_image_latents], dim=1)</c>; with an ordinary 4-channel UNet the
/// original image latents, noised to the next timestep, are blended back outside the mask after every step.
/// </summary>
public sealed class StableDiffusionInpaintPipeline : StableDiffusionPipelineBase
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>model_index.json</c>.</summary>
    public const string Name = "StableDiffusionInpaintPipeline";

    /// <summary>
    /// A pipeline of loaded components (the pipeline disposes them); <paramref name="log"/> receives its notes (null:
    /// stderr).
    /// </summary>
    public StableDiffusionInpaintPipeline(IVae vae, CLIPTextModel textEncoder, CLIPTokenizer tokenizer,
        UNet2DConditionModel unet, IScheduler scheduler, Action<string>? log = null)
        : base(vae, textEncoder, tokenizer, unet, scheduler, log, SchedulerConfigFixes.StepsOffset | SchedulerConfigFixes.SkipPrkSteps) =>
        PipelineSteps.CheckInpaintUnet(Name, unet);

    /// <summary>A StableDiffusionInpaintPipeline around <paramref name="lender"/>'s components that borrows them and <paramref name="scheduler"/>,
    /// never disposed (the generation service's; see the base's constructor).</summary>
    internal StableDiffusionInpaintPipeline(StableDiffusionPipelineBase lender, IScheduler scheduler)
        : base(lender, scheduler) =>
        PipelineSteps.CheckInpaintUnet(Name, lender.Unet);

    /// <inheritdoc/>
    public override string ClassName => Name;

    /// <summary>
    /// Loads a single-file checkpoint in the original layout (A1111/CivitAI/CompVis <c>.safetensors</c> or <c>.ckpt</c>), as
    /// diffusers' <c>from_single_file</c>, for inpainting (9-channel inpainting files, or 4-channel ones): the architecture is inferred from the keys and shapes (SD 1.x,
    /// 2.x with v-prediction) unless <paramref name="options"/> give an original YAML or a diffusers folder's configs; the
    /// tokenizer is the shipped CLIP vocabulary, the scheduler diffusers' (PNDM by default). Errors name the file and the key.
    /// </summary>
    public static StableDiffusionInpaintPipeline FromSingleFile(string path, SingleFileOptions? options = null)
    {
        using var c = SingleFile.SingleFileComponents.Load(path, options, Name);
        return c.Into((vae, text, tokenizer, unet, scheduler) => new StableDiffusionInpaintPipeline(vae, text, tokenizer, unet, scheduler, options?.Log), options?.TextEncoder);
    }

    /// <summary>Loads an inpaint folder, or a StableDiffusionPipeline folder (4-channel UNet path).</summary>
    public static new StableDiffusionInpaintPipeline FromPretrained(string idOrPath, LoadOptions? options = null) =>
        StableDiffusionLoader.Load(idOrPath, options, Name, [Name, StableDiffusionPipeline.Name],
            c => new StableDiffusionInpaintPipeline(c.Vae, c.TextEncoder, c.Tokenizer, c.Unet, c.Scheduler, options?.Log));

    /// <summary>
    /// Repaints the <paramref name="maskImage"/> region of <paramref name="image"/> (diffusers' <c>__call__</c>; default
    /// strength 1.0). Both are resized to <paramref name="height"/> × <paramref name="width"/> (default: the UNet's
    /// sample_size × vae_scale_factor) as diffusers does. Random draws in diffusers' order: with strength &lt; 1 (or a
    /// 4-channel UNet) the image's VAE sample, then the noise, then the masked image's VAE sample.
    /// <paramref name="crossAttentionKwargs"/>: the LoRA scale, as in <see cref="StableDiffusionPipeline.Generate"/>.
    /// <paramref name="paddingMaskCrop"/> (diffusers' <c>padding_mask_crop</c>, A1111's "only masked"): the region around
    /// the mask's non-black pixels, widened by that many pixels and grown to the aspect ratio of
    /// <paramref name="height"/> × <paramref name="width"/> (<see cref="ImageProcessor.GetCropRegion"/>), is cut from the
    /// image and the mask and resized to that size keeping its aspect ratio (resize mode "fill"); the result is put back
    /// into the original image at its own size (<see cref="ImageProcessor.ApplyOverlay"/>), whose pixels outside the mask
    /// stay as they were. As diffusers 0.25.1 it takes a 4-channel UNet, one <see cref="Image"/> each for image and mask
    /// (of one size), and the <see cref="OutputType.Pil"/> output. <paramref name="maskedImageLatents"/> (diffusers'
    /// <c>masked_image_latents</c>, [batch, latent channels, height / vae_scale_factor, width / vae_scale_factor], scaled as the VAE's latents) are used as
    /// they are: the masked image is neither made nor encoded. <paramref name="timesteps"/>: custom timesteps, as in
    /// <see cref="StableDiffusionPipeline.Generate"/>.
    /// <paramref name="ipAdapterImage"/>: the image prompt of a loaded IP-Adapter (diffusers' <c>ip_adapter_image</c>; <see cref="StableDiffusionPipelineBase.LoadIPAdapter"/>).
    /// </summary>
    public ImagePipelineOutput Generate(PromptInput prompt = default, ImageInput image = default, ImageInput maskImage = default,
        double strength = 1.0, int? height = null, int? width = null, PromptInput negativePrompt = default,
        double guidanceScale = 7.5, int numImagesPerPrompt = 1, int numInferenceSteps = 50, double eta = 0.0,
        long? seed = null, Generator? generator = null, IReadOnlyList<Generator>? generators = null, Tensor? latents = null,
        Tensor? promptEmbeds = null, Tensor? negativePromptEmbeds = null, int? clipSkip = null,
        OutputType outputType = OutputType.Pil, StepEndCallback? callbackOnStepEnd = null,
        IProgress<PipelineProgress>? progress = null, CancellationToken cancellationToken = default,
        CrossAttentionOptions? crossAttentionKwargs = null, int? paddingMaskCrop = null, ImageInput ipAdapterImage = default, Tensor? maskedImageLatents = null, IReadOnlyList<long>? timesteps = null)
    {
        // 0. default height and width to the UNet's
        var (dh, dw) = DefaultSize();
        int h = height ?? dh, w = width ?? dw;

        // 1. check inputs
        PipelineSteps.CheckStrengthRange(Name, strength);
        int vsf = VaeScaleFactor;
        PipelineSteps.CheckSize(Name, h, w, vsf);
        PipelineSteps.RequireImages(Name, image, maskImage);
        CheckPromptInputs(prompt, negativePrompt, promptEmbeds, negativePromptEmbeds);
        CheckCommon(PipelineSteps.StepCount(Name, Scheduler, numInferenceSteps, timesteps), numImagesPerPrompt, guidanceScale, eta);
        if (paddingMaskCrop is int pad) CheckPaddingMaskCrop(pad, image, maskImage, outputType);

        // 2. call parameters: batch, generators, no-grad mode and the call's dispose scope
        using var call = BeginCall(prompt, promptEmbeds, numImagesPerPrompt, seed, generator, generators);
        var (total, gens) = call;
        bool cfg = DoClassifierFreeGuidance(guidanceScale);
        var device = Unet.Device;

        // 3. encode the prompt
        using var embeds = EncodePrompt(prompt, numImagesPerPrompt, cfg, negativePrompt, promptEmbeds, negativePromptEmbeds, clipSkip,
            crossAttentionKwargs?.Scale);
        RecordEmbeddings(embeds);
        var imageEmbeds = EncodeIPAdapterImage(ipAdapterImage, numImagesPerPrompt, cfg);

        // 4. timesteps (diffusers' inpaint pipeline requires int(n · strength) ≥ 1; img2img only a non-empty slice)
        var (_, stepCount) = PipelineSteps.RetrieveTimesteps(Name, Scheduler, numInferenceSteps, timesteps, device);
        var schedule = PipelineSteps.Img2ImgTimesteps(Name, Scheduler, stepCount, strength, needsInitStep: true);
        var latentTimestep = schedule.narrow(0, 0, 1).repeat(total);

        // 5. preprocess image (to float32) and mask; with padding_mask_crop both cut to the region around the mask first
        CropRegion? cropsCoords = paddingMaskCrop is int padding ? FindCropRegion(maskImage.Images![0], w, h, padding) : null;
        var resizeMode = cropsCoords is null ? ResizeMode.Default : ResizeMode.Fill;
        var initImage = image.Preprocess("init image", h, w, vsf, normalize: true, grayscale: false, binarize: false, cropsCoords, resizeMode)
            .to(ScalarType.Float32);
        PipelineSteps.CheckInitImageChannels(Name, initImage, Vae, allowLatents: false);
        Record("image_preprocessed", initImage);

        // 6. latents
        var dtype = embeds.PromptEmbeds.dtype;
        int unetChannels = Unet.Config.InChannels;
        var imageLatents = PipelineSteps.InpaintImageLatents(Name, unetChannels, latents, strength, total,
            () => EncodeVaeImage(initImage.to(dtype, device), gens, "image_latent"));
        if (imageLatents is not null) Record("image_latents", imageLatents);
        var (noise, current) = PipelineSteps.InpaintLatents(Name, Scheduler, latents, [total, Vae.LatentChannels, h / vsf, w / vsf],
            imageLatents, strength == 1.0, latentTimestep, gens, dtype, device);
        Record("noise", noise);
        Record("initial_latents", current);

        // 7. mask and masked image latents, doubled for guidance
        var maskCondition = maskImage.Preprocess("mask image", h, w, vsf, normalize: false, grayscale: true, binarize: true, cropsCoords, resizeMode);
        Record("mask_condition", maskCondition);
        var mask = torch.nn.functional.interpolate(maskCondition, new long[] { h / vsf, w / vsf }).to(dtype, device);
        Record("mask_latent", mask);
        Tensor maskedLatents;
        if (maskedImageLatents is not null)
        {
            // given masked image latents are used as they are: the masked image is neither made nor encoded
            PipelineSteps.CheckMaskedImageLatents(Name, maskedImageLatents, Vae.LatentChannels, h / vsf, w / vsf);
            maskedLatents = maskedImageLatents.to(dtype, device);
        }
        else
        {
            var maskedImage = PipelineSteps.MaskedImage(Name, initImage, maskCondition);
            Record("masked_image", maskedImage);
            maskedLatents = EncodeVaeImage(maskedImage.to(dtype, device), gens, "masked_image_latent");
        }
        Record("masked_image_latents", maskedLatents);
        mask = PipelineSteps.ForGuidance(PipelineSteps.RepeatToBatch(Name, mask, total, "masks"), cfg);
        maskedLatents = PipelineSteps.ForGuidance(PipelineSteps.RepeatToBatch(Name, maskedLatents, total, "images"), cfg);

        // 8. sizes of mask, masked image and latents
        PipelineSteps.CheckInpaintChannels(Name, unetChannels, Vae.LatentChannels, mask, maskedLatents);

        var timestepCond = GuidanceScaleEmbedding(guidanceScale, total, current.dtype, device);

        // 10. denoising loop; the 9-channel UNet sees the mask and the masked image, the 4-channel one's result is
        // blended with the init image noised to the next timestep outside the mask
        var loop = new InpaintDenoisingLoop(Unet, cfg, guidanceScale, timestepCond, imageLatents, noise, crossAttentionKwargs: crossAttentionKwargs);
        var ctx = LoopContext(schedule, current, embeds, cfg, eta, gens, callbackOnStepEnd, progress, cancellationToken, imageEmbeds);
        ctx.Tensors[InpaintDenoisingLoop.MaskKey] = mask;
        ctx.Tensors[InpaintDenoisingLoop.MaskedImageLatentsKey] = maskedLatents;
        current = loop.Run(ctx);

        // 11. decode and postprocess; with padding_mask_crop each image is put back into the original
        var output = Finish(current, outputType);
        if (cropsCoords is not { } region) return output;
        using (output)
        {
            Image original = image.Images![0], originalMask = maskImage.Images![0];
            return new ImagePipelineOutput(output.Images.Select(im => ImageProcessor.ApplyOverlay(originalMask, original, im, region)).ToArray());
        }
    }

    /// <summary>diffusers' <c>check_inputs</c> for <c>padding_mask_crop</c> (0.25.1's, with 0.26's output type rule), and what the crop needs.</summary>
    private void CheckPaddingMaskCrop(int pad, ImageInput image, ImageInput maskImage, OutputType outputType)
    {
        if (pad < 0) throw new DiffusersException($"{Name}: padding_mask_crop is a margin in pixels, 0 or more; got {pad}");
        if (Unet.Config.InChannels != 4)
            throw new DiffusersException(
                $"{Name}: The UNet should have 4 input channels for inpainting mask crop, but has {Unet.Config.InChannels} input channels.");
        if (!image.IsSingleImage)
            throw new DiffusersException($"{Name}: The image should be one Image (diffusers: a PIL image) when inpainting mask crop, but is {image.Kind}.");
        if (!maskImage.IsSingleImage)
            throw new DiffusersException($"{Name}: The mask image should be one Image (diffusers: a PIL image) when inpainting mask crop, but is {maskImage.Kind}.");
        // diffusers 0.25.1 fails in apply_overlay on any other output; 0.26 refuses it in these words
        if (outputType != OutputType.Pil)
            throw new DiffusersException($"{Name}: The output type should be Pil when inpainting mask crop, but is {outputType}.");
        Image im = image.Images![0], mask = maskImage.Images![0];
        if (im.Width != mask.Width || im.Height != mask.Height)
            throw new DiffusersException(
                $"{Name}: padding_mask_crop finds the region in the mask and cuts it from the image, so they must have one size: the image is {im.Width}x{im.Height}, the mask {mask.Width}x{mask.Height}");
    }

    /// <summary><see cref="ImageProcessor.GetCropRegion"/>, its refusal naming the pipeline and the argument.</summary>
    private static CropRegion FindCropRegion(Image mask, int width, int height, int pad)
    {
        try { return ImageProcessor.GetCropRegion(mask, width, height, pad); }
        catch (DiffusersException e) { throw new DiffusersException($"{Name}: padding_mask_crop: {e.Message}", e); }
    }
}
