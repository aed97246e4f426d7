using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// diffusers' <c>LDMSuperResolutionPipeline</c> (pipelines/latent_diffusion/pipeline_latent_diffusion_superresolution.py,
/// v0.25.1): super-resolution by latent diffusion, e.g. <c>CompVis/ldm-super-resolution-4x-openimages</c>. The
/// low-resolution image in [-1, 1] (an <see cref="Image"/> resized with Lanczos to the multiples of 32 below its size, or a
/// tensor as it is) is concatenated to latents of its own size at every step, and that concatenation goes through
/// <c>scale_model_input</c> (<c>in_channels</c> = latent + image channels: 6 on the real model); the final latents are
/// decoded by the VQ-VAE (quantized, not rescaled) and mapped by <c>clamp(-1, 1) / 2 + 0.5</c>: the output is the VQ-VAE's
/// scale factor (4 on the real model) times the image's size.
/// <code>
/// using var pipe = LDMSuperResolutionPipeline.FromPretrained("CompVis/ldm-super-resolution-4x-openimages");
/// using var result = pipe.Generate(Image.Load("cat-128.png"), numInferenceSteps: 100, eta: 1, seed: 0);
/// result.Images[0].Save("cat-512.png");
/// </code>
/// As in <see cref="LDMPipeline"/>, diffusers passes its generator to the initial noise only and the scheduler draws from
/// torch's global generator: a seed here draws both from one generator, diffusers' numbers for
/// <c>generator=torch.manual_seed(seed)</c>.
/// </summary>
public sealed class LDMSuperResolutionPipeline : DiffusionPipeline
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>model_index.json</c>.</summary>
    public const string Name = "LDMSuperResolutionPipeline";

    /// <summary>Images are cut to multiples of this before the run (diffusers' <c>preprocess</c>).</summary>
    public const int SizeMultiple = 32;

    private const string ImageKey = "image";
    private IScheduler _scheduler;

    /// <summary>
    /// A pipeline of <paramref name="vqvae"/>, <paramref name="unet"/> and <paramref name="scheduler"/>; the pipeline owns
    /// them. The UNet takes the latents and the image on its channels: its <c>in_channels</c> must be
    /// <c>2 · out_channels</c> (diffusers makes latents of <c>in_channels // 2</c> channels) and its latents the VQ-VAE's.
    /// </summary>
    public LDMSuperResolutionPipeline(VQModel vqvae, UNet2DModel unet, IScheduler scheduler)
    {
        ArgumentNullException.ThrowIfNull(vqvae);
        ArgumentNullException.ThrowIfNull(unet);
        ArgumentNullException.ThrowIfNull(scheduler);
        var c = unet.Config;
        if (c.InChannels % 2 != 0)
            throw new ConfigException(
                $"{Name}: the UNet's in_channels is {c.InChannels}, but {Name} feeds it latents of in_channels // 2 channels and the image's " +
                "as many (6 = 3 + 3 on CompVis/ldm-super-resolution-4x-openimages): it must be even")
            { Key = "in_channels" };
        LDMPipeline.CheckChannels(Name, vqvae, c.InChannels / 2, c.OutChannels);
        if (c is { ClassEmbedType: not null } or { NumClassEmbeds: not null })
            throw new ConfigException($"{Name}: the UNet is class-conditional, and {Name} passes no class labels (diffusers fails the same way)")
            { Key = c.ClassEmbedType is not null ? "class_embed_type" : "num_class_embeds" };
        (Vqvae, Unet, _scheduler) = (vqvae, unet, scheduler);
        vqvae.eval();
        unet.eval();
    }

    /// <summary>The VQ-VAE that decodes the latents.</summary>
    public VQModel Vqvae { get; }

    /// <summary>The denoising model.</summary>
    public UNet2DModel Unet { get; }

    /// <summary>
    /// The scheduler (diffusers lists DDIM, PNDM, LMS, Euler, Euler ancestral and DPM-Solver multistep); swap it as
    /// <c>pipe.Scheduler = X.FromConfig(old.Config)</c>. The replaced one is the caller's to dispose.
    /// </summary>
    public IScheduler Scheduler
    {
        get => _scheduler;
        set => _scheduler = value ?? throw new ArgumentNullException(nameof(value));
    }

    /// <inheritdoc/>
    public override string ClassName => Name;

    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Components =>
        new Dictionary<string, object> { ["vqvae"] = Vqvae, ["unet"] = Unet, ["scheduler"] = Scheduler };

    /// <summary>
    /// Loads <c>vqvae/</c>, <c>unet/</c> and <c>scheduler/</c> of an LDMSuperResolutionPipeline folder or Hub id, every
    /// component with <paramref name="options"/>.
    /// </summary>
    public static new LDMSuperResolutionPipeline FromPretrained(string idOrPath, LoadOptions? options = null)
    {
        string folder = PipelinePaths.Resolve(idOrPath, options);
        CheckClass(folder, Name);
        return LatentDiffusionFolder.Load(folder, options, (vqvae, unet, scheduler) => new LDMSuperResolutionPipeline(vqvae, unet, scheduler));
    }

    /// <summary>
    /// diffusers' <c>preprocess</c>: the image resized (Pillow's Lanczos) to the multiples of 32 at or below its width and
    /// height, as floats <c>2 · pixel / 255 − 1</c> in a batch of one (1, 3, H, W). It must be RGB.
    /// </summary>
    public static Tensor Preprocess(Image image)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (image.Channels != 3)
            throw new DiffusersException($"{Name}: the image is greyscale; the pipeline takes an RGB image (convert it, as diffusers' example does with convert(\"RGB\"))");
        int w = image.Width - image.Width % SizeMultiple, h = image.Height - image.Height % SizeMultiple;
        if (w == 0 || h == 0)
            throw new DiffusersException(
                $"{Name}: the image is {image.Width}x{image.Height}; it is cut to the multiples of {SizeMultiple} below its size, so it must be at least {SizeMultiple}x{SizeMultiple}");
        using var scope = torch.NewDisposeScope();
        var resized = ImageResize.Resize(image, w, h, ResampleFilter.Lanczos);
        var x = ImageProcessor.NumpyToPt(ImageProcessor.ImagesToNumpy([resized]));
        return ImageProcessor.Normalize(x).contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Upscales <paramref name="image"/> (diffusers' <c>__call__</c>; default 100 steps): one <see cref="Image"/> (see
    /// <see cref="Preprocess"/>), or a tensor (B, C, H, W) already in [-1, 1], used as it is (its batch is the output's).
    /// The random draws, in diffusers' order: the initial latents (B, in_channels / 2, H, W), then the scheduler's (DDIM
    /// with <paramref name="eta"/> &gt; 0, Euler ancestral), from the <paramref name="seed"/>'s or the
    /// <paramref name="generator"/>. <paramref name="latents"/>, when given, replaces the initial draw (a DiffusersSharp
    /// addition, as in the other pipelines); <paramref name="callbackOnStepEnd"/> sees the latents and the <c>image</c>.
    /// </summary>
    public ImagePipelineOutput Generate(ImageInput image, int numInferenceSteps = 100, double eta = 0.0, long? seed = null,
        Generator? generator = null, OutputType outputType = OutputType.Pil, Tensor? latents = null,
        IProgress<PipelineProgress>? progress = null, CancellationToken cancellationToken = default,
        StepEndCallback? callbackOnStepEnd = null)
    {
        if (image.IsNone || !(image.IsSingleImage || image.Tensor is not null))
            throw new DiffusersException($"{Name}: `image` has to be one Image or a tensor, got {image.Kind}");
        if (double.IsNaN(eta) || eta < 0)
            throw new DiffusersException($"{Name}: eta must be a number ≥ 0 (0 = DDIM, 1 = DDPM-like), got {eta}");
        int max = Scheduler.NumTrainTimesteps;
        if (numInferenceSteps <= 0 || numInferenceSteps > max)
            throw new DiffusersException(
                $"{Name}: num_inference_steps must be between 1 and num_train_timesteps = {max} of the {Scheduler.ClassName}, got {numInferenceSteps}");
        if (seed is not null && generator is not null)
            throw new DiffusersException($"{Name}: pass either a seed or a generator, not both");
        using var ownGenerator = seed is { } s ? new Generator((ulong)s) : null;
        var gen = generator ?? ownGenerator;
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var device = Unet.Device;
        var dtype = Unet.DType;

        var pixels = image.Tensor is { } t ? CheckTensor(t) : Preprocess(image.Images![0]);
        long batch = pixels.shape[0], height = pixels.shape[2], width = pixels.shape[3];
        long[] shape = [batch, Unet.Config.InChannels / 2, height, width];
        long factor = 1L << Unet.NumUpsamplers;
        if (height % factor != 0 || width % factor != 0)
            throw new DiffusersException(
                $"{Name}: the image is {width}x{height}, but the UNet's {Unet.NumUpsamplers} upsamplers need sizes that are multiples of {factor} (UNet2DModel's up path does not resize to its skip connections)");

        Tensor current;
        if (latents is not null)
        {
            if (!latents.shape.SequenceEqual(shape))
                throw new DiffusersException($"{Name}: latents have shape [{string.Join(", ", latents.shape)}], expected [{string.Join(", ", shape)}]");
            current = latents.to(dtype, device, copy: true);
        }
        else
            current = Runtime.TorchUtils.RandnTensor(shape, gen, ScalarType.Float32, device).to(dtype);
        var conditioning = pixels.to(dtype, device);

        Scheduler.SetTimesteps(numInferenceSteps, device);
        current = current * Scheduler.InitNoiseSigma;
        var ctx = new DenoisingContext(Name, Scheduler, Scheduler.Timesteps, current)
        {
            StepOptions = new StepOptions { Eta = eta, Generators = gen is null ? null : [gen] },
            CallbackOnStepEnd = callbackOnStepEnd,
            Progress = progress,
            CancellationToken = cancellationToken,
        };
        ctx.Tensors[ImageKey] = conditioning;
        var final = new SuperResolutionLoop(Unet).Run(ctx);

        using var decoded = Vqvae.Decode(final.to(Vqvae.DType)).Sample;
        using var clamped = decoded.to(ScalarType.Float32).clamp(-1.0, 1.0);
        using var unit = clamped / 2 + 0.5;
        return outputType switch
        {
            OutputType.Pt => new ImagePipelineOutput(tensor: unit.cpu().DetachFromDisposeScope()),
            OutputType.Np => new ImagePipelineOutput(array: ImageProcessor.PtToNumpy(unit).DetachFromDisposeScope()),
            _ => new ImagePipelineOutput(images: ImageProcessor.NumpyToImages(ImageProcessor.PtToNumpy(unit))),
        };
    }

    private Tensor CheckTensor(Tensor t)
    {
        int channels = Unet.Config.InChannels - Unet.Config.InChannels / 2;
        if (t.dim() != 4 || t.shape[1] != channels || t.numel() == 0)
            throw new DiffusersException(
                $"{Name}: an image tensor must be (batch, {channels}, height, width) in [-1, 1] (the UNet takes {channels} image channels beside the latents), got [{string.Join(", ", t.shape)}]");
        return t;
    }

    /// <summary>The loop: <c>unet(scale_model_input(cat([latents, image], 1), t), t)</c>, the image scaled with the latents as in diffusers.</summary>
    private sealed class SuperResolutionLoop(UNet2DModel unet) : DenoisingLoop
    {
        protected override Tensor PredictNoise(DenoisingContext ctx, int step, Tensor timestep, Tensor latents)
        {
            var input = torch.cat(new[] { latents, ctx.Get(ImageKey) }, 1);
            return unet.Forward(ctx.Scheduler.ScaleModelInput(input, ctx.TimestepValues[step]), timestep).Sample;
        }
    }
}
