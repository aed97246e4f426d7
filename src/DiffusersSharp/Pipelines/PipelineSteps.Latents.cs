using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

internal static partial class PipelineSteps
{
    /// <summary>
    /// diffusers' <c>retrieve_timesteps</c>: the scheduler's <paramref name="numInferenceSteps"/> timesteps on
    /// <paramref name="device"/>, or, given <paramref name="custom"/> timesteps, those (<see cref="RetrieveTimesteps"/>).
    /// </summary>
    internal static Tensor Timesteps(IScheduler scheduler, int numInferenceSteps, Device device, string? cls = null,
        IReadOnlyList<long>? custom = null) =>
        RetrieveTimesteps(cls ?? scheduler.ClassName, scheduler, numInferenceSteps, custom, device).Timesteps;

    /// <summary>
    /// diffusers' <c>retrieve_timesteps</c>: without <paramref name="custom"/>, <c>set_timesteps(num_inference_steps)</c>;
    /// with them, <c>set_timesteps(timesteps=…)</c> (refused by <see cref="StepCount"/> for a scheduler whose diffusers
    /// class does not take them; the scheduler's refusal of the values is prefixed with the pipeline) and the step count
    /// becomes <c>len(scheduler.timesteps)</c>. Returns the scheduler's timesteps and that count, which img2img / inpaint
    /// hand to <see cref="Img2ImgTimesteps"/>.
    /// </summary>
    internal static (Tensor Timesteps, int Steps) RetrieveTimesteps(string cls, IScheduler scheduler, int numInferenceSteps,
        IReadOnlyList<long>? custom, Device device)
    {
        if (custom is null)
        {
            scheduler.SetTimesteps(numInferenceSteps, device);
            return (scheduler.Timesteps, numInferenceSteps);
        }
        StepCount(cls, scheduler, numInferenceSteps, custom);
        try { scheduler.SetTimesteps(custom, device); }
        catch (DiffusersException e) { throw new DiffusersException($"{cls}: timesteps: {e.Message}", e); }
        return (scheduler.Timesteps, (int)scheduler.Timesteps.shape[0]);
    }

    /// <summary>
    /// diffusers' <c>get_timesteps</c>: <c>init_timestep = min(int(n · strength), n)</c>, <c>t_start = max(n −
    /// init_timestep, 0)</c>; the loop runs <c>scheduler.timesteps[t_start · order:]</c>. Returns the start index.
    /// </summary>
    internal static int StartIndex(IScheduler scheduler, int numInferenceSteps, double strength)
    {
        int tStart = Math.Max(numInferenceSteps - InitTimestep(numInferenceSteps, strength), 0);
        return tStart * scheduler.Order;
    }

    /// <summary>diffusers' <c>init_timestep = min(int(n · strength), n)</c>: the steps strength leaves to denoise.</summary>
    private static int InitTimestep(int numInferenceSteps, double strength) =>
        Math.Min((int)(numInferenceSteps * strength), numInferenceSteps);

    /// <summary><c>int(round(T − d · T))</c> with T = num_train_timesteps (Python's round: half to even).</summary>
    internal static int DiscreteTimestepCutoff(IScheduler scheduler, double fraction)
    {
        int train = scheduler.NumTrainTimesteps;
        return (int)Math.Round(train - fraction * train, MidpointRounding.ToEven);
    }

    /// <summary>
    /// The img2img / inpaint timesteps (diffusers' <c>get_timesteps</c>, the scheduler's timesteps already set): without
    /// <paramref name="denoisingStart"/>, the last <c>int(n · strength)</c> steps, refused when none is left (with
    /// <paramref name="needsInitStep"/>, Stable Diffusion's inpaint check: also when <c>int(n · strength)</c> is 0); with
    /// it (SDXL), the timesteps <c>t &lt; int(round(T − d · T))</c> (one more for second-order schedulers when that count
    /// is even).
    /// </summary>
    internal static Tensor Img2ImgTimesteps(string cls, IScheduler scheduler, int numInferenceSteps, double strength,
        double? denoisingStart = null, bool needsInitStep = false)
    {
        var all = scheduler.Timesteps;
        long count = all.shape[0];
        if (denoisingStart is not double d)
        {
            int start = StartIndex(scheduler, numInferenceSteps, strength);
            bool noInitStep = needsInitStep && InitTimestep(numInferenceSteps, strength) < 1;
            if (noInitStep || start >= count)
                throw new DiffusersException(
                    $"{cls}: strength {strength} with num_inference_steps {numInferenceSteps} leaves no denoising step " +
                    $"(int({numInferenceSteps} * {strength}) = {(int)(numInferenceSteps * strength)}); raise strength or the step count");
            return all.narrow(0, start, count - start);
        }
        int cutoff = DiscreteTimestepCutoff(scheduler, d);
        using var below = all.lt(cutoff).sum();
        long n = below.item<long>();
        if (scheduler.Order == 2 && n % 2 == 0) n++;
        if (n == 0 || n > count)
            throw new DiffusersException(
                $"{cls}: denoising_start {d} leaves no timestep below {cutoff} in the {numInferenceSteps}-step schedule; lower it or add steps");
        return all.narrow(0, count - n, n);
    }

