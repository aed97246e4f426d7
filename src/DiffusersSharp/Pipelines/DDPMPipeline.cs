using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// diffusers' <c>DDPMPipeline</c>: unconditional image generation with a <see cref="UNet2DModel"/> and a
/// scheduler (usually <see cref="DDPMScheduler"/>).
/// <code>
/// using var pipe = DDPMPipeline.FromPretrained("google/ddpm-cat-256");
/// using var result = pipe.Generate(numInferenceSteps: 100, seed: 0);
/// result.Images[0].Save("cat.png");
/// </code>
/// With the same seed it draws the same noise as Python diffusers on the CPU (<c>torch.manual_seed(seed)</c>):
/// the initial <c>randn</c> of [B, C, H, W], then each step's variance noise in diffusers' order.
/// </summary>
public sealed class DDPMPipeline : UnconditionalImagePipeline
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>model_index.json</c>.</summary>
    public const string Name = "DDPMPipeline";

    /// <summary>
    /// A pipeline of <paramref name="unet"/> and <paramref name="scheduler"/> (any scheduler; diffusers' default is
    /// DDPMScheduler).
    /// </summary>
    public DDPMPipeline(UNet2DModel unet, IScheduler scheduler) : base(unet, scheduler) { }

    /// <inheritdoc/>
    public override string ClassName => Name;

    /// <inheritdoc/>
    public override int DefaultNumInferenceSteps => 1000;

    /// <summary>
    /// Loads <c>unet/</c> and <c>scheduler/</c> of a DDPMPipeline folder or Hub id, every component with
    /// <paramref name="options"/> (variant, dtype, device, revision, cache and Hub settings).
    /// </summary>
    public static new DDPMPipeline FromPretrained(string idOrPath, LoadOptions? options = null) =>
        LoadComponents(idOrPath, options, Name, [], (unet, scheduler) => new DDPMPipeline(unet, scheduler));

    /// <summary>
    /// Generates <paramref name="batchSize"/> images (diffusers' <c>__call__</c>). Pass a <paramref name="seed"/>
    /// (= <c>torch.manual_seed(seed)</c>) or your own CPU <paramref name="generator"/>; neither draws from the global
    /// generator. <paramref name="latents"/>, when given, is used instead of the initial noise draw.
    /// <paramref name="callbackOnStepEnd"/> sees (and may replace) the latents after every step.
    /// </summary>
    public ImagePipelineOutput Generate(int batchSize = 1, int numInferenceSteps = 1000, long? seed = null,
        Generator? generator = null, OutputType outputType = OutputType.Pil, Tensor? latents = null,
        IProgress<PipelineProgress>? progress = null, CancellationToken cancellationToken = default,
        StepEndCallback? callbackOnStepEnd = null) =>
        Run(batchSize, numInferenceSteps, seed, generator, latents, outputType, StepOptions.Default, progress, cancellationToken,
            callbackOnStepEnd);
}
