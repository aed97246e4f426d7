using DiffusersSharp.Models;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// A pipeline that denoises in a VAE's latent space: the Stable Diffusion 1.x/2.x and SDXL pipelines, ControlNet ones
/// included. Front ends (the CLI's <c>--preview-every</c> and <c>--vae tiny</c>, the server's previews) read from it the VAE
/// and the <see cref="Pipelines.LatentSpace"/>, and so pick the tiny VAE that fits without asking which family the model is.
/// </summary>
public interface ILatentDiffusionPipeline
{
    /// <summary>The VAE that decodes the latents (the folder's, or one swapped in).</summary>
    IVae Vae { get; }

    /// <summary>The latent space of the pipeline's latents (what its step-end callback sees as <c>latents</c>).</summary>
    LatentSpace LatentSpace { get; }
}
