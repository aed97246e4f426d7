using DiffusersSharp.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Imaging;

/// <summary>
/// Conversions between model tensors and images, following diffusers' <c>VaeImageProcessor</c> and
/// <c>DiffusionPipeline.numpy_to_pil</c>:
/// <list type="bullet">
/// <item>postprocess: NCHW in [−1, 1] → <c>(x / 2 + 0.5).clamp(0, 1)</c> → NHWC float ("np" output) →
/// <c>(x * 255).round()</c> (round half to even, as numpy) → uint8 → <see cref="Image"/>s;</item>
/// <item>preprocess: images → resized to a multiple of <c>vaeScaleFactor</c> (Pillow-compatible
/// resampling, Lanczos by default) → float32 <c>/ 255</c> → <c>2x − 1</c> → NCHW.</item>
/// </list>
/// </summary>
public static partial class ImageProcessor
{
    /// <summary><c>2x − 1</c>: [0, 1] → [−1, 1].</summary>
    public static Tensor Normalize(Tensor images) => TorchUtils.Scoped(() => 2.0 * images - 1.0);

    /// <summary><c>(x / 2 + 0.5).clamp(0, 1)</c>: [−1, 1] → [0, 1].</summary>
    public static Tensor Denormalize(Tensor images)
    {
        using var scope = torch.NewDisposeScope();
        return (images / 2 + 0.5).clamp(0, 1).MoveToOuterDisposeScope();
    }

