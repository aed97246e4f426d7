using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// What the T2I-Adapter pipelines (Stable Diffusion and SDXL; diffusers 0.25.1) do with their <c>adapter</c> component
/// (one <see cref="T2IAdapter"/> or a <see cref="MultiAdapter"/>): loading it from a pipeline folder, the check that its
/// states fit the UNet's down blocks, the default output size (the control image's, rounded down to a multiple of the
/// adapter's <c>downscale_factor</c>), diffusers' <c>_preprocess_adapter_image</c> (images resized with Lanczos to the
/// output size, in [0, 1], their own channels; tensors as they are) and the states of one call
/// (<c>adapter_conditioning_scale</c>, repeated per image, doubled for guidance). The pipelines hold one and forward.
/// </summary>
internal sealed class T2IAdapterSet
{
    private readonly nn.Module _adapter;
    private readonly string _className;

    /// <summary>The set for <paramref name="adapter"/> in pipeline <paramref name="className"/>; checks it fits <paramref name="unet"/>.</summary>
    public T2IAdapterSet(nn.Module adapter, string className, UNet2DConditionModel unet)
    {
        ArgumentNullException.ThrowIfNull(adapter);
        _adapter = adapter;
        _className = className;
        Adapters = adapter switch
        {
            T2IAdapter single => [single],
            MultiAdapter multi => multi.Adapters,
            _ => throw new ArgumentException($"{className}: adapter must be a T2IAdapter or a MultiAdapter, got {adapter.GetType().Name}", nameof(adapter)),
        };
        for (int k = 0; k < Adapters.Count; k++) CheckFits(Adapters[k], k, unet);
        foreach (var a in Adapters) a.eval();
    }

    /// <summary>The adapters, in order (one for a single <see cref="T2IAdapter"/>).</summary>
    public IReadOnlyList<T2IAdapter> Adapters { get; }

    /// <summary>
    /// The channels of each state an adapter gives, in order: <c>channels</c> for full_adapter and full_adapter_xl;
    /// light_adapter adds one more of the last width.
    /// </summary>
    public static int[] StateChannels(T2IAdapterConfig c) =>
        c.AdapterType == "light_adapter" ? [.. c.Channels, c.Channels[^1]] : c.Channels;

    /// <summary>
    /// An adapter's states go into the UNet's down blocks in order (diffusers' <c>down_intrablock_additional_residuals</c>):
    /// state i must have block_out_channels[i] channels; a state beyond the down blocks goes onto the mid block's output
    /// where its shape matches (else diffusers leaves it out). Otherwise a <see cref="ConfigException"/> naming the adapter
    /// and <c>channels</c>, instead of torch's broadcasting error at the first step.
    /// </summary>
    public void CheckFits(T2IAdapter adapter, int index, UNet2DConditionModel unet)
    {
        int[] states = StateChannels(adapter.Config);
        int[] blocks = unet.Config.BlockOutChannels;
        int n = Math.Min(states.Length, blocks.Length);
        if (!states.AsSpan(0, n).SequenceEqual(blocks.AsSpan(0, n)))
            throw new ConfigException(
                $"{_className}: adapter {index} ({adapter.Config.AdapterType}, channels [{string.Join(", ", adapter.Config.Channels)}]) gives states of " +
                $"[{string.Join(", ", states)}] channels, but the UNet's down blocks have block_out_channels [{string.Join(", ", blocks)}]: the adapter was made for another model")
            { Key = "channels" };
    }

    /// <summary>The adapters' <c>downscale_factor</c> (a MultiAdapter's adapters share it).</summary>
    public int DownscaleFactor => Adapters[0].DownscaleFactor;

