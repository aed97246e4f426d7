using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// diffusers' <c>StableDiffusionInstructPix2PixPipeline</c> (0.25.1; timbrooks/instruct-pix2pix): edits an image by
/// following a text instruction. The image is encoded with the VAE (the posterior's mode, not scaled by
/// <c>scaling_factor</c>) and concatenated to the latents along the channels at every step, so the UNet takes
/// 2 × the VAE's latent channels (8). Guidance runs three UNet passes per step, [instruction, image only,
/// unconditional]: <c>uncond + guidance_scale · (text − image) + image_guidance_scale · (image − uncond)</c>, on when
/// guidance_scale &gt; 1 and image_guidance_scale ≥ 1. The output has the input image's size (rounded down to a
/// multiple of the VAE scale factor).
/// </summary>
public sealed class StableDiffusionInstructPix2PixPipeline : StableDiffusionPipelineBase
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>model_index.json</c>.</summary>
    public const string Name = "StableDiffusionInstructPix2PixPipeline";

    /// <summary>
    /// A pipeline of loaded components (the pipeline disposes them); <paramref name="log"/> receives its notes (null:
    /// stderr). The UNet must take the latents and the image latents together (<c>in_channels</c> = 2 × the VAE's
    /// <c>latent_channels</c>). Unlike the other Stable Diffusion classes, diffusers' constructor corrects no scheduler config.
    /// </summary>
    public StableDiffusionInstructPix2PixPipeline(IVae vae, CLIPTextModel textEncoder, CLIPTokenizer tokenizer,
        UNet2DConditionModel unet, IScheduler scheduler, Action<string>? log = null)
        : base(vae, textEncoder, tokenizer, unet, scheduler, log) =>
        CheckUnetChannels(Name, null, unet.Config.InChannels, vae.LatentChannels, vae.LatentChannels);

    /// <inheritdoc/>
    public override string ClassName => Name;

    /// <summary>Loads an InstructPix2Pix folder (model_index.json's <c>_class_name</c> <see cref="Name"/>).</summary>
    public static new StableDiffusionInstructPix2PixPipeline FromPretrained(string idOrPath, LoadOptions? options = null) =>
        StableDiffusionLoader.Load(idOrPath, options, Name, [Name], c =>
        {
            string unetConfig = Path.Combine(Path.GetDirectoryName(c.Index.Path)!, "unet", UNet2DConditionModel.ConfigName);
            CheckUnetChannels(unetConfig, unetConfig, c.Unet.Config.InChannels, c.Vae.LatentChannels, c.Vae.LatentChannels);
            return new StableDiffusionInstructPix2PixPipeline(c.Vae, c.TextEncoder, c.Tokenizer, c.Unet, c.Scheduler, options?.Log);
        });

    /// <summary>
    /// diffusers' <c>do_classifier_free_guidance</c> for this pipeline: <c>guidance_scale &gt; 1 and
    /// image_guidance_scale &gt;= 1</c> (otherwise one UNet pass per step, on the prompt and the image).
    /// </summary>
    public static bool DoClassifierFreeGuidance(double guidanceScale, double imageGuidanceScale) =>
        guidanceScale > 1.0 && imageGuidanceScale >= 1.0;

    /// <summary>
    /// Edits <paramref name="image"/> as the prompt instructs (diffusers' <c>__call__</c>; defaults 100 steps,
    /// guidance_scale 7.5, image_guidance_scale 1.5). <paramref name="image"/> may also be latents (4 channels), used as
    /// the image latents without encoding. The random draws, in diffusers' order: the initial latents (the image's
    /// encoding draws nothing), then whatever the scheduler draws. <paramref name="latents"/>: the initial noise instead of
    /// a draw (scaled by <c>init_noise_sigma</c>), of the image latents' shape. <paramref name="ipAdapterImage"/>: the image
    /// prompt of a loaded IP-Adapter (diffusers' <c>ip_adapter_image</c>; <see cref="StableDiffusionPipelineBase.LoadIPAdapter"/>);
    /// with guidance its embeds are [image, negative, negative], as the prompt's.
    /// </summary>
    public ImagePipelineOutput Generate(PromptInput prompt = default, ImageInput image = default, int numInferenceSteps = 100,
        double guidanceScale = 7.5, double imageGuidanceScale = 1.5, PromptInput negativePrompt = default, int numImagesPerPrompt = 1,
        double eta = 0.0, long? seed = null, Generator? generator = null, IReadOnlyList<Generator>? generators = null,
        Tensor? latents = null, Tensor? promptEmbeds = null, Tensor? negativePromptEmbeds = null,
        OutputType outputType = OutputType.Pil, StepEndCallback? callbackOnStepEnd = null,
        IProgress<PipelineProgress>? progress = null, CancellationToken cancellationToken = default, ImageInput ipAdapterImage = default)
    {
        // 0. check inputs
        CheckPromptInputs(prompt, negativePrompt, promptEmbeds, negativePromptEmbeds);
        CheckCommon(numInferenceSteps, numImagesPerPrompt, guidanceScale, eta);
        if (double.IsNaN(imageGuidanceScale) || double.IsInfinity(imageGuidanceScale))
            throw new DiffusersException($"{Name}: image_guidance_scale must be a finite number, got {imageGuidanceScale}");
        PipelineSteps.RequireImages(Name, image);

        // 1. call parameters: batch, generators, no-grad mode and the call's dispose scope
        using var call = BeginCall(prompt, promptEmbeds, numImagesPerPrompt, seed, generator, generators);
        var (total, gens) = call;
        bool cfg = DoClassifierFreeGuidance(guidanceScale, imageGuidanceScale);
        var device = Unet.Device;

        // 2. encode the prompt: with guidance [prompt, negative, negative] (pix2pix's order, two unconditional text rows)
        using var embeds = EncodePrompt(prompt, numImagesPerPrompt, cfg, negativePrompt, promptEmbeds, negativePromptEmbeds);
        RecordEmbeddings(embeds);
        var promptBatch = cfg
            ? torch.cat(new[] { embeds.PromptEmbeds, embeds.NegativePromptEmbeds!, embeds.NegativePromptEmbeds! })
            : embeds.PromptEmbeds;
        Record("instruct_prompt_embeds", promptBatch);
        // 2.1 the IP-Adapter image's embeds: with guidance [image, negative, negative] (EncodeIPAdapterImage gives [negative; image])
        var imageEmbeds = EncodeIPAdapterImage(ipAdapterImage, numImagesPerPrompt, cfg);
        if (imageEmbeds is not null && cfg)
        {
            var halves = imageEmbeds.chunk(2);
            imageEmbeds = torch.cat(new[] { halves[1], halves[0], halves[0] });
        }

        // 3. preprocess the image
        var pixels = image.Preprocess("image", null, null, VaeScaleFactor, normalize: true, grayscale: false, binarize: false);
        PipelineSteps.CheckInitImageChannels(Name, pixels, Vae, allowLatents: true);
        Record("image_preprocessed", pixels);

        // 4. timesteps
        var timesteps = PipelineSteps.Timesteps(Scheduler, numInferenceSteps, device);

        // 5. image latents: the VAE's mode (no scaling factor), repeated to the batch; with guidance [image, image, zeros]
        var dtype = promptBatch.dtype;
        var imageLatents = PipelineSteps.InitImageLatents(Name, pixels.to(dtype, device), total, null,
            p => PipelineSteps.VaeModeLatents(Vae, p, (name, t) => Record("image_latent_" + name, t)),
            (n, batch) => $"{Name}: Cannot duplicate `image` of batch size {n} to {batch} text prompts.");
        if (cfg) imageLatents = torch.cat(new[] { imageLatents, imageLatents, torch.zeros_like(imageLatents) });
        Record("image_latents", imageLatents);

        // 6. initial latents, of the image latents' size
        int latentChannels = Vae.LatentChannels;
        var current = InitialLatents(latents, [total, latentChannels, imageLatents.shape[2], imageLatents.shape[3]], dtype, gens);

        // 7. the latents and the image latents together must be the UNet's channels
        CheckUnetChannels(Name, null, Unet.Config.InChannels, latentChannels, (int)imageLatents.shape[1]);

        // 8. denoising loop
        var loop = new InstructPix2PixDenoisingLoop(Unet, cfg, guidanceScale, imageGuidanceScale);
        var ctx = PipelineSteps.LoopContext(Name, Scheduler, timesteps, current, promptBatch, null, cfg: false, eta, gens,
            callbackOnStepEnd, progress, cancellationToken, Trace);
        ctx.Tensors[InstructPix2PixDenoisingLoop.ImageLatentsKey] = imageLatents;
        if (imageEmbeds is not null) ctx.Tensors[GuidedDenoisingLoop.ImageEmbedsKey] = imageEmbeds;
        current = loop.Run(ctx);

        // 9. decode and postprocess
        return Finish(current, outputType);
    }

    /// <summary>
    /// diffusers' check that <c>num_channels_latents + num_channels_image == unet.config.in_channels</c>, as a
    /// <see cref="ConfigException"/> on the key <c>in_channels</c> (of <paramref name="file"/> when known).
    /// </summary>
    private static void CheckUnetChannels(string source, string? file, int unetInChannels, int latentChannels, int imageChannels)
    {
        int sum = latentChannels + imageChannels;
        if (unetInChannels == sum) return;
        throw new ConfigException(
            $"{source}: config key 'in_channels': Incorrect configuration settings! The UNet's in_channels is {unetInChannels}, but " +
            $"{Name} feeds it num_channels_latents {latentChannels} + num_channels_image {imageChannels} = {sum} " +
            "(the latents and the image latents, concatenated). Please verify the config of the UNet (an InstructPix2Pix UNet, " +
            $"such as timbrooks/instruct-pix2pix's, takes {sum}) or your image input.")
        {
            FilePath = file,
            Key = "in_channels",
        };
    }
}