    /// <summary>
    /// The first half of diffusers' img2img <c>prepare_latents</c>: 4-channel input is taken as latents, an image is
    /// <paramref name="encode"/>d (one image per generator when there is a list), and the latents are duplicated to
    /// <paramref name="total"/> (prompts × images per prompt). <paramref name="cannotDuplicate"/> words the error when
    /// they do not divide it (default: ours).
    /// </summary>
    internal static Tensor InitImageLatents(string cls, Tensor pixels, int total, IReadOnlyList<Generator>? generators,
        Func<Tensor, Tensor> encode, Func<long, int, string>? cannotDuplicate = null)
    {
        Tensor initLatents;
        if (pixels.shape[1] == 4) initLatents = pixels;
        else
        {
            if (generators is { Count: > 1 } && pixels.shape[0] != total)
                throw new DiffusersException($"{cls}: a list of {generators.Count} generators needs {generators.Count} init images, got {pixels.shape[0]}");
            initLatents = encode(pixels);
        }
        long n0 = initLatents.shape[0];
        if (total > n0)
        {
            if (total % n0 != 0)
                throw new DiffusersException(cannotDuplicate?.Invoke(n0, total)
                    ?? $"{cls}: cannot duplicate {n0} init images to {total} prompts × images per prompt");
            initLatents = torch.cat(Enumerable.Repeat(initLatents, (int)(total / n0)).ToArray(), 0);
        }
        else if (total < n0)
            throw new DiffusersException($"{cls}: {n0} init images for {total} prompts × images per prompt; pass one image per prompt");
        return initLatents;
    }

    /// <summary>
    /// The inpaint pipelines' image latents (diffusers' <c>prepare_latents</c> with <c>return_image_latents</c>): only
    /// when a 4-channel UNet blends them back or strength &lt; 1 noises them (and no latents are given), the
    /// <paramref name="encode"/>d image repeated to <paramref name="total"/> (<see cref="RepeatToBatch"/>: refused when
    /// the images do not divide it); else null.
    /// </summary>
    internal static Tensor? InpaintImageLatents(string cls, int unetChannels, Tensor? latents, double strength, int total, Func<Tensor> encode,
        bool diffusersWording = false)
    {
        if (unetChannels != 4 && (latents is not null || strength == 1.0)) return null;
        return RepeatToBatch(cls, encode(), total, "images", diffusersWording);
    }

    /// <summary>
    /// The inpaint pipelines' initial latents (diffusers' <c>prepare_latents</c> with <c>return_noise</c>): without
    /// <paramref name="latents"/>, noise drawn in <paramref name="shape"/>, scaled by the initial sigma at strength 1 or
    /// added to <paramref name="imageLatents"/> at <paramref name="latentTimestep"/>; with them (checked against the
    /// shape), the given latents are the noise, scaled by the initial sigma.
    /// </summary>
    internal static (Tensor Noise, Tensor Latents) InpaintLatents(string cls, IScheduler scheduler, Tensor? latents, long[] shape,
        Tensor? imageLatents, bool isStrengthMax, Tensor latentTimestep, IReadOnlyList<Generator>? generators, ScalarType dtype, Device device)
    {
        var noise = LatentsOrNoise(cls, latents, shape, generators, dtype, device, castGiven: false);
        return (noise, InpaintStartLatents(scheduler, noise, imageLatents, latents is null && !isStrengthMax, latentTimestep));
    }

    /// <summary>
    /// The inpaint pipelines' start latents from their noise: <c>scheduler.add_noise(image_latents, noise,
    /// latent_timestep)</c> when <paramref name="addNoise"/> (strength &lt; 1, no latents given), else <c>noise ·
    /// init_noise_sigma</c>.
    /// </summary>
    internal static Tensor InpaintStartLatents(IScheduler scheduler, Tensor noise, Tensor? imageLatents, bool addNoise, Tensor latentTimestep) =>
        addNoise ? scheduler.AddNoise(imageLatents!, noise, latentTimestep) : noise * scheduler.InitNoiseSigma;