    /// <summary>
    /// Loads the <c>adapter</c> component of a pipeline folder written by diffusers' <c>save_pretrained</c>: the
    /// <c>adapter</c> subfolder, and for a <c>MultiAdapter</c> also <c>adapter_1</c>, <c>adapter_2</c>, … (its layout),
    /// each with <paramref name="options"/>.
    /// </summary>
    public static nn.Module Load(PipelineIndex index, LoadOptions? options)
    {
        string folder = Path.GetDirectoryName(index.Path)!;
        index.Require("adapter");
        var adapterOptions = PipelineVariant.For(options ?? LoadOptions.Default, index, "adapter");
        return PipelineSteps.DisposeOnFailure<nn.Module>(loaded =>
        {
            var adapters = new List<T2IAdapter>();
            for (int k = 0; k == 0 || Directory.Exists(Path.Combine(folder, $"adapter_{k}")); k++)
                adapters.Add(loaded.Kept(T2IAdapter.FromPretrained(folder, k == 0 ? "adapter" : $"adapter_{k}", adapterOptions)));
            if (adapters.Count == 1 && index.Component("adapter")?.ClassName == nameof(MultiAdapter))
                throw new ConfigException($"{index.Path}: the adapter is a MultiAdapter, but only the folder 'adapter' exists (a MultiAdapter needs adapter_1 too)")
                { FilePath = index.Path, Key = "adapter" };
            return adapters.Count == 1 ? adapters[0] : new MultiAdapter(adapters);
        });
    }

    /// <summary>Builds a pipeline with <paramref name="create"/> from a folder's adapter; the adapter is disposed if it throws.</summary>
    public static T WithAdapter<T>(PipelineIndex index, LoadOptions? options, Func<nn.Module, T> create) =>
        PipelineSteps.DisposeOnFailure(loaded => create(loaded.Kept(Load(index, options))));

    /// <summary>
    /// diffusers' <c>_default_height_width</c>: the first control image's height and width, rounded down to a multiple of
    /// the adapter's <c>downscale_factor</c>, where <paramref name="height"/> / <paramref name="width"/> are not given.
    /// One control image (or batch) per adapter, else a <see cref="DiffusersException"/>.
    /// </summary>
    public (int Height, int Width) DefaultSize(IReadOnlyList<ImageInput>? images, int? height, int? width)
    {
        if (images is null || images.Count == 0 || images.Any(i => i.IsNone))
            throw new DiffusersException($"{_className}: an image is required for each of the {Adapters.Count} adapter(s)");
        if (images.Count != Adapters.Count)
            throw new DiffusersException(
                Adapters.Count > 1
                    ? $"{_className}: MultiAdapter requires passing the same number of images as adapters. Given {images.Count} images and {Adapters.Count} adapters."
                    : $"{_className}: one adapter takes one image (or batch), got {images.Count}");
        var first = images[0];
        int f = DownscaleFactor;
        int imageH, imageW;
        if (first.Images is { Count: > 0 } list)
            (imageH, imageW) = (list[0].Height, list[0].Width);
        else if (first.Tensor is { } t && t.dim() >= 2)
            (imageH, imageW) = ((int)t.shape[^2], (int)t.shape[^1]);
        else
            throw new DiffusersException($"{_className}: the image is {first.Kind}; give an Image, a list of Images or a [C, H, W] / [B, C, H, W] tensor");
        return (height ?? imageH / f * f, width ?? imageW / f * f);
    }

