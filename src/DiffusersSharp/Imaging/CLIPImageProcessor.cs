using System.Text.Json;
using DiffusersSharp.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Imaging;

/// <summary>
/// transformers' <c>CLIPImageProcessor</c> (image_processing_clip.py, 4.36): RGB, the shortest edge resized to
/// <see cref="ShortestEdge"/> (the long edge <c>int(size · long / short)</c>) with Pillow's filter, a centre crop of
/// <see cref="CropHeight"/> × <see cref="CropWidth"/> (top/left <c>(size − crop) // 2</c>; an image smaller than the crop
/// padded with zeros first, as transformers pads it), rescaled by
/// <see cref="RescaleFactor"/> (in double, then float32) and normalised <c>(x − mean) / std</c> in float32; pixel values
/// [N, 3, crop height, crop width]. Defaults are transformers' (OpenAI CLIP's mean and std, 224, bicubic).
/// </summary>
public sealed class CLIPImageProcessor
{
    /// <summary>OpenAI CLIP's per-channel mean (transformers' <c>OPENAI_CLIP_MEAN</c>).</summary>
    public static readonly IReadOnlyList<double> OpenAIClipMean = [0.48145466, 0.4578275, 0.40821073];

    /// <summary>OpenAI CLIP's per-channel standard deviation (transformers' <c>OPENAI_CLIP_STD</c>).</summary>
    public static readonly IReadOnlyList<double> OpenAIClipStd = [0.26862954, 0.26130258, 0.27577711];

    /// <summary>The file name transformers reads the processor's settings from.</summary>
    public const string ConfigName = "preprocessor_config.json";

    /// <summary><c>do_resize</c>.</summary>
    public bool DoResize { get; init; } = true;
    /// <summary><c>size["shortest_edge"]</c>: the length the shorter side is resized to.</summary>
    public int ShortestEdge { get; init; } = 224;
    /// <summary><c>resample</c> (PIL's number 3 = bicubic).</summary>
    public ResampleFilter Resample { get; init; } = ResampleFilter.Bicubic;
    /// <summary><c>do_center_crop</c>.</summary>
    public bool DoCenterCrop { get; init; } = true;
    /// <summary><c>crop_size["height"]</c>.</summary>
    public int CropHeight { get; init; } = 224;
    /// <summary><c>crop_size["width"]</c>.</summary>
    public int CropWidth { get; init; } = 224;
    /// <summary><c>do_rescale</c>.</summary>
    public bool DoRescale { get; init; } = true;
    /// <summary><c>rescale_factor</c>.</summary>
    public double RescaleFactor { get; init; } = 1 / 255.0;
    /// <summary><c>do_normalize</c>.</summary>
    public bool DoNormalize { get; init; } = true;
    /// <summary><c>image_mean</c>, per channel.</summary>
    public IReadOnlyList<double> ImageMean { get; init; } = OpenAIClipMean;
    /// <summary><c>image_std</c>, per channel.</summary>
    public IReadOnlyList<double> ImageStd { get; init; } = OpenAIClipStd;

    /// <summary>
    /// Reads <c>preprocessor_config.json</c> of <paramref name="folder"/> (a pipeline's <c>feature_extractor/</c>, an
    /// image encoder's folder); absent keys take transformers' defaults. Unknown or bad values are a
    /// <see cref="ConfigException"/> naming the file and the key.
    /// </summary>
    public static CLIPImageProcessor FromPretrained(string folder) => FromFile(Path.Combine(folder, ConfigName));

