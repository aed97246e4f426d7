using DiffusersSharp.Loading;
using DiffusersSharp.Loading.SingleFile;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines.SingleFile;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Text;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// <c>FromSingleFile</c> for the SDXL pipelines: an SDXL base or refiner checkpoint in the original (SGM) layout
/// (<c>model.diffusion_model.*</c>, <c>first_stage_model.*</c>, <c>conditioner.embedders.0/1.*</c>), read through the shared
/// single-file machinery, then handed to the pipeline constructor.
/// </summary>
internal static class StableDiffusionXLSingleFile
{
    /// <summary>The components of an SDXL single file, as the XL pipeline constructors take them.</summary>
    internal sealed record Parts(AutoencoderKL Vae, CLIPTextModel? TextEncoder, CLIPTokenizer? Tokenizer,
        CLIPTextModelWithProjection TextEncoder2, CLIPTokenizer Tokenizer2, UNet2DConditionModel Unet, IScheduler Scheduler, bool IsRefiner);

    /// <summary>
    /// Checks that <paramref name="path"/> is an SDXL file (<paramref name="allowRefiner"/>: a refiner too) before anything is
    /// loaded, loads it with <paramref name="options"/>, and builds the pipeline with <paramref name="create"/>.
    /// </summary>
    public static T Load<T>(string path, SingleFileOptions? options, string pipeline, bool allowRefiner, Func<Parts, T> create)
    {
        using (var ckpt = OriginalCheckpoint.Open(path))
        {
            var family = CheckpointInspection.DetectFamily(ckpt);
            if (!CheckpointInspection.IsXl(family))
                throw new ConfigException(
                    $"{path} is a {family} checkpoint; {pipeline}.FromSingleFile loads Stable Diffusion XL files (use {StableDiffusionPipeline.Name}.FromSingleFile)")
                { FilePath = path };
            if (!allowRefiner && family == StableDiffusionFamily.StableDiffusionXLRefiner)
                throw new ConfigException(
                    $"{path} is an SDXL refiner checkpoint (no first text encoder); load it with {StableDiffusionXLImg2ImgPipeline.Name}.FromSingleFile")
                { FilePath = path };
        }
        using var c = SingleFileComponents.Load(path, options);
        return c.IntoPipeline(x =>
        {
            var texts = x.TextEncoders;
            bool refiner = x.Layout.Family == StableDiffusionFamily.StableDiffusionXLRefiner;
            var first = refiner ? null : (CLIPTextModel)texts[0];
            return create(new Parts(x.Vae, first, refiner ? null : x.Tokenizers[0], (CLIPTextModelWithProjection)texts[^1], x.Tokenizers[^1],
                x.Unet, x.Scheduler, refiner));
        }, options?.TextEncoder);
    }
}
