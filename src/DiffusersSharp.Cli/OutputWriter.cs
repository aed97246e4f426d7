using DiffusersSharp.Imaging;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Cli;

/// <summary>
/// Writes what <c>generate</c> produced: the pipeline's "np" output (NHWC float32 in [0, 1]) as <c>.npy</c>, or as an
/// 8-bit image (a grid for a batch, enlarged <c>--upscale</c> times; the same bytes the pipeline's "pil" output gives).
/// A NaN or an infinity anywhere refuses the whole output: nothing is written and the existing file stays as it was.
/// </summary>
public static class OutputWriter
{
    /// <summary>Writes <paramref name="array"/> (NHWC float32 in [0, 1]) to <paramref name="output"/> after <see cref="CheckFinite"/>.</summary>
    public static void Write(string output, Tensor array, bool npy, int upscale = 1)
    {
        CheckFinite(array, output);
        if (npy)
        {
            NpyFile.Write(output, array);
            return;
        }
        var images = ImageProcessor.NumpyToImages(array);
        var image = images.Length == 1 ? images[0] : ImageGrid.Make(images);
        if (upscale != 1)
            image = ImageResize.Resize(image, image.Width * upscale, image.Height * upscale, ResampleFilter.Nearest);
        image.Save(output);
    }

    /// <summary>Refuses an output with NaN or ±Inf values, naming how many and the file that was not written.</summary>
    public static void CheckFinite(Tensor array, string output)
    {
        using var scope = torch.NewDisposeScope();
        long total = array.numel();
        long bad = total - torch.isfinite(array).sum().item<long>();
        if (bad > 0)
            throw new UserException(
                string.Create(System.Globalization.CultureInfo.InvariantCulture, $"the generated images hold {bad} non-finite values (NaN or ±Inf) of {total} ({100.0 * bad / total:0.#}%); nothing was written to {output}. ") +
                "The weights, the model or scheduler config, or options such as --guidance and --eta make the computation overflow");
    }
}