    /// <summary>As <see cref="FromPretrained"/>, from the file itself.</summary>
    public static CLIPImageProcessor FromFile(string path)
    {
        using var doc = ConfigJson.ReadObject(path);
        var root = doc.RootElement;
        ConfigException Bad(string key, string what) =>
            new($"{path}: config key '{key}': {what}") { FilePath = path, Key = key };
        bool Bool(string key, bool dflt) => !root.TryGetProperty(key, out var v) ? dflt : v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Bad(key, $"expected true or false, got {ConfigJson.Describe(v)}"),
        };
        int Positive(JsonElement v, string key) =>
            v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int n) && n > 0 && n <= Image.MaxSide ? n
                : throw Bad(key, $"expected a positive whole number of pixels (at most {Image.MaxSide}), got {ConfigJson.Describe(v)}");
        double Number(string key, double dflt)
        {
            if (!root.TryGetProperty(key, out var v)) return dflt;
            return v.ValueKind == JsonValueKind.Number && double.IsFinite(v.GetDouble()) ? v.GetDouble() : throw Bad(key, $"expected a number, got {ConfigJson.Describe(v)}");
        }
        IReadOnlyList<double> Triple(string key, IReadOnlyList<double> dflt, bool positive)
        {
            if (!root.TryGetProperty(key, out var v)) return dflt;
            if (v.ValueKind == JsonValueKind.Number) v = JsonDocument.Parse($"[{v.GetRawText()},{v.GetRawText()},{v.GetRawText()}]").RootElement;
            if (v.ValueKind != JsonValueKind.Array || v.GetArrayLength() != 3
                || v.EnumerateArray().Any(e => e.ValueKind != JsonValueKind.Number || !double.IsFinite(e.GetDouble()) || (positive && e.GetDouble() <= 0)))
                throw Bad(key, $"expected three {(positive ? "positive " : "")}numbers (one per RGB channel), got {ConfigJson.Describe(v)}");
            return v.EnumerateArray().Select(e => e.GetDouble()).ToArray();
        }

        int shortest = 224, cropH = 224, cropW = 224;
        if (root.TryGetProperty("size", out var size))
        {
            if (size.ValueKind == JsonValueKind.Object && size.TryGetProperty("shortest_edge", out var se)) shortest = Positive(se, "size");
            else if (size.ValueKind == JsonValueKind.Number) shortest = Positive(size, "size");
            else throw Bad("size", $"expected {{\"shortest_edge\": n}} or a number (CLIPImageProcessor resizes the shortest edge), got {ConfigJson.Describe(size)}");
        }
        if (root.TryGetProperty("crop_size", out var crop))
        {
            if (crop.ValueKind == JsonValueKind.Number) cropH = cropW = Positive(crop, "crop_size");
            else if (crop.ValueKind == JsonValueKind.Object && crop.TryGetProperty("height", out var ch) && crop.TryGetProperty("width", out var cw))
                (cropH, cropW) = (Positive(ch, "crop_size"), Positive(cw, "crop_size"));
            else throw Bad("crop_size", $"expected {{\"height\": h, \"width\": w}} or a number, got {ConfigJson.Describe(crop)}");
        }
        var resample = ResampleFilter.Bicubic;
        if (root.TryGetProperty("resample", out var rs))
        {
            resample = rs.ValueKind == JsonValueKind.Number && rs.TryGetInt32(out int code) ? code switch
            {
                0 => ResampleFilter.Nearest,
                1 => ResampleFilter.Lanczos,
                2 => ResampleFilter.Bilinear,
                3 => ResampleFilter.Bicubic,
                4 => ResampleFilter.Box,
                5 => ResampleFilter.Hamming,
                _ => throw Bad("resample", $"expected PIL's filter number 0-5, got {code}"),
            } : throw Bad("resample", $"expected PIL's filter number 0-5, got {ConfigJson.Describe(rs)}");
        }
        if (!Bool("do_convert_rgb", true))
            throw Bad("do_convert_rgb", "false is not supported: the image encoder takes RGB images");
        return new CLIPImageProcessor
        {
            DoResize = Bool("do_resize", true),
            ShortestEdge = shortest,
            Resample = resample,
            DoCenterCrop = Bool("do_center_crop", true),
            CropHeight = cropH,
            CropWidth = cropW,
            DoRescale = Bool("do_rescale", true),
            RescaleFactor = Number("rescale_factor", 1 / 255.0),
            DoNormalize = Bool("do_normalize", true),
            ImageMean = Triple("image_mean", OpenAIClipMean, positive: false),
            ImageStd = Triple("image_std", OpenAIClipStd, positive: true),
        };
    }

    /// <summary>The processor's steps on one image, up to the centre crop: an RGB image of the crop's size.</summary>
    public Image ResizeAndCrop(Image image)
    {
        ArgumentNullException.ThrowIfNull(image);
        var im = image.ToRgb();
        if (DoResize)
        {
            // transformers' get_resize_output_image_size(default_to_square=False)
            bool portrait = im.Width <= im.Height;
            int shortSide = portrait ? im.Width : im.Height, longSide = portrait ? im.Height : im.Width;
            int newLong = (int)(ShortestEdge * (double)longSide / shortSide);
            if (newLong < 1)
                throw new DiffusersException($"CLIPImageProcessor: the image {image.Width}x{image.Height} is too narrow to resize its shortest edge to {ShortestEdge}");
            im = portrait ? ImageResize.Resize(im, ShortestEdge, newLong, Resample) : ImageResize.Resize(im, newLong, ShortestEdge, Resample);
        }
        if (DoCenterCrop) im = CenterCrop(im, CropWidth, CropHeight);
        return im;
    }

    private static int FloorHalf(int v) => (int)Math.Floor(v / 2.0);

    /// <summary>
    /// transformers' <c>image_transforms.center_crop</c>: the box of the crop's size whose top/left is
    /// <c>(size − crop) // 2</c>; where the image is smaller than the crop in a dimension, it is first padded with zeros
    /// (black) to the crop's size in that dimension, placed <c>ceil((crop − size) / 2)</c> from the top/left, so the result
    /// is always <paramref name="cropWidth"/> × <paramref name="cropHeight"/>.
    /// </summary>
    internal static Image CenterCrop(Image image, int cropWidth, int cropHeight)
    {
        int top = FloorHalf(image.Height - cropHeight), left = FloorHalf(image.Width - cropWidth);
        if (top >= 0 && left >= 0) return ImageResize.Crop(image, left, top, left + cropWidth, top + cropHeight);
        int newW = Math.Max(cropWidth, image.Width), newH = Math.Max(cropHeight, image.Height);
        int padLeft = (newW - image.Width + 1) / 2, padTop = (newH - image.Height + 1) / 2;
        var canvas = new byte[(long)newW * newH * 3];
        ImageResize.Paste(canvas, newW, newH, image, padLeft, padTop);
        // after padding, the box starts at (size − crop) // 2 + pad: 0 in a padded dimension
        return ImageResize.Crop(new Image(newW, newH, 3, canvas), left + padLeft, top + padTop, left + padLeft + cropWidth, top + padTop + cropHeight);
    }

    /// <summary>
    /// transformers' <c>processor(images, return_tensors="pt").pixel_values</c>: [N, 3, H, W] float32. Every image must
    /// come out of the resize and crop at the same size (it does with the centre crop on).
    /// </summary>
    public Tensor Preprocess(IReadOnlyList<Image> images)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Count == 0) throw new DiffusersException("CLIPImageProcessor: no images given");
        var done = images.Select(ResizeAndCrop).ToArray();
        int w = done[0].Width, h = done[0].Height;
        if (done.Any(im => im.Width != w || im.Height != h))
            throw new DiffusersException("CLIPImageProcessor: the images differ in size after resizing and no centre crop evens them out");
        var mean = ImageMean.Select(m => (float)m).ToArray();
        var std = ImageStd.Select(s => (float)s).ToArray();
        var data = new float[done.Length * 3L * h * w];
        long plane = (long)h * w;
        for (int n = 0; n < done.Length; n++)
        {
            var px = done[n].Pixels;
            for (int c = 0; c < 3; c++)
            {
                long o = (n * 3L + c) * plane;
                for (long i = 0; i < plane; i++)
                {
                    // numpy: uint8 * python float in float64, astype(float32); then (x - mean) / std in float32
                    float x = DoRescale ? (float)(px[i * 3 + c] * RescaleFactor) : px[i * 3 + c];
                    data[o + i] = DoNormalize ? (x - mean[c]) / std[c] : x;
                }
            }
        }
        return torch.tensor(data, new long[] { done.Length, 3, h, w });
    }

    /// <summary>One image → [1, 3, H, W]; see <see cref="Preprocess(IReadOnlyList{Image})"/>.</summary>
    public Tensor Preprocess(Image image) => Preprocess([image]);
}