    /// <summary>
    /// diffusers' img2img <c>scheduler.add_noise(init_latents, noise, timesteps[:1].repeat(batch))</c>: the image latents
    /// (one row per image of the batch) noised to the loop's first timestep.
    /// </summary>
    internal static Tensor NoiseToFirstTimestep(IScheduler scheduler, Tensor initLatents, Tensor noise, Tensor timesteps) =>
        scheduler.AddNoise(initLatents, noise, timesteps.narrow(0, 0, 1).repeat(initLatents.shape[0]));

    /// <summary>
    /// diffusers' <c>prepare_latents</c> before the sigma scaling: noise drawn in <paramref name="shape"/> from the
    /// generators, or the caller's latents (checked against the shape) moved to <paramref name="device"/> (and cast to
    /// <paramref name="dtype"/> when <paramref name="castGiven"/>, as SDXL does).
    /// </summary>
    internal static Tensor LatentsOrNoise(string cls, Tensor? latents, long[] shape, IReadOnlyList<Generator>? generators,
        ScalarType dtype, Device device, bool castGiven)
    {
        if (latents is null) return Runtime.TorchUtils.RandnTensor(shape, generators, dtype, device);
        CheckLatents(cls, latents, shape, castGiven ? null : dtype);
        return castGiven ? latents.to(dtype, device) : latents.to(device);
    }

    /// <summary>
    /// The mask (or the image latents) repeated to <paramref name="batch"/>; <paramref name="what"/> is "masks" or
    /// "images". More rows than the batch are refused (diffusers keeps them, and fails later on the batch mismatch or
    /// silently grows the batch). <paramref name="diffusersWording"/>: the error when they do not divide the batch in
    /// diffusers' words (the ControlNet inpaint pipeline's).
    /// </summary>
    internal static Tensor RepeatToBatch(string cls, Tensor t, int batch, string what, bool diffusersWording = false)
    {
        if (t.shape[0] == batch) return t;
        if (t.shape[0] > batch)
            throw new DiffusersException(
                $"{cls}: {t.shape[0]} {what} for a total batch size of {batch} (prompts × images per prompt); pass a number of {what} that divides {batch}");
        if (batch % t.shape[0] != 0)
            throw new DiffusersException(diffusersWording
                ? $"{cls}: The passed {what} and the required batch size don't match: {t.shape[0]} {what} cannot be duplicated to a total batch size of {batch}."
                : $"{cls}: {t.shape[0]} {what} cannot be duplicated to the total batch size {batch}; pass a number of {what} that divides it");
        return t.repeat(batch / t.shape[0], 1, 1, 1);
    }

    /// <summary>
    /// diffusers' <c>masked_image = init_image * (mask &lt; 0.5)</c>, once the batches pair up: as many masks as images, or
    /// one image or one mask for all (diffusers fails on the broadcast otherwise).
    /// </summary>
    internal static Tensor MaskedImage(string cls, Tensor image, Tensor maskCondition)
    {
        long images = image.shape[0], masks = maskCondition.shape[0];
        if (images != masks && images != 1 && masks != 1)
            throw new DiffusersException(
                $"{cls}: {images} images and {masks} masks do not pair up; pass one mask per image, or one image or one mask for all");
        return image * (maskCondition < 0.5);
    }

    /// <summary>
    /// diffusers' <c>masked_image_latents</c> as a caller passes them: [batch, the VAE's latent channels, height / vae
    /// scale, width / vae scale] (the 9-channel UNet concatenates them with the latents; diffusers fails there otherwise).
    /// </summary>
    internal static void CheckMaskedImageLatents(string cls, Tensor maskedImageLatents, int latentChannels, int height, int width)
    {
        var s = maskedImageLatents.shape;
        if (s.Length != 4 || s[0] < 1 || s[1] != latentChannels || s[2] != height || s[3] != width)
            throw new DiffusersException(
                $"{cls}: masked_image_latents have shape [{string.Join(", ", s)}], expected [batch, {latentChannels}, {height}, {width}] " +
                "(the VAE's latent channels and the latents' height and width)");
    }

    /// <summary>The [negative; positive] guidance batch of a conditioning tensor: itself twice with guidance.</summary>
    internal static Tensor ForGuidance(Tensor t, bool cfg) => cfg ? torch.cat(new[] { t, t }) : t;

