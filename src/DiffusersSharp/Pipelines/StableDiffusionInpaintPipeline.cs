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
        : base(vae, textEncoder, tokenizer, unet, scheduler, log)
    {
        int inChannels = unet.Config.InChannels;
        if (inChannels != 4 && inChannels != 9)
            throw new ConfigException($"{Name}: the UNet should have either 4 or 9 input channels, not {inChannels}") { Key = "in_channels" };
    }

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
    /// </summary>
    public ImagePipelineOutput Generate(PromptInput prompt = default, ImageInput image = default, ImageInput maskImage = default,
        double strength = 1.0, int? height = null, int? width = null, PromptInput negativePrompt = default,
        double guidanceScale = 7.5, int numImagesPerPrompt = 1, int numInferenceSteps = 50, double eta = 0.0,
        long? seed = null, Generator? generator = null, IReadOnlyList<Generator>? generators = null, Tensor? latents = null,
        Tensor? promptEmbeds = null, Tensor? negativePromptEmbeds = null, int? clipSkip = null,
        OutputType outputType = OutputType.Pil, StepEndCallback? callbackOnStepEnd = null,
        IProgress<PipelineProgress>? progress = null, CancellationToken cancellationToken = default,
        CrossAttentionOptions? crossAttentionKwargs = null)
    {
        // 0. default height and width to the UNet's
        var (dh, dw) = DefaultSize();
        int h = height ?? dh, w = width ?? dw;

        // 1. check inputs
        if (double.IsNaN(strength) || strength < 0 || strength > 1)
            throw new DiffusersException($"{Name}: the value of strength should be in [0.0, 1.0] but is {strength}");
        int vsf = VaeScaleFactor;
        if (h <= 0 || w <= 0 || h % vsf != 0 || w % vsf != 0)
            throw new DiffusersException($"{Name}: height and width have to be positive and divisible by {vsf} but are {h} and {w}");
        if (image.IsNone) throw new DiffusersException($"{Name}: an init image is required");
        if (maskImage.IsNone) throw new DiffusersException($"{Name}: a mask image is required");
        CheckPromptInputs(prompt, negativePrompt, promptEmbeds, negativePromptEmbeds);
        CheckCommon(numInferenceSteps, numImagesPerPrompt, guidanceScale, eta);

        // 2. call parameters
        int batchSize = prompt.IsNone ? (int)promptEmbeds!.shape[0] : prompt.Items.Count;
        int total = batchSize * numImagesPerPrompt;
        var gens = Generators(seed, generator, generators, out var ownGenerator);
        using var _ = ownGenerator;
        CheckGeneratorCount(gens, total);
        bool cfg = DoClassifierFreeGuidance(guidanceScale);
        var device = Unet.Device;

        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();

        // 3. encode the prompt
        using var embeds = EncodePrompt(prompt, numImagesPerPrompt, cfg, negativePrompt, promptEmbeds, negativePromptEmbeds, clipSkip,
            crossAttentionKwargs?.Scale);
        Record("prompt_embeds", embeds.PromptEmbeds);
        if (embeds.NegativePromptEmbeds is { } neg) Record("negative_prompt_embeds", neg);

        // 4. timesteps
        Scheduler.SetTimesteps(numInferenceSteps, device);
        int start = StableDiffusionImg2ImgPipeline.StartIndex(Scheduler, numInferenceSteps, strength);
        // diffusers' inpaint pipeline requires num_inference_steps - t_start ≥ 1 (img2img only needs a non-empty slice)
        StableDiffusionImg2ImgPipeline.CheckStrength(Name, strength, numInferenceSteps,
            Math.Min((int)(numInferenceSteps * strength), numInferenceSteps) < 1 ? int.MaxValue : start, Scheduler.Timesteps.shape[0]);
        var timesteps = Scheduler.Timesteps.narrow(0, start, Scheduler.Timesteps.shape[0] - start);
        var latentTimestep = timesteps.narrow(0, 0, 1).repeat(total);
        bool isStrengthMax = strength == 1.0;

        // 5. preprocess image (to float32) and mask
        var initImage = image.Preprocess("init image", h, w, vsf, normalize: true, grayscale: false, binarize: false).to(ScalarType.Float32);
        if (initImage.shape[1] != Vae.InChannels)
            throw new DiffusersException(
                $"{Name}: the init image has {initImage.shape[1]} channels, the VAE takes {Vae.InChannels} (RGB); convert it with Image.ToRgb()");
        Record("image_preprocessed", initImage);

        // 6. latents
        var dtype = embeds.PromptEmbeds.dtype;
        int latentChannels = Vae.LatentChannels;
        int unetChannels = Unet.Config.InChannels;
        bool returnImageLatents = unetChannels == 4;
        long[] shape = [total, latentChannels, h / vsf, w / vsf];
        Tensor? imageLatents = null;
        if (returnImageLatents || (latents is null && !isStrengthMax))
        {
            var px = initImage.to(dtype, device);
            imageLatents = EncodeVaeImage(px, gens, "image_latent");
            imageLatents = imageLatents.repeat(total / imageLatents.shape[0], 1, 1, 1);
            Record("image_latents", imageLatents);
        }
        Tensor noise, current;
        if (latents is null)
        {
            noise = Runtime.TorchUtils.RandnTensor(shape, gens, dtype, device);
            current = isStrengthMax ? noise * Scheduler.InitNoiseSigma : Scheduler.AddNoise(imageLatents!, noise, latentTimestep);
        }
        else
        {
            if (!latents.shape.SequenceEqual(shape))
                throw new DiffusersException($"{Name}: latents have shape [{string.Join(", ", latents.shape)}], expected [{string.Join(", ", shape)}]");
            noise = latents.to(device);
            current = noise * Scheduler.InitNoiseSigma;
        }
        Record("noise", noise);
        Record("initial_latents", current);

        // 7. mask and masked image latents
        var maskCondition = maskImage.Preprocess("mask image", h, w, vsf, normalize: false, grayscale: true, binarize: true);
        Record("mask_condition", maskCondition);
        var maskedImage = initImage * (maskCondition < 0.5);
        Record("masked_image", maskedImage);
        var mask = torch.nn.functional.interpolate(maskCondition, new long[] { h / vsf, w / vsf }).to(dtype, device);
        Record("mask_latent", mask);
        var maskedImageLatents = EncodeVaeImage(maskedImage.to(dtype, device), gens, "masked_image_latent");
        Record("masked_image_latents", maskedImageLatents);
        mask = RepeatToBatch(mask, total, "masks");
        maskedImageLatents = RepeatToBatch(maskedImageLatents, total, "images");
        if (cfg)
        {
            mask = torch.cat(new[] { mask, mask });
            maskedImageLatents = torch.cat(new[] { maskedImageLatents, maskedImageLatents });
        }

        // 8. sizes of mask, masked image and latents
        if (unetChannels == 9 && latentChannels + mask.shape[1] + maskedImageLatents.shape[1] != unetChannels)
            throw new DiffusersException(
                $"{Name}: the UNet expects {unetChannels} input channels but gets latents {latentChannels} + mask {mask.shape[1]} + masked image {maskedImageLatents.shape[1]}");

        var timestepCond = GuidanceScaleEmbedding(guidanceScale, total, current.dtype, device);

        // 10. denoising loop; the 9-channel UNet sees the mask and the masked image, the 4-channel one's result is
        // blended with the init image noised to the next timestep outside the mask
        var loop = new InpaintDenoisingLoop(Unet, cfg, guidanceScale, timestepCond, imageLatents, noise, crossAttentionKwargs: crossAttentionKwargs);
        var ctx = LoopContext(timesteps, current, embeds, cfg, eta, gens, callbackOnStepEnd, progress, cancellationToken);
        ctx.Tensors[InpaintDenoisingLoop.MaskKey] = mask;
        ctx.Tensors[InpaintDenoisingLoop.MaskedImageLatentsKey] = maskedImageLatents;
        current = loop.Run(ctx);

        // 11. decode and postprocess
        return Finish(current, outputType);
    }

    private Tensor RepeatToBatch(Tensor t, int batch, string what)
    {
        if (t.shape[0] >= batch) return t;
        if (batch % t.shape[0] != 0)
            throw new DiffusersException(
                $"{Name}: {t.shape[0]} {what} cannot be duplicated to the total batch size {batch}; pass a number of {what} that divides it");
        return t.repeat(batch / t.shape[0], 1, 1, 1);
    }
}