    /// <summary>
    /// The states of one call: each adapter's control image preprocessed as diffusers' <c>_preprocess_adapter_image</c>
    /// to <paramref name="height"/> × <paramref name="width"/>, the adapter run, its states times its scale (a
    /// MultiAdapter: the weighted sum), repeated <paramref name="numImagesPerPrompt"/> times and doubled for guidance.
    /// The states' batch must be that of the UNet's input (<paramref name="total"/> images) or 1 without guidance
    /// (torch broadcasts it), else a <see cref="DiffusersException"/>. <paramref name="cutoff"/>: the first step without
    /// the states.
    /// </summary>
    public T2IAdapterStates States(IReadOnlyList<ImageInput> images, int height, int width, double[] scales,
        int numImagesPerPrompt, int total, bool cfg, int cutoff)
    {
        var inputs = new List<Tensor>();
        for (int k = 0; k < Adapters.Count; k++)
            inputs.Add(Preprocess(images[k], k, height, width));
        long batch = inputs[0].shape[0];
        for (int k = 1; k < inputs.Count; k++)
            if (inputs[k].shape[0] != batch)
                throw new DiffusersException($"{_className}: image {k} is a batch of {inputs[k].shape[0]}, image 0 of {batch}; give every adapter the same number of images");
        if (batch * numImagesPerPrompt != total && !(batch * numImagesPerPrompt == 1 && !cfg))
            throw new DiffusersException(
                $"{_className}: the adapter image batch is {batch}, but there are {total / numImagesPerPrompt} prompt(s) with guidance {(cfg ? "on" : "off")}; " +
                "give one image per prompt (or one image for one prompt, or without guidance)");
        Tensor[] states = _adapter is MultiAdapter multi
            ? multi.Forward(inputs, scales)
            : Adapters[0].Forward(inputs[0]).Select(s => s.mul_(scales[0])).ToArray();
        if (numImagesPerPrompt > 1) states = states.Select(s => s.repeat(numImagesPerPrompt, 1, 1, 1)).ToArray();
        if (cfg) states = states.Select(s => torch.cat(new[] { s, s })).ToArray();
        return new T2IAdapterStates(states, cutoff);
    }

    /// <summary>
    /// <c>adapter_conditioning_scale</c>: one value (for every adapter) or one per adapter, finite; default 1 for each
    /// (diffusers' default is 1.0, which its MultiAdapter cannot take: it needs one weight per adapter).
    /// </summary>
    public double[] Scales(IReadOnlyList<double>? scale)
    {
        int n = Adapters.Count;
        double[] values = scale is null ? Enumerable.Repeat(1.0, n).ToArray()
            : scale.Count == 1 ? Enumerable.Repeat(scale[0], n).ToArray()
            : scale.Count == n ? scale.ToArray()
            : throw new DiffusersException($"{_className}: adapter_conditioning_scale has {scale.Count} values, but there are {n} adapters; pass one value, or one per adapter");
        foreach (var v in values)
            if (!double.IsFinite(v)) throw new DiffusersException($"{_className}: adapter_conditioning_scale must be finite, got {v}");
        return values;
    }

    private Tensor Preprocess(ImageInput image, int k, int height, int width)
    {
        var adapter = Adapters[k];
        Tensor x;
        if (image.Images is { } list)
        {
            if (list.Count == 0) throw new DiffusersException($"{_className}: image {k} is an empty list");
            var resized = list.Select(im => ImageProcessor.Resize(im, height, width)).ToList();
            if (resized.Any(im => im.Channels != resized[0].Channels))
                throw new DiffusersException($"{_className}: image {k} mixes RGB and greyscale images; convert them to one kind");
            using var nhwc = ImageProcessor.ImagesToNumpy(resized);
            x = ImageProcessor.NumpyToPt(nhwc);
        }
        else
        {
            var t = image.Tensor!;
            if (t.dim() != 3 && t.dim() != 4)
                throw new DiffusersException(
                    $"{_className}: Invalid image tensor! Expecting image tensor with 3 or 4 dimension, but recive: {t.dim()} (image {k}, shape {Layers.Shape(t)})");
            x = t.dim() == 3 ? t.unsqueeze(0) : t.alias();
            if (x.shape[2] != height || x.shape[3] != width)
                throw new DiffusersException(
                    $"{_className}: image {k} is a tensor of {x.shape[3]}x{x.shape[2]}, but the output is {width}x{height}; diffusers does not resize tensors: give one of the output size");
        }
        if (x.shape[1] != adapter.Config.InChannels)
            throw new DiffusersException(
                $"{_className}: image {k} has {x.shape[1]} channel(s), adapter {k} takes {adapter.Config.InChannels} (in_channels){(adapter.Config.InChannels == 1 ? ": give a greyscale image" : "")}");
        return x.to(adapter.DType, adapter.Device);
    }
}
