using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// diffusers' <c>ConsistencyModelPipeline</c> (pipelines/consistency_models): one-step or multistep sampling of a
/// consistency model, a <see cref="UNet2DModel"/> (class-conditional when its config has <c>num_class_embeds</c>) with a
/// <see cref="CMStochasticIterativeScheduler"/>.
/// <code>
/// using var pipe = ConsistencyModelPipeline.FromPretrained("openai/diffusers-cd_imagenet64_l2");
/// using var one = pipe.Generate(classLabels: [145], seed: 0);                  // one step
/// using var two = pipe.Generate(classLabels: [145], timesteps: [22, 0], seed: 0); // multistep
/// </code>
/// With the same seed it draws as Python diffusers with <c>generator=torch.manual_seed(seed)</c> on the CPU: the initial
/// <c>randn</c> of [B, C, H, W] (times <c>init_noise_sigma</c>), then, when no class labels are given,
/// <c>torch.randint(0, num_class_embeds, (B,))</c> (diffusers draws it from torch's global generator, which
/// <c>torch.manual_seed</c> returns: here it comes from the call's generator), then each step's noise.
/// </summary>
public sealed class ConsistencyModelPipeline : UnconditionalImagePipeline
{
    /// <summary>diffusers' class name: the <c>_class_name</c> of its <c>model_index.json</c>.</summary>
    public const string Name = "ConsistencyModelPipeline";

    /// <summary>
    /// A pipeline of <paramref name="unet"/> and <paramref name="scheduler"/> (diffusers' pipeline is only compatible
    /// with <see cref="CMStochasticIterativeScheduler"/>; any scheduler is taken, as diffusers does).
    /// </summary>
    public ConsistencyModelPipeline(UNet2DModel unet, IScheduler scheduler) : base(unet, scheduler) { }

    /// <inheritdoc/>
    public override string ClassName => Name;

    /// <inheritdoc/>
    public override int DefaultNumInferenceSteps => 1;

    /// <inheritdoc/>
    protected override bool TakesClassLabels => true;

    /// <summary>
    /// Loads <c>unet/</c> and <c>scheduler/</c> of a ConsistencyModelPipeline folder or Hub id, every component with
    /// <paramref name="options"/> (variant, dtype, device, revision, cache and Hub settings).
    /// </summary>
    public static new ConsistencyModelPipeline FromPretrained(string idOrPath, LoadOptions? options = null) =>
        LoadComponents(idOrPath, options, Name, [], (unet, scheduler) => new ConsistencyModelPipeline(unet, scheduler));

    /// <summary>
    /// Generates <paramref name="batchSize"/> images (diffusers' <c>__call__</c>). <paramref name="classLabels"/>: one per
    /// image, for a UNet with <c>num_class_embeds</c> (not used otherwise); null draws them from the generator.
    /// <paramref name="numInferenceSteps"/> (default 1) evenly spaced steps, or <paramref name="timesteps"/>: descending
    /// indices into the training discretisation (e.g. <c>[22, 0]</c>); pass one of the two (diffusers warns and uses
    /// <c>timesteps</c>; here both is an error). Pass a <paramref name="seed"/> (= <c>torch.manual_seed(seed)</c>) or your
    /// own CPU <paramref name="generator"/>; neither draws from the global generator. <paramref name="latents"/>, when
    /// given, is used instead of the initial noise draw (it is still multiplied by <c>init_noise_sigma</c>).
    /// <paramref name="callbackOnStepEnd"/> sees (and may replace) the sample after every step.
    /// </summary>
    public ImagePipelineOutput Generate(int batchSize = 1, IReadOnlyList<long>? classLabels = null,
        int? numInferenceSteps = null, IReadOnlyList<long>? timesteps = null, long? seed = null,
        Generator? generator = null, OutputType outputType = OutputType.Pil, Tensor? latents = null,
        IProgress<PipelineProgress>? progress = null, CancellationToken cancellationToken = default,
        StepEndCallback? callbackOnStepEnd = null)
    {
        if (numInferenceSteps is { } n && timesteps is not null)
            throw new DiffusersException(
                $"{Name}: both num_inference_steps ({n}) and timesteps ([{string.Join(", ", timesteps)}]) are supplied; pass exactly one of them (diffusers warns and uses timesteps)");
        if (timesteps is { Count: 0 })
            throw new DiffusersException($"{Name}: timesteps is empty; pass at least one timestep or num_inference_steps");
        if (outputType is not (OutputType.Pt or OutputType.Np or OutputType.Pil))
            throw new DiffusersException(
                $"{Name}: output_type={outputType} is not supported. Make sure to choose one of ['pt', 'np', or 'pil']");
        return Run(batchSize, numInferenceSteps ?? DefaultNumInferenceSteps, seed, generator, latents, outputType,
            StepOptions.Default, progress, cancellationToken, callbackOnStepEnd, timesteps, classLabels);
    }
}
