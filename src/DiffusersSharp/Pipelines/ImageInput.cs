using DiffusersSharp.Imaging;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// An image argument of img2img / inpaint (diffusers' <c>PipelineImageInput</c>): one <see cref="Image"/>, a list
/// of them, or a tensor ([C, H, W] or [B, C, H, W] in [0, 1]; 4 channels = latents, used as they are; a mask also
/// [H, W] or [B, H, W]).
/// Converts implicitly from <see cref="Image"/>, <c>Image[]</c> and <see cref="Tensor"/>.
/// </summary>
public readonly struct ImageInput
{
    private ImageInput(IReadOnlyList<Image>? images, Tensor? tensor, bool single = false)
    {
        Images = images;
        Tensor = tensor;
        IsSingleImage = single;
    }

    /// <summary>The images, when given as images.</summary>
    public IReadOnlyList<Image>? Images { get; }
    /// <summary>The images as a tensor (diffusers' <c>torch.Tensor</c> input), when given as a tensor.</summary>
    public Tensor? Tensor { get; }
    /// <summary>True when neither was given (diffusers' <c>image=None</c>).</summary>
    public bool IsNone => Images is null && Tensor is null;
    /// <summary>True when given as one <see cref="Image"/>, not a list or a tensor (diffusers' <c>isinstance(image, PIL.Image.Image)</c>).</summary>
    public bool IsSingleImage { get; }

    /// <summary>One image.</summary>
    public static implicit operator ImageInput(Image? image) => image is null ? default : new([image], null, single: true);
    /// <summary>A batch of images.</summary>
    public static implicit operator ImageInput(Image[]? images) => images is null ? default : new(images, null);
    /// <summary>A batch of images.</summary>
    public static implicit operator ImageInput(List<Image>? images) => images is null ? default : new(images, null);
    /// <summary>Images as a tensor, preprocessed as diffusers preprocesses a <c>torch.Tensor</c> input.</summary>
    public static implicit operator ImageInput(Tensor? tensor) => tensor is null ? default : new(null, tensor);

    /// <summary>
    /// The images as RGB (diffusers' <c>do_convert_rgb</c>, which converts after the resize: grayscale replicated to three
    /// channels gives the same pixels either way); a tensor as it is, as diffusers leaves tensors.
    /// </summary>
    internal ImageInput ToRgb() => Images is { } list ? new ImageInput(list.Select(im => im.ToRgb()).ToArray(), null, IsSingleImage) : this;

    /// <summary>What was given, for messages: "an Image", "a list of 2 Images", "a tensor", "nothing".</summary>
    internal string Kind => IsSingleImage ? "an Image" : Images is { } list ? $"a list of {list.Count} Image{(list.Count == 1 ? "" : "s")}"
        : Tensor is not null ? "a tensor" : "nothing";

    /// <summary>
    /// diffusers' <c>VaeImageProcessor.preprocess</c>: images are first cut to <paramref name="cropsCoords"/> when given;
    /// the size is <paramref name="height"/> × <paramref name="width"/> (or the first image's) rounded down to a multiple
    /// of <paramref name="vaeScaleFactor"/>; images of another size are resized (with <paramref name="resample"/>, the
    /// processor's <c>resample</c>, Lanczos by default, or as <paramref name="resizeMode"/> says; nearest for tensors, as
    /// diffusers); <paramref name="grayscale"/> converts to
    /// one channel (PIL's "L"); then [0, 1] → [−1, 1] when <paramref name="normalize"/> (not for tensors already in
    /// [−1, 1]), and values &lt; 0.5 → 0, ≥ 0.5 → 1 when <paramref name="binarize"/>. A crop or a resize mode other than
    /// the default takes images only, as diffusers' <c>resize</c>.
    /// </summary>
    internal Tensor Preprocess(string what, int? height, int? width, int vaeScaleFactor, bool normalize, bool grayscale, bool binarize,
        CropRegion? cropsCoords = null, ResizeMode resizeMode = ResizeMode.Default, ResampleFilter resample = ResampleFilter.Lanczos)
    {
        if (IsNone) throw new DiffusersException($"no {what} given");
        using var scope = torch.NewDisposeScope();
        Tensor x;
        if (Images is { } images)
        {
            if (images.Count == 0) throw new DiffusersException($"the {what} list is empty");
            if (cropsCoords is { } r) images = images.Select(im => ImageResize.Crop(im, r.X1, r.Y1, r.X2, r.Y2)).ToList();
            var (h, w) = DefaultSize(images[0].Height, images[0].Width, height, width, vaeScaleFactor, what);
            var list = images.Select(im => ImageProcessor.Resize(im, h, w, resizeMode, resample)).ToList();
            if (grayscale) list = list.Select(ToGray).ToList();
            int channels = list[0].Channels;
            if (list.Any(im => im.Channels != channels))
                throw new DiffusersException($"the {what} images mix RGB and greyscale; convert them to one kind");
            x = ImageProcessor.NumpyToPt(ImageProcessor.ImagesToNumpy(list));
        }
        else
        {
            if (cropsCoords is not null || resizeMode != ResizeMode.Default)
                throw new DiffusersException($"the {what} is a tensor: cropping and resize mode {resizeMode} take images only");
            x = Tensor!;
            if (grayscale && x.dim() == 2) x = x.unsqueeze(0).unsqueeze(0);   // [H, W]: diffusers stacks it to [1, H, W], then adds the channel
            if (x.dim() == 3) x = grayscale ? x.unsqueeze(1) : x.unsqueeze(0);
            if (x.dim() != 4)
                throw new DiffusersException(grayscale
                    ? $"a {what} tensor must be [H, W], [B, H, W] or [B, 1, H, W], got [{string.Join(", ", x.shape)}]"
                    : $"a {what} tensor must be [C, H, W] or [B, C, H, W], got [{string.Join(", ", x.shape)}]");
            if (x.numel() == 0)
                throw new DiffusersException($"the {what} tensor holds no pixels: shape [{string.Join(", ", x.shape)}]");
            if (grayscale && x.shape[1] != 1)
                throw new DiffusersException(
                    $"the {what} is not greyscale-convertible: a mask tensor must have one channel, got shape [{string.Join(", ", x.shape)}]");
            if (!grayscale && x.shape[1] == 4) return x.alias().MoveToOuterDisposeScope(); // latents
            var (h, w) = DefaultSize((int)x.shape[2], (int)x.shape[3], height, width, vaeScaleFactor, what);
            x = x.to(ScalarType.Float32);
            if (x.shape[2] != h || x.shape[3] != w)
                x = torch.nn.functional.interpolate(x, new long[] { h, w });
            if (normalize && x.min().item<float>() < 0) normalize = false; // already in [-1, 1], as diffusers accepts
        }
        if (normalize) x = ImageProcessor.Normalize(x);
        if (binarize) x = torch.where(x < 0.5, torch.zeros_like(x), torch.ones_like(x));
        return x.MoveToOuterDisposeScope();
    }

    private static (int H, int W) DefaultSize(int imageH, int imageW, int? height, int? width, int vsf, string what)
    {
        int h = height ?? imageH, w = width ?? imageW;
        h -= h % vsf;
        w -= w % vsf;
        if (h <= 0 || w <= 0)
            throw new DiffusersException($"the {what} ({imageW}x{imageH}) is smaller than one block of {vsf} pixels");
        return (h, w);
    }

    /// <summary>PIL's <c>convert("L")</c>: (R·19595 + G·38470 + B·7471 + 0x8000) &gt;&gt; 16.</summary>
    internal static Image ToGray(Image image)
    {
        if (image.Channels == 1) return image;
        var px = image.Pixels;
        var gray = new byte[image.Width * image.Height];
        for (int i = 0; i < gray.Length; i++)
            gray[i] = (byte)((px[3 * i] * 19595 + px[3 * i + 1] * 38470 + px[3 * i + 2] * 7471 + 0x8000) >> 16);
        return new Image(image.Width, image.Height, 1, gray);
    }
}
