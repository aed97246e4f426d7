using System.Diagnostics;
using DiffusersSharp.Imaging;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// The shared body of diffusers' unconditional image pipelines (DDPM, DDIM): a <see cref="UNet2DModel"/> and
/// a scheduler; <c>randn_tensor</c> of [B, C, H, W] from the generator, then for each timestep
/// <c>unet(image, t).sample</c> and <c>scheduler.step(...)</c>, then <c>(image / 2 + 0.5).clamp(0, 1)</c>.
/// Runs under <c>torch.no_grad()</c> with the model in eval mode; each step's temporaries are freed by a
/// dispose scope, so memory stays flat over any number of steps.
/// </summary>
public abstract class UnconditionalImagePipeline : DiffusionPipeline
{
    private IScheduler _scheduler;

    protected UnconditionalImagePipeline(UNet2DModel unet, IScheduler scheduler)
    {
        ArgumentNullException.ThrowIfNull(unet);
        ArgumentNullException.ThrowIfNull(scheduler);
        Unet = unet;
        _scheduler = scheduler;
        Unet.eval();
    }

    /// <summary>The denoising model.</summary>
    public UNet2DModel Unet { get; }

    /// <summary>The scheduler; swap it like diffusers' <c>pipe.scheduler = X.from_config(pipe.scheduler.config)</c>.</summary>
    public IScheduler Scheduler
    {
        get => _scheduler;
        set => _scheduler = ValidateScheduler(value ?? throw new ArgumentNullException(nameof(value)));
    }

    /// <summary>Checks (and may convert) a scheduler assigned to <see cref="Scheduler"/>.</summary>
    protected virtual IScheduler ValidateScheduler(IScheduler scheduler) => scheduler;

    public override IReadOnlyDictionary<string, object> Components =>
        new Dictionary<string, object> { ["unet"] = Unet, ["scheduler"] = Scheduler };

    /// <summary>[B, in_channels, H, W] from the UNet config's <c>sample_size</c>.</summary>
    protected long[] ImageShape(int batchSize)
    {
        var cfg = Unet.Config;
        int[] size = cfg.SampleSize ?? throw new DiffusersException(
            $"{ClassName}: the UNet config has no sample_size, so the image size is unknown");
        (long h, long w) = size.Length switch
        {
            1 => (size[0], size[0]),
            2 => (size[0], size[1]),
            _ => throw new DiffusersException($"{ClassName}: UNet sample_size must be one int or [height, width], got [{string.Join(", ", size)}]"),
        };
        return [batchSize, cfg.InChannels, h, w];
    }

    /// <summary>Argument checks shared by the pipelines (values named in the message).</summary>
    protected void Validate(int batchSize, int numInferenceSteps)
    {
        if (batchSize <= 0)
            throw new DiffusersException($"{ClassName}: batch size must be at least 1, got {batchSize}");
        if (Unet.Config is { ClassEmbedType: not null } or { NumClassEmbeds: not null })
            throw new DiffusersException(
                $"{ClassName}: the UNet is class-conditional (config key {(Unet.Config.ClassEmbedType is { } t ? $"class_embed_type '{t}'" : $"num_class_embeds {Unet.Config.NumClassEmbeds}")}) and needs class labels, which {ClassName} does not pass (diffusers fails the same way: \"class_labels should be provided when doing class conditioning\")")
            { Key = Unet.Config.ClassEmbedType is not null ? "class_embed_type" : "num_class_embeds" };
        int max = Scheduler.NumTrainTimesteps;
        if (numInferenceSteps <= 0 || numInferenceSteps > max)
            throw new DiffusersException(
                $"{ClassName}: num_inference_steps must be between 1 and num_train_timesteps = {max} of the {Scheduler.ClassName}, got {numInferenceSteps}");
    }

    /// <summary>
    /// diffusers' <c>randn_tensor(shape, generator, device, dtype)</c>: on the generator's device (the CPU
    /// for a CPU generator), then moved to the model's device and dtype.
    /// </summary>
    protected static Tensor RandnTensor(long[] shape, Generator? generator, ScalarType dtype, Device device)
    {
        using var scope = torch.NewDisposeScope();
        var x = generator is null
            ? torch.randn(shape, ScalarType.Float32, CPU)
            : torch.randn(shape, ScalarType.Float32, CPU, generator: generator);
        return x.to(dtype, device).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The denoising loop: <paramref name="step"/> gets (model output, timestep, sample, generator) and returns
    /// the scheduler output. <paramref name="latents"/> replaces the initial noise draw when given.
    /// </summary>
    protected ImagePipelineOutput Run(int batchSize, int numInferenceSteps, long? seed, Generator? generator,
        Tensor? latents, OutputType outputType, IProgress<PipelineProgress>? progress, CancellationToken cancellationToken,
        Func<Tensor, double, Tensor, Generator?, SchedulerOutput> step)
    {
        Validate(batchSize, numInferenceSteps);
        if (seed is not null && generator is not null)
            throw new DiffusersException($"{ClassName}: pass either a seed or a generator, not both");
        using var ownGenerator = seed is { } s ? new Generator((ulong)s) : null;
        var gen = generator ?? ownGenerator;
        using var noGrad = torch.no_grad();
        var (device, dtype) = ModelPlacement();
        long[] shape = ImageShape(batchSize);

        Tensor image;
        if (latents is not null)
        {
            if (!latents.shape.SequenceEqual(shape))
                throw new DiffusersException(
                    $"{ClassName}: latents have shape [{string.Join(", ", latents.shape)}], expected [{string.Join(", ", shape)}]");
            image = latents.to(dtype, device, copy: true).DetachFromDisposeScope();
        }
        else image = RandnTensor(shape, gen, dtype, device).DetachFromDisposeScope();

        try
        {
            Scheduler.SetTimesteps(numInferenceSteps, device);
            double[] timesteps;
            using (var ts = Scheduler.Timesteps.to(ScalarType.Float64, CPU)) timesteps = ts.data<double>().ToArray();
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < timesteps.Length; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                Tensor next;
                using (var scope = torch.NewDisposeScope())
                {
                    using var t = Scheduler.Timesteps[i];
                    var modelOutput = Unet.Forward(image, t).Sample;
                    using var output = step(modelOutput, timesteps[i], image, gen);
                    next = output.PrevSample.MoveToOuterDisposeScope();
                }
                image.Dispose();
                image = next.DetachFromDisposeScope();
                progress?.Report(new PipelineProgress(i + 1, timesteps.Length, timesteps[i], clock.Elapsed));
            }
            return MakeOutput(image, outputType);
        }
        finally
        {
            image.Dispose();
        }
    }

    private (Device device, ScalarType dtype) ModelPlacement() => (Unet.Device, Unet.DType);

    /// <summary>Denormalizes the final sample into the requested output.</summary>
    protected static ImagePipelineOutput MakeOutput(Tensor image, OutputType outputType)
    {
        using var scope = torch.NewDisposeScope();
        // float32 before denormalizing, so a bf16/fp16 model's result is not rounded once more
        var x = ImageProcessor.Denormalize(image.to(ScalarType.Float32));
        switch (outputType)
        {
            case OutputType.Pt:
                return new ImagePipelineOutput(tensor: x.to(ScalarType.Float32).cpu().DetachFromDisposeScope());
            case OutputType.Np:
                return new ImagePipelineOutput(array: ImageProcessor.PtToNumpy(x).DetachFromDisposeScope());
            default:
                return new ImagePipelineOutput(images: ImageProcessor.NumpyToImages(ImageProcessor.PtToNumpy(x)));
        }
    }
}
