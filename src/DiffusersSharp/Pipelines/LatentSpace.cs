namespace DiffusersSharp.Pipelines;

/// <summary>
/// The latent space a pipeline denoises in, which decides the tiny VAE (TAESD) that can read its latents: the Stable
/// Diffusion 1.x/2.x VAE's and SDXL's differ, and a tiny VAE of the other space decodes them into wrong colours
/// (<see cref="VaeLoader.TaesdIdFor"/> names the one for each). A pipeline says which it is
/// (<see cref="ILatentDiffusionPipeline.LatentSpace"/>).
/// </summary>
public enum LatentSpace
{
    /// <summary>The Stable Diffusion 1.x / 2.x VAE's (also their ControlNet pipelines'): <c>madebyollin/taesd</c>.</summary>
    StableDiffusion,

    /// <summary>The SDXL VAE's (base, refiner, inpainting, ControlNet): <c>madebyollin/taesdxl</c>.</summary>
    StableDiffusionXL,
}
