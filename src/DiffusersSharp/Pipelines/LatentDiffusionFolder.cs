using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;

namespace DiffusersSharp.Pipelines;

/// <summary>The components of a latent diffusion folder (LDMPipeline, LDMSuperResolutionPipeline): vqvae, unet, scheduler.</summary>
internal static class LatentDiffusionFolder
{
    /// <summary>
    /// Loads <c>vqvae/</c> (<see cref="VQModel"/>), <c>unet/</c> (<see cref="UNet2DModel"/>) and <c>scheduler/</c> of
    /// <paramref name="folder"/>, each with <paramref name="options"/>, and hands them to <paramref name="build"/>; what was
    /// loaded is disposed if a later component fails.
    /// </summary>
    public static T Load<T>(string folder, LoadOptions? options, Func<VQModel, UNet2DModel, IScheduler, T> build) =>
        PipelineSteps.DisposeOnFailure(loaded =>
        {
            var vqvae = loaded.Kept(VQModel.FromPretrained(PipelinePaths.Component(folder, "vqvae"), null, options));
            var unet = loaded.Kept(UNet2DModel.FromPretrained(PipelinePaths.Component(folder, "unet"), null, options));
            var scheduler = loaded.Kept(SchedulerFactory.FromPretrained(PipelinePaths.Component(folder, "scheduler"), null, options));
            return build(vqvae, unet, scheduler);
        });
}
