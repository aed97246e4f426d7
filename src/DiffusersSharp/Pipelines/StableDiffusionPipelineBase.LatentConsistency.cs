using DiffusersSharp.Models;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

public abstract partial class StableDiffusionPipelineBase
{
    /// <summary>
    /// The end of diffusers' latent consistency calls (<see cref="LatentConsistencyModelPipeline"/>,
    /// <see cref="LatentConsistencyModelImg2ImgPipeline"/>): <c>w_embedding</c> = the guidance embedding of
    /// <c>guidance_scale − 1</c> for the <paramref name="total"/> latents, the LCM loop (<see cref="LatentConsistencyDenoisingLoop"/>)
    /// from <paramref name="latents"/> over <paramref name="timesteps"/>, then the decode of the last step's <c>denoised</c>
    /// (with custom timesteps that strength shortens, the last step re-noises the latents, so the two differ).
    /// </summary>
    private protected ImagePipelineOutput DenoiseLatentConsistency(Tensor timesteps, Tensor latents, PromptEmbeddings embeds, double guidanceScale,
        int total, IReadOnlyList<Generator>? generators, Tensor? imageEmbeds, CrossAttentionOptions? crossAttentionKwargs,
        StepEndCallback? callbackOnStepEnd, IProgress<PipelineProgress>? progress, CancellationToken cancellationToken, OutputType outputType)
    {
        var wEmbedding = GuidanceScaleEmbedding(guidanceScale, total, latents.dtype, Unet.Device)!;
        Record(LatentConsistencyDenoisingLoop.WEmbeddingKey, wEmbedding);
        var ctx = LoopContext(timesteps, latents, embeds, cfg: false, eta: 0.0, generators, callbackOnStepEnd, progress, cancellationToken, imageEmbeds);
        ctx.Tensors[LatentConsistencyDenoisingLoop.WEmbeddingKey] = wEmbedding;
        new LatentConsistencyDenoisingLoop(Unet, crossAttentionKwargs).Run(ctx);
        return Finish(ctx.Get(LatentConsistencyDenoisingLoop.DenoisedKey), outputType);
    }
}
