using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// diffusers' <c>StableDiffusionLatentUpscalePipeline</c> (0.25.1): text-guided 2× upscaling of Stable Diffusion latents
/// (<c>stabilityai/sd-x2-latent-upscaler</c>), with a UNet of K-diffusion blocks. The image latents (an RGB image is
/// VAE-encoded first) are enlarged 2× (nearest) and concatenated to the latents on the channels at every step
/// (<c>in_channels</c> 8 = 4 + 4); the UNet runs at <c>log(σ) / 4</c> of the scheduler's σ and is conditioned on the
/// text encoder's last hidden states (<c>hidden_states[-1]</c>, before the final LayerNorm) and on
/// <c>timestep_cond</c> = 64 ones, 64 zeros (the noise level 0's features) and the pooled text embedding. Its output (less
/// its last, variance, channel) is preconditioned as Karras et al. (2022), table 1:
/// <c>x / (σ² + 1) + σ / √(σ² + 1) · out</c>.
/// <code>
/// using var sd = StableDiffusionPipeline.FromPretrained("runwayml/stable-diffusion-v1-5");
/// using var pipe = StableDiffusionLatentUpscalePipeline.FromPretrained("stabilityai/sd-x2-latent-upscaler");
/// using var low = sd.Generate("a white cat", seed: 0, outputType: OutputType.Latent);
/// using var result = pipe.Generate("a white cat", low.Tensor!, numInferenceSteps: 20, guidanceScale: 0, seed: 0);
/// result.Images[0].Save("cat-1024.png");
/// </code>
/// </summary>
public sealed class StableDiffusionLatentUpscalePipeline : StableDiffusionPipelineBase
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>model_index.json</c>.</summary>
    public const string Name = "StableDiffusionLatentUpscalePipeline";

    /// <summary>The noise-level features of <c>timestep_cond</c> before the pooled text embedding (64 ones, 64 zeros).</summary>
    public const int NoiseLevelFeatures = 128;

    /// <summary>The schedulers whose σ table the pipeline's preconditioning reads (one model call per step, k-diffusion σ).</summary>
    public static readonly IReadOnlyList<string> SupportedSchedulers =
        [EulerDiscreteScheduler.Name, EulerAncestralDiscreteScheduler.Name, LMSDiscreteScheduler.Name];

    private const string ImageCondKey = "image_cond";
    private const string TimestepCondKey = "timestep_cond";

    /// <summary>
    /// A pipeline of loaded components (the pipeline disposes them); <paramref name="log"/> receives its notes (null:
    /// stderr). The UNet must take the latents and the image latents (<c>in_channels</c> = 2 × the VAE's latent channels)
    /// and <c>timestep_cond</c> of 128 + the text encoder's width (<c>time_cond_proj_dim</c>).
    /// </summary>
    public StableDiffusionLatentUpscalePipeline(IVae vae, CLIPTextModel textEncoder, CLIPTokenizer tokenizer, UNet2DConditionModel unet,
        IScheduler scheduler, Action<string>? log = null)
        : base(vae, textEncoder, tokenizer, unet, scheduler, log)
    {
        CheckUnet(Name, null, unet.Config, vae.LatentChannels, textEncoder.Config.HiddenSize);
    }

    /// <inheritdoc/>
    public override string ClassName => Name;

    /// <summary>
    /// None: diffusers 0.25.1's class is <c>StableDiffusionLatentUpscalePipeline(DiffusionPipeline, FromSingleFileMixin)</c>, and
    /// <see cref="Generate"/> (as its <c>__call__</c>) takes no IP-Adapter image, no LoRA scale and converts no textual-inversion
    /// token; so <c>LoadLoraWeights</c>, <c>LoadTextualInversion</c>, <c>LoadIPAdapter</c> and the like are refused rather than
    /// loading what diffusers cannot load, or what would do nothing.
    /// </summary>
    protected override LoaderMixins Loaders => LoaderMixins.None;

    /// <summary>
    /// Loads a StableDiffusionLatentUpscalePipeline folder (or Hub id): <c>vae</c>, <c>text_encoder</c>, <c>tokenizer</c>,
    /// <c>unet</c> and <c>scheduler</c>, each with <paramref name="options"/>.
    /// </summary>
    public static new StableDiffusionLatentUpscalePipeline FromPretrained(string idOrPath, LoadOptions? options = null) =>
        StableDiffusionLoader.Load(idOrPath, options, Name, [Name], c =>
        {
            string unetConfig = Path.Combine(Path.GetDirectoryName(c.Index.Path)!, "unet", UNet2DConditionModel.ConfigName);
            CheckUnet(unetConfig, unetConfig, c.Unet.Config, c.Vae.LatentChannels, c.TextEncoder.Config.HiddenSize);
            return new StableDiffusionLatentUpscalePipeline(c.Vae, c.TextEncoder, c.Tokenizer, c.Unet, c.Scheduler, options?.Log);
        });

    /// <summary>
    /// diffusers' check <c>num_channels_latents + num_channels_image == unet.config.in_channels</c> (made at the call there),
    /// and the width of <c>timestep_cond</c> (diffusers fails inside the UNet), as <see cref="ConfigException"/>s naming
    /// <paramref name="file"/>'s key when known.
    /// </summary>
    private static void CheckUnet(string source, string? file, UNet2DConditionModelConfig unet, int latentChannels, int textHidden)
    {
        int sum = 2 * latentChannels;
        if (unet.InChannels != sum)
            throw new ConfigException(
                $"{source}: config key 'in_channels': the UNet's in_channels is {unet.InChannels}, but {Name} feeds it num_channels_latents " +
                $"{latentChannels} + num_channels_image {latentChannels} = {sum} (the latents and the image latents, concatenated). A latent " +
                $"upscaler UNet, such as stabilityai/sd-x2-latent-upscaler's, takes {sum}")
            { FilePath = file, Key = "in_channels" };
        int cond = NoiseLevelFeatures + textHidden;
        if (unet.TimeCondProjDim != cond)
            throw new ConfigException(
                $"{source}: config key 'time_cond_proj_dim': is {(unet.TimeCondProjDim is int d ? d.ToString(System.Globalization.CultureInfo.InvariantCulture) : "null")}, " +
                $"but {Name} conditions the UNet on {NoiseLevelFeatures} noise-level features + the text encoder's pooled embedding ({textHidden}) = {cond}")
            { FilePath = file, Key = "time_cond_proj_dim" };
    }

    /// <summary>
    /// Upscales <paramref name="image"/> 2× guided by the prompt (diffusers' <c>__call__</c>; defaults 75 steps, guidance
    /// 9.0). <paramref name="image"/>: Stable Diffusion latents (a tensor of 4 channels, used as they are, as
    /// <c>output_type="latent"</c> gives them), or an image (RGB <see cref="Image"/>s, or a tensor of 3 channels in [0, 1] or
    /// [−1, 1]), which is VAE-encoded with a posterior sample times <c>scaling_factor</c>; one per prompt. Guidance 0
    /// encodes "" instead of the prompt (as diffusers); guidance &gt; 1 is classifier-free guidance with
    /// <paramref name="negativePrompt"/> ("" when none).
    /// <para>The random draws: the initial latents (2× the image latents' size), unless <paramref name="latents"/> are
    /// given. An RGB image's posterior sample: diffusers draws it from torch's global generator, before the latents,
    /// whatever generator the call has. So does this call when it has no seed or generator (the same numbers as diffusers
    /// after the same <c>torch.manual_seed</c>); with a seed or generator(s) it draws the sample from them, after the
    /// latents (which are then diffusers' for that generator), so that the seed alone fixes the result.</para>
    /// <para><paramref name="callbackOnStepEnd"/> sees the named tensors <c>latents</c>, <c>prompt_embeds</c> (with
    /// guidance [negative; prompt]), <c>image_cond</c> (the enlarged image latents, repeated for guidance) and
    /// <c>timestep_cond</c> (diffusers 0.25.1 has only the old <c>callback</c> here, which <c>latents</c> gives).</para>
    /// </summary>
    public ImagePipelineOutput Generate(PromptInput prompt, ImageInput image, int numInferenceSteps = 75, double guidanceScale = 9.0,
        PromptInput negativePrompt = default, long? seed = null, Generator? generator = null, IReadOnlyList<Generator>? generators = null,
        Tensor? latents = null, OutputType outputType = OutputType.Pil, StepEndCallback? callbackOnStepEnd = null,
        IProgress<PipelineProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        // 1. check inputs
        if (prompt.IsNone) throw new DiffusersException($"{Name}: prompt is required (a string or a list of strings)");
        if (prompt.IsList && prompt.Items.Count == 0) throw new DiffusersException($"{Name}: the prompt list is empty");
        if (image.IsNone)
            throw new DiffusersException($"{Name}: image input cannot be undefined; pass the latents (or the image) to upscale");
        CheckCommon(numInferenceSteps, 1, guidanceScale, 0.0);
        CheckScheduler();

        // 2. call parameters; guidance 0 encodes "" instead of the prompt
        using var call = BeginCall(prompt, null, 1, seed, generator, generators);
        var (batch, gens) = call;
        bool cfg = guidanceScale > 1.0;   // not PipelineSteps.DoClassifierFreeGuidance: time_cond_proj_dim is not a guidance embedding here
        var text = guidanceScale == 0 ? PromptInput.Many(Enumerable.Repeat("", batch)) : prompt;

        // 3. encode the prompt: hidden_states[-1] and the pooled output, [negative; prompt] with guidance
        var (embeds, pooled) = EncodeUpscalePrompt(text, cfg, negativePrompt, batch);
        Record("prompt_embeds", embeds);
        Record("pooled_prompt_embeds", pooled);
        var dtype = embeds.dtype;
        var device = Unet.Device;

        // 4. preprocess the image (VaeImageProcessor(resample="bicubic")): 4 channels are latents, used as they are
        var pixels = image.Preprocess("image", null, null, VaeScaleFactor, normalize: true, grayscale: false, binarize: false,
            resample: ResampleFilter.Bicubic).to(dtype, device);
        if (pixels.shape[0] != batch)
            throw new DiffusersException(
                $"{Name}: prompt has batch size {batch} and image has batch size {pixels.shape[0]}. Please make sure that passed prompt matches the batch size of image.");
        int latentChannels = Vae.LatentChannels;
        bool encode = pixels.shape[1] != latentChannels;
        if (encode && pixels.shape[1] != Vae.InChannels)
            throw new DiffusersException(
                $"{Name}: the image has {pixels.shape[1]} channels; pass Stable Diffusion latents ({latentChannels} channels) or an image of the " +
                $"VAE's {Vae.InChannels} channels (RGB)");
        // diffusers samples the posterior from torch's global generator, before the latents: so without a generator here
        Tensor? imageLatents = !encode ? pixels : gens is null ? EncodeVaeImage(pixels, null, "image_latent") : null;
        long height = encode ? pixels.shape[2] / VaeScaleFactor : pixels.shape[2];
        long width = encode ? pixels.shape[3] / VaeScaleFactor : pixels.shape[3];

        // 5. timesteps
        var timesteps = PipelineSteps.Timesteps(Scheduler, numInferenceSteps, device);

        // 6. latents twice the image latents' size (the call's generators), then a deferred posterior sample from them
        var current = InitialLatents(latents, [batch, latentChannels, height * 2, width * 2], dtype, gens);
        imageLatents ??= EncodeVaeImage(pixels, gens, "image_latent");
        Record("image_latents", imageLatents);

        // 7. the image condition: repeated for guidance, enlarged 2× (nearest) and scaled by inv_noise_level; the noise
        // level is 0 in diffusers (its "add noise to image" step is off), so (0² + 1)^-½ = 1 leaves it as it is
        var repeated = cfg ? torch.cat(new[] { imageLatents, imageLatents }) : imageLatents;
        var imageCond = torch.nn.functional.interpolate(repeated, new long[] { repeated.shape[2] * 2, repeated.shape[3] * 2 }).to(dtype);
        Record("image_cond", imageCond);
        long rows = pooled.shape[0];
        var timestepCond = torch.cat(new[]
        {
            torch.ones(rows, NoiseLevelFeatures / 2, dtype: pooled.dtype, device: device),
            torch.zeros(rows, NoiseLevelFeatures / 2, dtype: pooled.dtype, device: device), pooled,
        }, 1);
        Record("timestep_cond", timestepCond);

        // 8. denoising loop
        var promptEmbeddings = cfg ? new PromptEmbeddings(embeds.narrow(0, batch, batch), embeds.narrow(0, 0, batch)) : new PromptEmbeddings(embeds, null);
        var ctx = LoopContext(timesteps, current, promptEmbeddings, cfg, 0.0, gens, callbackOnStepEnd, progress, cancellationToken);
        ctx.Tensors[ImageCondKey] = imageCond;
        ctx.Tensors[TimestepCondKey] = timestepCond;
        current = new LatentUpscaleDenoisingLoop(Unet, cfg, guidanceScale).Run(ctx);

        // 9. decode and postprocess
        return Finish(current, outputType);
    }

    /// <summary>The scheduler must have k-diffusion σ and one model call per step: the loop reads <c>sigmas[i]</c> at step i.</summary>
    private void CheckScheduler()
    {
        if (!SupportedSchedulers.Contains(Scheduler.ClassName))
            throw new DiffusersException(
                $"{Name}: the scheduler is a {Scheduler.ClassName}; the pipeline preconditions the UNet with the σ of step i (sigmas[i], " +
                $"scale_model_input), which needs one of {string.Join(", ", SupportedSchedulers)} (the model's is {EulerDiscreteScheduler.Name})");
    }

    /// <summary>
    /// diffusers' <c>_encode_prompt</c> of this pipeline: the text encoder's <c>hidden_states[-1]</c> (the last layer's
    /// output, before the final LayerNorm) and <c>pooler_output</c>, for the prompts and, with guidance, the negative
    /// prompts ("" when none) before them; no attention mask, no textual inversion, no clip skip (diffusers has none here).
    /// </summary>
    private (Tensor Embeds, Tensor Pooled) EncodeUpscalePrompt(PromptInput prompt, bool cfg, PromptInput negativePrompt, int batch)
    {
        using var scope = torch.NewDisposeScope();
        var (embeds, pooled, seq) = Encode(prompt.Items, Tokenizer.ModelMaxLength);
        if (cfg)
        {
            IReadOnlyList<string> uncond;
            if (negativePrompt.IsNone) uncond = Enumerable.Repeat("", batch).ToArray();
            else if (prompt.IsList != negativePrompt.IsList)
                throw new DiffusersException(
                    $"{Name}: negative_prompt should be the same type as prompt (a {(prompt.IsList ? "list" : "string")}), but got {negativePrompt}");
            else if (negativePrompt.IsList && negativePrompt.Items.Count != batch)
                throw new DiffusersException(
                    $"{Name}: negative_prompt {negativePrompt} has batch size {negativePrompt.Items.Count}, but prompt {prompt} has batch size {batch}");
            else uncond = negativePrompt.Items;
            var (negEmbeds, negPooled, _) = Encode(uncond, seq);
            embeds = torch.cat(new[] { negEmbeds, embeds });
            pooled = torch.cat(new[] { negPooled, pooled });
        }
        return (embeds.to(Unet.DType, Unet.Device).contiguous().MoveToOuterDisposeScope(),
            pooled.to(Unet.DType, Unet.Device).contiguous().MoveToOuterDisposeScope());
    }

    private (Tensor Embeds, Tensor Pooled, int Seq) Encode(IReadOnlyList<string> prompts, int maxLength)
    {
        var tokens = Tokenizer.Call(prompts, PaddingStrategy.MaxLength, maxLength, truncation: true);
        foreach (var w in tokens.Warnings) Log(w);
        var ids = tokens.InputIdsTensor(TextEncoder.Device);
        using var output = TextEncoder.Forward(ids, null, outputHiddenStates: true);
        return (output.HiddenStates![^1].alias(), output.PoolerOutput.alias(), (int)ids.shape[1]);
    }

    /// <summary>
    /// The loop of the latent upscaler: at step i, σ = <c>sigmas[i]</c>; the UNet sees cat([scale_model_input(x), image_cond], 1)
    /// at timestep <c>log(σ) · 0.25</c> with <c>timestep_cond</c>; its output less the last channel is preconditioned to
    /// <c>x / (σ² + 1) + scale_model_input(σ) · out</c>, then guided.
    /// </summary>
    private sealed class LatentUpscaleDenoisingLoop(UNet2DConditionModel unet, bool cfg, double guidanceScale) : DenoisingLoop
    {
        protected override Tensor PredictNoise(DenoisingContext ctx, int step, Tensor timestep, Tensor latents)
        {
            double t = ctx.TimestepValues[step];
            var sigma = ctx.Scheduler.Sigmas![step];
            var input = cfg ? torch.cat(new[] { latents, latents }) : latents;
            var scaled = torch.cat(new[] { ctx.Scheduler.ScaleModelInput(input, t), ctx.Get(ImageCondKey) }, 1);
            ctx.Record("unet_input", step, scaled);
            var unetTimestep = torch.log(sigma) * 0.25;
            var output = unet.Forward(scaled, unetTimestep, ctx.Get(GuidedDenoisingLoop.PromptEmbedsKey),
                timestepCond: ctx.Get(TimestepCondKey)).Sample;
            ctx.Record("unet_output", step, output);
            var noisePred = output.narrow(1, 0, output.shape[1] - 1);   // the variance channel is not used
            var invSigma = (sigma * sigma + 1).reciprocal();
            noisePred = invSigma * input + ctx.Scheduler.ScaleModelInput(sigma, t) * noisePred;
            if (!cfg) return noisePred;
            var chunks = noisePred.chunk(2);
            return chunks[0] + guidanceScale * (chunks[1] - chunks[0]);
        }
    }
}