    /// <summary>A 9-channel inpainting UNet must take the latents, the mask and the masked image latents together.</summary>
    internal static void CheckInpaintChannels(string cls, int unetChannels, int latentChannels, Tensor mask, Tensor maskedImageLatents)
    {
        if (unetChannels == 9 && latentChannels + mask.shape[1] + maskedImageLatents.shape[1] != unetChannels)
            throw new DiffusersException(
                $"{cls}: the UNet expects {unetChannels} input channels but gets latents {latentChannels} + mask {mask.shape[1]} + masked image {maskedImageLatents.shape[1]}");
    }

    /// <summary>
    /// The guided loop of a txt2img / img2img call: classifier-free guidance (with <paramref name="guidanceRescale"/>), the
    /// guidance embedding of UNets with <c>time_cond_proj_dim</c> for <paramref name="total"/> latents in
    /// <paramref name="dtype"/>, the call's LoRA scale and, for the ControlNet pipelines, their residuals, for the T2I-Adapter
    /// pipelines, their states.
    /// </summary>
    internal static GuidedDenoisingLoop GuidedLoop(UNet2DConditionModel unet, bool cfg, double guidanceScale, double guidanceRescale,
        int total, ScalarType dtype, CrossAttentionOptions? crossAttentionKwargs, ControlNetResiduals? controlNet = null,
        T2IAdapterStates? adapter = null) =>
        new(unet, cfg, guidanceScale, guidanceRescale, GuidanceScaleEmbedding(unet, guidanceScale, total, dtype, unet.Device), crossAttentionKwargs)
        {
            ControlNet = controlNet,
            Adapter = adapter,
        };

    /// <summary>diffusers' <c>get_guidance_scale_embedding</c> for UNets with <c>time_cond_proj_dim</c> (LCM).</summary>
    internal static Tensor? GuidanceScaleEmbedding(UNet2DConditionModel unet, double guidanceScale, int batch, ScalarType dtype, Device device)
    {
        if (unet.Config.TimeCondProjDim is not int dim) return null;
        using var scope = torch.NewDisposeScope();
        var w = torch.full(new long[] { batch }, guidanceScale - 1, ScalarType.Float32) * 1000.0;
        int half = dim / 2;
        var step = torch.log(torch.tensor(10000.0f)) / (half - 1);
        var freqs = torch.exp(torch.arange(half, ScalarType.Float32) * -step);
        var emb = w.unsqueeze(1) * freqs.unsqueeze(0);
        emb = torch.cat(new[] { torch.sin(emb), torch.cos(emb) }, 1);
        if (dim % 2 == 1) emb = torch.nn.functional.pad(emb, new long[] { 0, 1 });
        return emb.to(dtype, device).MoveToOuterDisposeScope();
    }

    /// <summary>A VAE set in evaluation mode, for a pipeline's <c>Vae</c> setter (null: <see cref="ArgumentNullException"/>).</summary>
    internal static IVae InEvalMode(IVae value)
    {
        if (value is null)
            throw new ArgumentNullException("Vae", "a pipeline's Vae cannot be null: assign an AutoencoderKL or an AutoencoderTiny");
        value.SetEvalMode();
        return value;
    }

    /// <summary>
    /// diffusers' <c>retrieve_latents(vae.encode(image), generator)</c> (a posterior sample, or the latents of a VAE without
    /// a distribution), one image per generator when there is a list; <paramref name="record"/> gets the posterior's
    /// <c>mean</c> / <c>std</c> of a single encode. Not yet times <c>scaling_factor</c>. The latents come back in the
    /// image's dtype: a tiled <see cref="AutoencoderTiny"/> encodes into float32 whatever its own dtype (as diffusers 0.25.1's
    /// <c>_tiled_encode</c> does, after which a bf16 / fp16 UNet fails on the dtype mismatch there).
    /// </summary>
    internal static Tensor RetrieveVaeLatents(IVae vae, Tensor image, IReadOnlyList<Generator>? generators, Action<string, Tensor> record)
    {
        Tensor latents;
        if (generators is { Count: > 1 })
        {
            var parts = new List<Tensor>();
            for (int i = 0; i < image.shape[0]; i++)
            {
                using var encoded = vae.Encode(image.narrow(0, i, 1));
                parts.Add(encoded.RetrieveLatents([generators[i]]));
            }
            latents = torch.cat(parts, 0);
        }
        else
        {
            using var whole = vae.Encode(image);
            latents = whole.RetrieveLatents(generators, record);
        }
        if (latents.dtype == image.dtype) return latents;
        using (latents) return latents.to(image.dtype);
    }

