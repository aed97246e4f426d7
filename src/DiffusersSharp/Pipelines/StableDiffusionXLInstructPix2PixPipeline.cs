using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// diffusers' <c>StableDiffusionXLInstructPix2PixPipeline</c> (0.25.1; e.g. diffusers/sdxl-instructpix2pix-768): edits an
/// image by following a text instruction with SDXL's two text encoders and a UNet that takes the latents and the image
/// latents together (<c>in_channels</c> = 2 × the VAE's <c>latent_channels</c>). The image is encoded with the VAE (the
/// posterior's mode, not scaled by <c>scaling_factor</c>); guidance runs three UNet rows per image, [instruction, image only,
/// unconditional], with <c>uncond + guidance_scale · (text − image) + image_guidance_scale · (image − uncond)</c>, on when
/// guidance_scale &gt; 1 and image_guidance_scale ≥ 1 (<see cref="StableDiffusionInstructPix2PixPipeline.DoClassifierFreeGuidance"/>),
/// then <c>guidance_rescale</c>. The added conditioning is the pooled prompt embeddings [prompt, negative, negative] and one
/// micro-conditioning row <c>[original_size, crops_coords_top_left, target_size]</c> for every UNet row.
/// </summary>
public sealed class StableDiffusionXLInstructPix2PixPipeline : StableDiffusionXLPipelineBase
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>model_index.json</c>.</summary>
    public const string Name = "StableDiffusionXLInstructPix2PixPipeline";

    /// <summary>
    /// diffusers 0.25.1's <c>StableDiffusionXLInstructPix2PixPipeline(DiffusionPipeline, TextualInversionLoaderMixin, FromSingleFileMixin, StableDiffusionXLLoraLoaderMixin)</c> has no <c>IPAdapterMixin</c> and <see cref="Generate"/> takes no image prompt, so
    /// <c>LoadIPAdapter</c> and <c>SetIPAdapterScale</c> are refused.
    /// </summary>
    protected override LoaderMixins Loaders => LoaderMixins.TextualInversion | LoaderMixins.Lora;

    /// <summary>
    /// Builds the pipeline of loaded components (the pipeline disposes them). The UNet must take the latents and the image
    /// latents together (<c>in_channels</c> = 2 × the VAE's <c>latent_channels</c>); <paramref name="forceZerosForEmptyPrompt"/>
    /// is model_index.json's option. diffusers' class has no <c>requires_aesthetics_score</c>: its time ids are always
    /// original size, crop and target size.
    /// </summary>
    public StableDiffusionXLInstructPix2PixPipeline(IVae vae, CLIPTextModel textEncoder, CLIPTokenizer tokenizer,
        CLIPTextModelWithProjection textEncoder2, CLIPTokenizer tokenizer2, UNet2DConditionModel unet, IScheduler scheduler,
        bool forceZerosForEmptyPrompt = true, Action<string>? log = null)
        : base(vae, textEncoder ?? throw new ArgumentNullException(nameof(textEncoder)), tokenizer, textEncoder2, tokenizer2, unet,
            scheduler, forceZerosForEmptyPrompt, requiresAestheticsScore: false, log) =>
        CheckUnetChannels(null, unet.Config.InChannels, vae.LatentChannels, vae.LatentChannels);

    /// <inheritdoc/>
    public override string ClassName => Name;

    /// <summary>Loads an SDXL InstructPix2Pix folder (model_index.json's <c>_class_name</c> <see cref="Name"/>).</summary>
    public static new StableDiffusionXLInstructPix2PixPipeline FromPretrained(string idOrPath, LoadOptions? options = null) =>
        StableDiffusionXLLoader.Load(idOrPath, options, Name, [Name], c =>
        {
            string unetConfig = Path.Combine(Path.GetDirectoryName(c.Index.Path)!, "unet", UNet2DConditionModel.ConfigName);
            CheckUnetChannels(unetConfig, c.Unet.Config.InChannels, c.Vae.LatentChannels, c.Vae.LatentChannels);
            if (c.TextEncoder is null || c.Tokenizer is null)
                throw new ConfigException($"{c.Index.Path}: {Name} needs text_encoder and tokenizer (SDXL's first text encoder); the folder lists none")
                { FilePath = c.Index.Path, Key = "text_encoder" };
            return new StableDiffusionXLInstructPix2PixPipeline(c.Vae, c.TextEncoder, c.Tokenizer, c.TextEncoder2, c.Tokenizer2, c.Unet,
                c.Scheduler, c.ForceZerosForEmptyPrompt, options?.Log);
        });

    /// <summary>
    /// Edits <paramref name="image"/> as the prompt instructs (diffusers' <c>__call__</c>; defaults 100 steps, guidance_scale 5,
    /// image_guidance_scale 1.5). <paramref name="height"/> / <paramref name="width"/> default, as in diffusers, to the UNet's
    /// sample_size × vae_scale_factor, and must be the image's size (rounded down to a multiple of the VAE scale factor):
    /// the latents and the image latents are concatenated. <paramref name="image"/> may also be latents (4 channels), used as
    /// the image latents without encoding. <paramref name="originalSize"/> and <paramref name="targetSize"/> (height, width)
    /// default to (height, width), <paramref name="cropsCoordsTopLeft"/> (top, left) to (0, 0); diffusers' class has no
    /// negative sizes. <paramref name="denoisingEnd"/> ∈ (0, 1) stops early, as in the SDXL base. The random draws, in
    /// diffusers' order: the initial latents (the image's encoding draws nothing), then whatever the scheduler draws.
    /// <paramref name="latents"/>: the initial noise instead of a draw (scaled by <c>init_noise_sigma</c>).
    /// <paramref name="callbackOnStepEnd"/> sees <c>latents</c>, <c>prompt_embeds</c>, <c>add_text_embeds</c>,
    /// <c>add_time_ids</c> and <c>image_latents</c> (diffusers 0.25.1's class has only the legacy <c>callback</c>).
    /// </summary>
    public ImagePipelineOutput Generate(PromptInput prompt = default, ImageInput image = default, PromptInput prompt2 = default,
        int? height = null, int? width = null, int numInferenceSteps = 100, double? denoisingEnd = null, double guidanceScale = 5.0,
        double imageGuidanceScale = 1.5, PromptInput negativePrompt = default, PromptInput negativePrompt2 = default,
        int numImagesPerPrompt = 1, double eta = 0.0, long? seed = null, Generator? generator = null,
        IReadOnlyList<Generator>? generators = null, Tensor? latents = null, Tensor? promptEmbeds = null,
        Tensor? negativePromptEmbeds = null, Tensor? pooledPromptEmbeds = null, Tensor? negativePooledPromptEmbeds = null,
        OutputType outputType = OutputType.Pil, double guidanceRescale = 0.0, (int Height, int Width)? originalSize = null,
        (int Top, int Left) cropsCoordsTopLeft = default, (int Height, int Width)? targetSize = null,
        StepEndCallback? callbackOnStepEnd = null, IProgress<PipelineProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        // 0. default height and width to the UNet's
        int[] sample = Unet.Config.SampleSize ?? throw new DiffusersException($"{Name}: the UNet config has no sample_size; pass height and width");
        int h = height ?? sample[0] * VaeScaleFactor, w = width ?? sample[^1] * VaeScaleFactor;
        var original = originalSize ?? (h, w);
        var target = targetSize ?? (h, w);

        // 1. check inputs
        CheckPromptInputs(prompt, prompt2, negativePrompt, negativePrompt2, promptEmbeds, negativePromptEmbeds);
        CheckCommon(numInferenceSteps, numImagesPerPrompt, guidanceScale, guidanceRescale, eta);
        if (!double.IsFinite(imageGuidanceScale))
            throw new DiffusersException($"{Name}: image_guidance_scale must be a finite number, got {imageGuidanceScale}");
        CheckDenoisingEnd(denoisingEnd);
        CheckMicroConditioning(original, cropsCoordsTopLeft, target, null, default, null);
        PipelineSteps.RequireImages(Name, image);
        if (h <= 0 || w <= 0)
            throw new DiffusersException($"{Name}: height and width must be positive, got {h} and {w}");

        // 2. call parameters: batch, generators, no-grad mode and the call's dispose scope
        using var call = BeginCall(prompt, promptEmbeds, numImagesPerPrompt, seed, generator, generators);
        var (total, gens) = call;
        bool cfg = StableDiffusionInstructPix2PixPipeline.DoClassifierFreeGuidance(guidanceScale, imageGuidanceScale);
        var device = Unet.Device;

        // 3. encode the prompt; with guidance [prompt, negative, negative] (pix2pix's order, two unconditional text rows)
        using var embeds = EncodePrompt(prompt, prompt2, numImagesPerPrompt, cfg, negativePrompt, negativePrompt2, promptEmbeds,
            negativePromptEmbeds, pooledPromptEmbeds, negativePooledPromptEmbeds);
        var promptBatch = cfg
            ? torch.cat(new[] { embeds.PromptEmbeds, embeds.NegativePromptEmbeds!, embeds.NegativePromptEmbeds! })
            : embeds.PromptEmbeds;
        var textEmbeds = cfg
            ? torch.cat(new[] { embeds.PooledPromptEmbeds, embeds.NegativePooledPromptEmbeds!, embeds.NegativePooledPromptEmbeds! })
            : embeds.PooledPromptEmbeds;

        // 4. preprocess the image (its own size, rounded down to a multiple of the VAE scale factor); 5. timesteps
        var pixels = image.Preprocess("image", null, null, VaeScaleFactor, normalize: true, grayscale: false, binarize: false);
        PipelineSteps.CheckInitImageChannels(Name, pixels, Vae, allowLatents: true);
        Record("image_preprocessed", pixels);
        var schedule = PipelineSteps.Timesteps(Scheduler, numInferenceSteps, device);

        // 6. image latents: the VAE's mode (no scaling factor; the VAE in float32 when force_upcast and fp16), repeated to
        //    the batch; with guidance [image, image, zeros]
        var dtype = promptBatch.dtype;
        var imageLatents = PipelineSteps.InitImageLatents(Name, pixels.to(dtype, device), total, null,
            p => WithUpcastVae(() => PipelineSteps.VaeModeLatents(Vae, p.to(Vae.DType), (name, t) => Record("image_latent_" + name, t))).to(dtype),
            (n, batch) => $"{Name}: Cannot duplicate `image` of batch size {n} to {batch} text prompts.");
        if (cfg) imageLatents = torch.cat(new[] { imageLatents, imageLatents, torch.zeros_like(imageLatents) });
        Record("image_latents", imageLatents);

        // 7. initial latents of height × width; 8. they and the image latents together must be the UNet's input
        int latentChannels = Vae.LatentChannels;
        var current = InitialLatents(latents, [total, latentChannels, h / VaeScaleFactor, w / VaeScaleFactor], dtype, gens);
        CheckUnetChannels(null, Unet.Config.InChannels, latentChannels, (int)imageLatents.shape[1]);
        if (current.shape[2] != imageLatents.shape[2] || current.shape[3] != imageLatents.shape[3])
            throw new DiffusersException(
                $"{Name}: the image is {imageLatents.shape[2] * VaeScaleFactor}x{imageLatents.shape[3] * VaeScaleFactor} (height x width), " +
                $"but height and width are {h}x{w}{(height is null && width is null ? " (the UNet's sample_size × vae_scale_factor)" : "")}: " +
                "the latents and the image latents are concatenated, so pass height and width of the image's size");

        // 9. added time ids: one [original, crop, target] row for every UNet row
        var row = TimeIdsRow([original.Height, original.Width, cropsCoordsTopLeft.Top, cropsCoordsTopLeft.Left, target.Height, target.Width], dtype);
        var timeIds = row.to(device).repeat((cfg ? 3 : 1) * total, 1);

        // 10. denoising loop (denoising_end keeps the timesteps at or above its cutoff)
        schedule = ApplyDenoisingEnd(schedule, denoisingEnd);
        var loop = new InstructPix2PixDenoisingLoop(Unet, cfg, guidanceScale, imageGuidanceScale, guidanceRescale);
        var ctx = PipelineSteps.LoopContext(Name, Scheduler, schedule, current, promptBatch, null, cfg: false, eta, gens,
            callbackOnStepEnd, progress, cancellationToken, Trace);
        ctx.Tensors[InstructPix2PixDenoisingLoop.ImageLatentsKey] = imageLatents;
        ctx.Tensors[GuidedDenoisingLoop.TextEmbedsKey] = textEmbeds;
        ctx.Tensors[GuidedDenoisingLoop.TimeIdsKey] = timeIds;
        Record("unet_encoder_hidden_states", promptBatch);
        Record("unet_added_text_embeds", textEmbeds);
        Record("unet_added_time_ids", timeIds);
        current = loop.Run(ctx);

        // 11. decode (upcast when force_upcast) and postprocess
        return Finish(current, outputType);
    }

    /// <summary>
    /// diffusers' check that <c>num_channels_latents + num_channels_image == unet.config.in_channels</c>, as a
    /// <see cref="ConfigException"/> on the key <c>in_channels</c> (of <paramref name="file"/> when known).
    /// </summary>
    private static void CheckUnetChannels(string? file, int unetInChannels, int latentChannels, int imageChannels)
    {
        int sum = latentChannels + imageChannels;
        if (unetInChannels == sum) return;
        throw new ConfigException(
            $"{file ?? Name}: config key 'in_channels': Incorrect configuration settings! The UNet's in_channels is {unetInChannels}, but " +
            $"{Name} feeds it num_channels_latents {latentChannels} + num_channels_image {imageChannels} = {sum} " +
            "(the latents and the image latents, concatenated). Please verify the config of the UNet (an InstructPix2Pix SDXL UNet, " +
            $"such as diffusers/sdxl-instructpix2pix-768's, takes {sum}) or your image input.")
        {
            FilePath = file,
            Key = "in_channels",
        };
    }
}
