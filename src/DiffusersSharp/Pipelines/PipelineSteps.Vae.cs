using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

internal static partial class PipelineSteps
{
    /// <summary>A VAE set in evaluation mode, for a pipeline's <c>Vae</c> setter (null: <see cref="ArgumentNullException"/>).</summary>
    internal static IVae InEvalMode(IVae value)
    {
        ArgumentNullException.ThrowIfNull(value);
        value.SetEvalMode();
        return value;
    }

    /// <summary>
    /// diffusers' <c>retrieve_latents(vae.encode(image), generator)</c> (a posterior sample, or the latents of a VAE without
    /// a distribution), one image per generator when there is a list; <paramref name="record"/> gets the posterior's
    /// <c>mean</c> / <c>std</c> of a single encode. Not yet times <c>scaling_factor</c>.
    /// </summary>
    internal static Tensor RetrieveVaeLatents(IVae vae, Tensor image, IReadOnlyList<Generator>? generators, Action<string, Tensor> record)
    {
        if (generators is { Count: > 1 })
        {
            var parts = new List<Tensor>();
            for (int i = 0; i < image.shape[0]; i++)
            {
                using var encoded = vae.Encode(image.narrow(0, i, 1));
                parts.Add(encoded.RetrieveLatents([generators[i]]));
            }
            return torch.cat(parts, 0);
        }
        using var whole = vae.Encode(image);
        return whole.RetrieveLatents(generators, record);
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
    /// How diffusers' pipelines end: the latents as they are for <see cref="OutputType.Latent"/>, else
    /// <paramref name="decode"/> (the VAE decode of the latents, recorded as <c>vae_decoded</c>) denormalised into the
    /// output type.
    /// </summary>
    internal static ImagePipelineOutput Finish(Tensor latents, OutputType outputType, Func<Tensor, Tensor> decode, Action<string, Tensor> record)
    {
        using var scope = torch.NewDisposeScope();
        if (outputType == OutputType.Latent)
            return new ImagePipelineOutput(tensor: latents.detach().clone().DetachFromDisposeScope());
        // The denoising loop's freed activations go back to the OS before the decode needs its own (the decode
        // itself maps its very large activations one by one; see NativeSetup): peak memory, not speed.
        Runtime.NativeSetup.TrimNativeHeap();
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