    /// <summary>NCHW → NHWC float32 on the CPU, contiguous (diffusers' <c>pt_to_numpy</c>).</summary>
    public static Tensor PtToNumpy(Tensor images)
    {
        RequireRank(images, 4, "PtToNumpy");
        using var scope = torch.NewDisposeScope();
        return images.detach().cpu().permute(0, 2, 3, 1).to(ScalarType.Float32).contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>NHWC → NCHW (diffusers' <c>numpy_to_pt</c>); a 3-D NHW array gets a channel of 1.</summary>
    public static Tensor NumpyToPt(Tensor images)
    {
        using var scope = torch.NewDisposeScope();
        var x = images.dim() == 3 ? images.unsqueeze(-1) : images;
        RequireRank(x, 4, "NumpyToPt");
        // a permuted view (channels-last strides), as diffusers' numpy_to_pt returns
        return x.permute(0, 3, 1, 2).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// NHWC float images in [0, 1] (or one HWC image) → 8-bit images, exactly as diffusers'
    /// <c>numpy_to_pil</c>: <c>(images * 255).round().astype("uint8")</c>; one channel → grayscale.
    /// </summary>
    public static Image[] NumpyToImages(Tensor images)
    {
        using var scope = torch.NewDisposeScope();
        var x = images.dim() == 3 ? images.unsqueeze(0) : images;
        RequireRank(x, 4, "NumpyToImages");
        long n = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3];
        if (c is not (1 or 3))
            throw new DiffusersException($"NumpyToImages: expected 1 or 3 channels (NHWC), got shape [{string.Join(", ", x.shape)}]");
        // float32 multiply and round-half-to-even as numpy does; out-of-range values wrap in numpy's
        // astype, but pipeline images are clamped to [0, 1] first, so values are in 0..255 here.
        using var u8 = (x.to(ScalarType.Float32) * 255).round().to(ScalarType.Byte).cpu().contiguous();
        byte[] all = u8.data<byte>().ToArray();
        long per = h * w * c;
        var result = new Image[n];
        for (long i = 0; i < n; i++)
        {
            var px = new byte[per];
            Array.Copy(all, i * per, px, 0, per);
            result[i] = new Image((int)w, (int)h, (int)c, px);
        }
        return result;
    }

    /// <summary>
    /// Images → NHWC float32 in [0, 1] (diffusers' <c>pil_to_numpy</c>: <c>np.array(image).astype(np.float32) / 255.0</c>).
    /// Grayscale images give a single channel.
    /// </summary>
    public static Tensor ImagesToNumpy(IReadOnlyList<Image> images)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Count == 0) throw new DiffusersException("ImagesToNumpy: no images given");
        var first = images[0];
        foreach (var im in images)
            if (im.Width != first.Width || im.Height != first.Height || im.Channels != first.Channels)
                throw new DiffusersException($"ImagesToNumpy: all images must have the same size and channels ({first} vs {im})");
        using var scope = torch.NewDisposeScope();
        var parts = images.Select(im =>
            torch.tensor(im.Pixels, new long[] { im.Height, im.Width, im.Channels }, ScalarType.Byte)).ToArray();
        var stacked = torch.stack(parts, 0);
        return (stacked.to(ScalarType.Float32) / 255.0f).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Model output NCHW in [−1, 1] → 8-bit images (denormalize, NHWC, <see cref="NumpyToImages"/>).
    /// </summary>
    public static Image[] Postprocess(Tensor images)
    {
        using var scope = torch.NewDisposeScope();
        var np = PtToNumpy(Denormalize(images));
        return NumpyToImages(np);
    }

    /// <summary>
    /// Images → NCHW float32 in [−1, 1], as <c>VaeImageProcessor.preprocess</c> with its defaults: each image is first
    /// cut to <paramref name="cropsCoords"/> when given; the size is <paramref name="height"/> × <paramref name="width"/>,
    /// or the first (cropped) image's, each rounded down to a multiple of <paramref name="vaeScaleFactor"/>; images of
    /// another size are resized as <paramref name="resizeMode"/> says, stretched with <paramref name="resample"/>
    /// (Pillow-compatible; see <see cref="ImageResize"/>) by default.
    /// </summary>
    public static Tensor Preprocess(IReadOnlyList<Image> images, int? height = null, int? width = null,
        int vaeScaleFactor = 8, ResampleFilter resample = ResampleFilter.Lanczos, bool resize = true, bool normalize = true,
        ResizeMode resizeMode = ResizeMode.Default, CropRegion? cropsCoords = null)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Count == 0) throw new DiffusersException("Preprocess: no images given");
        if (vaeScaleFactor <= 0) throw new DiffusersException($"Preprocess: vaeScaleFactor must be positive, got {vaeScaleFactor}");
        var list = cropsCoords is { } r ? images.Select(im => ImageResize.Crop(im, r.X1, r.Y1, r.X2, r.Y2)).ToArray() : images;
        if (resize)
        {
            int h = height ?? list[0].Height, w = width ?? list[0].Width;
            h -= h % vaeScaleFactor;
            w -= w % vaeScaleFactor;
            if (h <= 0 || w <= 0)
                throw new DiffusersException(
                    $"Preprocess: the image size {list[0].Width}x{list[0].Height} is smaller than one block of {vaeScaleFactor} pixels");
            list = list.Select(im => Resize(im, h, w, resizeMode, resample)).ToArray();
        }
        using var scope = torch.NewDisposeScope();
        var x = NumpyToPt(ImagesToNumpy(list));
        if (normalize) x = Normalize(x);
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>One image → a [1, C, H, W] tensor in [−1, 1]; see <see cref="Preprocess(IReadOnlyList{Image}, int?, int?, int, ResampleFilter, bool, bool, ResizeMode, CropRegion?)"/>.</summary>
    public static Tensor Preprocess(Image image, int? height = null, int? width = null, int vaeScaleFactor = 8,
        ResampleFilter resample = ResampleFilter.Lanczos) =>
        Preprocess([image], height, width, vaeScaleFactor, resample);

    private static void RequireRank(Tensor t, int rank, string what)
    {
        if (t.dim() != rank)
            throw new DiffusersException($"{what}: expected a {rank}-D tensor, got shape [{string.Join(", ", t.shape)}]");
    }
}
