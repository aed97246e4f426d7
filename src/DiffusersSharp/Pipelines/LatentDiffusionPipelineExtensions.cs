namespace DiffusersSharp.Pipelines;

/// <summary>
/// diffusers' pipeline switches for the VAE (<c>pipe.enable_vae_tiling()</c>, <c>pipe.enable_vae_slicing()</c> and their
/// <c>disable_</c> pairs), on every pipeline that decodes latents with a VAE: each calls the same switch of the VAE the
/// pipeline holds now (<see cref="ILatentDiffusionPipeline.Vae"/>, <c>AutoencoderKL</c> or <c>AutoencoderTiny</c>), as
/// diffusers' call <c>self.vae.enable_tiling()</c>. A VAE swapped in later keeps its own setting.
/// <code>
/// using var pipe = StableDiffusionPipeline.FromPretrained("stabilityai/stable-diffusion-2-1");
/// pipe.EnableVaeTiling();   // a 2048² image decodes in 512-pixel tiles
/// </code>
/// </summary>
public static class LatentDiffusionPipelineExtensions
{
    /// <summary>diffusers' <c>enable_vae_tiling</c>.</summary>
    public static void EnableVaeTiling(this ILatentDiffusionPipeline pipe) => pipe.Vae.EnableTiling();

    /// <summary>diffusers' <c>disable_vae_tiling</c>.</summary>
    public static void DisableVaeTiling(this ILatentDiffusionPipeline pipe) => pipe.Vae.DisableTiling();

    /// <summary>diffusers' <c>enable_vae_slicing</c>.</summary>
    public static void EnableVaeSlicing(this ILatentDiffusionPipeline pipe) => pipe.Vae.EnableSlicing();

    /// <summary>diffusers' <c>disable_vae_slicing</c>.</summary>
    public static void DisableVaeSlicing(this ILatentDiffusionPipeline pipe) => pipe.Vae.DisableSlicing();
}
