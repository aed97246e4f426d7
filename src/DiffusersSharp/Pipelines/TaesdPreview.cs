using DiffusersSharp.Imaging;
using DiffusersSharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// Cheap previews of a run in progress: a tiny VAE (<see cref="AutoencoderTiny"/>, <c>madebyollin/taesd</c> for SD 1.x/2.x,
/// <c>madebyollin/taesdxl</c> for SDXL: <see cref="VaeLoader.TaesdIdFor"/> of the pipeline's
/// <see cref="ILatentDiffusionPipeline.LatentSpace"/>) decodes the latents a Stable Diffusion or SDXL pipeline holds after a step into RGB images, in a few
/// milliseconds where the full VAE takes far longer. The latents are the pipeline's (already multiplied by the
/// full VAE's <c>scaling_factor</c>), which is what TAESD was distilled to read.
/// <code>
/// using var taesd = AutoencoderTiny.FromPretrained("madebyollin/taesd");
/// var preview = new TaesdPreview(taesd, maxSize: 256);
/// pipe.Generate("a cat", callbackOnStepEnd: preview.Every(5, (step, t, image) => image.Save($"step{step}.png")));
/// </code>
/// The preview does not own the tiny VAE (dispose it yourself). Not thread-safe with itself (one model).
/// </summary>
public sealed class TaesdPreview
{
    /// <param name="taesd">The tiny VAE that decodes the previews.</param>
    /// <param name="maxSize">When set, previews larger than this (width or height) are shrunk to fit, keeping the aspect ratio.</param>
    public TaesdPreview(AutoencoderTiny taesd, int? maxSize = null)
    {
        ArgumentNullException.ThrowIfNull(taesd);
        if (maxSize is <= 0) throw new ArgumentOutOfRangeException(nameof(maxSize), maxSize, "maxSize must be positive");
        Vae = taesd;
        MaxSize = maxSize;
    }

    /// <summary>The tiny VAE that decodes the previews.</summary>
    public AutoencoderTiny Vae { get; }
    /// <summary>The largest preview width or height; null: full size.</summary>
    public int? MaxSize { get; }

    /// <summary>
    /// One RGB image per batch item of <paramref name="latents"/> (B, latent_channels, h, w), as a pipeline holds them:
    /// <c>taesd.decode(latents / taesd.scaling_factor)</c>, then diffusers' postprocessing ([-1, 1] → 8 bits). The
    /// latents are left as they were.
    /// </summary>
    public Image[] Decode(Tensor latents)
    {
        ArgumentNullException.ThrowIfNull(latents);
        if (latents.dim() != 4 || latents.shape[1] != Vae.LatentChannels)
            throw new DiffusersException(
                $"TaesdPreview: expected latents of shape (batch, {Vae.LatentChannels}, height, width), got {ShapeOf(latents)}; " +
                "is this tiny VAE the one for this model (madebyollin/taesd for SD 1.x/2.x, taesdxl for SDXL)?");
        Image[] images;
        using (torch.no_grad())
        using (var scope = torch.NewDisposeScope())
        {
            var z = latents.detach().to(Vae.DType, Vae.Device) / Vae.ScalingFactor;
            var decoded = Vae.Decode(z).Sample;
            images = ImageProcessor.NumpyToImages(ImageProcessor.PtToNumpy(ImageProcessor.Denormalize(decoded)));
        }
        if (MaxSize is int max)
            for (int i = 0; i < images.Length; i++)
                images[i] = Fit(images[i], max);
        return images;
    }

    /// <summary>The preview of batch item <paramref name="index"/> of <paramref name="latents"/>.</summary>
    public Image Preview(Tensor latents, int index = 0)
    {
        ArgumentNullException.ThrowIfNull(latents);
        if (index < 0 || index >= latents.shape[0])
            throw new ArgumentOutOfRangeException(nameof(index), index, $"the latents hold {latents.shape[0]} items");
        using var scope = torch.NewDisposeScope();
        return Decode(latents.narrow(0, index, 1))[0];
    }

    /// <summary>
    /// A step-end callback (the <c>callbackOnStepEnd</c> argument of the pipelines' <c>Generate</c>) that hands
    /// <paramref name="onPreview"/> (step index, timestep, preview) a preview of the first image after every
    /// <paramref name="everyNSteps"/>-th step. It reads the <c>latents</c> tensor and replaces nothing.
    /// </summary>
    public StepEndCallback Every(int everyNSteps, Action<int, double, Image> onPreview)
    {
        if (everyNSteps < 1) throw new ArgumentOutOfRangeException(nameof(everyNSteps), everyNSteps, "everyNSteps must be at least 1");
        ArgumentNullException.ThrowIfNull(onPreview);
        return (step, timestep, tensors) =>
        {
            if ((step + 1) % everyNSteps == 0)
                onPreview(step, timestep, Preview(tensors["latents"]));
        };
    }

    private static Image Fit(Image image, int max)
    {
        if (image.Width <= max && image.Height <= max) return image;
        double s = (double)max / Math.Max(image.Width, image.Height);
        int w = Math.Max(1, (int)Math.Round(image.Width * s)), h = Math.Max(1, (int)Math.Round(image.Height * s));
        return ImageResize.Resize(image, w, h, ResampleFilter.Box);
    }

    private static string ShapeOf(Tensor t) => "[" + string.Join(", ", t.shape) + "]";
}