    /// <summary>
    /// diffusers' <c>retrieve_latents(vae.encode(image), sample_mode="argmax")</c>: the posterior's mode (or the latents of a
    /// VAE without a distribution), nothing drawn; <paramref name="record"/> gets the posterior's <c>mean</c> / <c>std</c>.
    /// Not times <c>scaling_factor</c>; in the image's dtype, as <see cref="RetrieveVaeLatents"/>.
    /// </summary>
    internal static Tensor VaeModeLatents(IVae vae, Tensor image, Action<string, Tensor> record)
    {
        Tensor latents;
        using (var encoded = vae.Encode(image))
            latents = encoded.ModeLatents(record);
        if (latents.dtype == image.dtype) return latents;
        using (latents) return latents.to(image.dtype);
    }

    /// <summary>
    /// The shared denoising loop's context for one call: timesteps, initial latents, the scheduler options diffusers passes
    /// (<c>generator</c>, <c>eta</c>) and <c>prompt_embeds</c> (with guidance the [negative; prompt] batch).
    /// </summary>
    internal static DenoisingContext LoopContext(string cls, IScheduler scheduler, Tensor timesteps, Tensor latents,
        Tensor promptEmbeds, Tensor? negativePromptEmbeds, bool cfg, double eta, IReadOnlyList<Generator>? generators,
        StepEndCallback? callbackOnStepEnd, IProgress<PipelineProgress>? progress, CancellationToken cancellationToken,
        Action<string, int, Tensor>? trace)
    {
        var ctx = new DenoisingContext(cls, scheduler, timesteps, latents)
        {
            StepOptions = new StepOptions { Generators = generators, Eta = eta },
            CallbackOnStepEnd = callbackOnStepEnd,
            Progress = progress,
            CancellationToken = cancellationToken,
            Trace = trace,
        };
        ctx.Tensors[GuidedDenoisingLoop.PromptEmbedsKey] =
            cfg ? torch.cat(new[] { negativePromptEmbeds!, promptEmbeds }) : promptEmbeds;
        return ctx;
    }

    /// <summary>
    /// The VAE decode of diffusers 0.25.1's SDXL and x4 upscaler pipelines: with <c>force_upcast</c> in the VAE config and
    /// fp16 VAE weights (<c>needs_upcasting</c>), the VAE is upcast by <c>upcast_vae</c> (<see cref="AutoencoderKL.UpcastVae"/>),
    /// the latents are cast to post_quant_conv's dtype and divided by <paramref name="scalingFactor"/>, and the VAE goes
    /// back to fp16 after; otherwise the latents divided by <paramref name="scalingFactor"/> are decoded in the VAE's dtype.
    /// </summary>
    internal static Tensor DecodeUpcasting(IVae vae, Tensor latents, double scalingFactor)
    {
        if (vae is not AutoencoderKL { ForceUpcast: true } kl || kl.DType != ScalarType.Float16)
            return vae.Decode((latents / scalingFactor).to(vae.DType)).Sample;
        var dtype = kl.DType;
        kl.UpcastVae();
        try
        {
            return kl.Decode(latents.to(kl.PostQuantConvDType) / scalingFactor).Sample;
        }
        finally
        {
            kl.to(dtype);
        }
    }

    /// <summary>
    /// How diffusers' pipelines end: the latents as they are for <see cref="OutputType.Latent"/>, else
    /// <paramref name="decode"/> (the VAE decode of the latents, recorded as <c>vae_decoded</c>) denormalised into the
    /// output type.
    /// </summary>
    internal static ImagePipelineOutput Finish(Tensor latents, OutputType outputType, Func<Tensor, Tensor> decode, Action<string, Tensor> record)
    {
        using var scope = torch.NewDisposeScope();
        if (outputType == OutputType.Latent)
            return new ImagePipelineOutput(tensor: latents.detach().clone().DetachFromDisposeScope());
        var image = decode(latents);
        record("vae_decoded", image);
        var x = Imaging.ImageProcessor.Denormalize(image);
        return outputType switch
        {
            OutputType.Pt => new ImagePipelineOutput(tensor: x.to(ScalarType.Float32).cpu().DetachFromDisposeScope()),
            OutputType.Np => new ImagePipelineOutput(array: Imaging.ImageProcessor.PtToNumpy(x).DetachFromDisposeScope()),
            _ => new ImagePipelineOutput(images: Imaging.ImageProcessor.NumpyToImages(Imaging.ImageProcessor.PtToNumpy(x))),
        };
    }
}
