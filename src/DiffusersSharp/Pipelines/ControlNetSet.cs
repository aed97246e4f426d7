using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// What every ControlNet pipeline (Stable Diffusion and SDXL; diffusers 0.25.1) does with its <c>controlnet</c> component
/// (one <see cref="ControlNetModel"/> or a <see cref="MultiControlNetModel"/>): loading it from a pipeline folder, the
/// per-net scales and guidance windows, the control image preprocessing (diffusers' <c>control_image_processor</c>: RGB,
/// resized, [0, 1], repeated to the batch, doubled for guidance unless in guess mode) and the
/// <see cref="ControlNetResiduals"/> strategy the shared denoising loop calls. The pipeline bases hold one and forward.
/// </summary>
internal sealed class ControlNetSet
{
    private readonly nn.Module controlnet;
    private readonly string className;
    private readonly int vaeScaleFactor;

    /// <summary>The set for <paramref name="controlnet"/> in pipeline <paramref name="className"/>.</summary>
    public ControlNetSet(nn.Module controlnet, string className, int vaeScaleFactor)
    {
        ArgumentNullException.ThrowIfNull(controlnet);
        this.controlnet = controlnet;
        this.className = className;
        this.vaeScaleFactor = vaeScaleFactor;
        Nets = controlnet switch
        {
            ControlNetModel single => [single],
            MultiControlNetModel multi => multi.Nets,
            _ => throw new ArgumentException($"controlnet must be a ControlNetModel or a MultiControlNetModel, got {controlnet.GetType().Name}", nameof(controlnet)),
        };
    }

    /// <summary>The ControlNets, in order (one for a single <see cref="ControlNetModel"/>).</summary>
    public IReadOnlyList<ControlNetModel> Nets { get; }

    /// <summary>
    /// Loads the <c>controlnet</c> component of a pipeline folder written by diffusers' <c>save_pretrained</c>: the
    /// <c>controlnet</c> subfolder, and for a <c>MultiControlNetModel</c> also <c>controlnet_1</c>, <c>controlnet_2</c>, …
    /// (its layout), each with <paramref name="options"/>.
    /// </summary>
    public static nn.Module LoadControlNets(PipelineIndex index, LoadOptions? options)
    {
        string folder = Path.GetDirectoryName(index.Path)!;
        index.Require("controlnet");
        // diffusers decides the variant by the controlnet folder and MultiControlNetModel hands it to every net
        var netOptions = PipelineVariant.For(options ?? LoadOptions.Default, index, "controlnet");
        var nets = new List<ControlNetModel>();
        try
        {
            for (int k = 0; k == 0 || Directory.Exists(Path.Combine(folder, $"controlnet_{k}")); k++)
                nets.Add(ControlNetModel.FromPretrained(folder, k == 0 ? "controlnet" : $"controlnet_{k}", netOptions));
            return nets.Count == 1 && index.Component("controlnet")?.ClassName != nameof(MultiControlNetModel)
                ? nets[0] : new MultiControlNetModel(nets);
        }
        catch
        {
            foreach (var net in nets) net.Dispose();
            throw;
        }
    }

    /// <summary>Builds a pipeline with <paramref name="create"/> from loaded components; the nets are disposed if it throws.</summary>
    public static T WithControlNets<T>(PipelineIndex index, LoadOptions? options, Func<nn.Module, T> create)
    {
        var controlnet = LoadControlNets(index, options);
        try
        {
            return create(controlnet);
        }
        catch
        {
            controlnet.Dispose();
            throw;
        }
    }

    /// <summary>
    /// diffusers' handling of <c>controlnet_conditioning_scale</c>, <c>control_guidance_start</c> / <c>_end</c>: one value
    /// (for every net) or one per net; each window 0 ≤ start &lt; end ≤ 1 (diffusers' messages).
    /// </summary>
    public (double[] Scales, double[] Start, double[] End) ControlArguments(IReadOnlyList<double>? scale, double defaultScale,
        IReadOnlyList<double>? start, IReadOnlyList<double>? end)
    {
        int n = Nets.Count;
        double[] PerNet(IReadOnlyList<double>? values, double fallback, string name)
        {
            if (values is null) return Enumerable.Repeat(fallback, n).ToArray();
            if (values.Count == 1) return Enumerable.Repeat(values[0], n).ToArray();
            if (values.Count != n)
                throw new DiffusersException($"{className}: {name} has {values.Count} values, but there are {n} ControlNets; pass one value, or one per net");
            return values.ToArray();
        }
        var scales = PerNet(scale, defaultScale, "controlnet_conditioning_scale");
        foreach (var s in scales)
            if (!double.IsFinite(s)) throw new DiffusersException($"{className}: controlnet_conditioning_scale must be finite, got {s}");
        var starts = PerNet(start, 0.0, "control_guidance_start");
        var ends = PerNet(end, 1.0, "control_guidance_end");
        for (int k = 0; k < n; k++)
        {
            if (!(starts[k] < ends[k]))
                throw new DiffusersException($"{className}: control guidance start: {starts[k]} cannot be larger or equal to control guidance end: {ends[k]}.");
            if (starts[k] < 0.0) throw new DiffusersException($"{className}: control guidance start: {starts[k]} can't be smaller than 0.");
            if (ends[k] > 1.0) throw new DiffusersException($"{className}: control guidance end: {ends[k]} can't be larger than 1.0.");
        }
        return (scales, starts, ends);
    }

    /// <summary>guess_mode, or a net with <c>global_pool_conditions</c> (diffusers reads the first net's).</summary>
    public bool GuessMode(bool guessMode) => guessMode || Nets[0].Config.GlobalPoolConditions;

    /// <summary>
    /// diffusers' <c>prepare_image</c> for each net: the control image converted to RGB, resized to
    /// <paramref name="height"/> × <paramref name="width"/> (default: its own size rounded down to a multiple of the VAE
    /// scale factor; the later nets take the first one's size), in [0, 1]; one image is repeated to the batch, a batch is
    /// repeated per image; doubled for guidance unless in guess mode. One control image (or batch) per net.
    /// </summary>
    public List<Tensor> PrepareControlImages(IReadOnlyList<ImageInput>? images, string what, int? height, int? width,
        int batchSize, int numImagesPerPrompt, bool cfg, bool guessMode)
    {
        if (images is null || images.Count == 0 || images.Any(i => i.IsNone))
            throw new DiffusersException($"{className}: a {what} is required for each of the {Nets.Count} ControlNet(s)");
        if (images.Count != Nets.Count)
            throw new DiffusersException(
                $"{className}: `{what}` must have the same length as the number of controlnets, but got {images.Count} images and {Nets.Count} ControlNets.");
        var prepared = new List<Tensor>();
        for (int k = 0; k < images.Count; k++)
        {
            var image = images[k].ToRgb().Preprocess(what, height, width, vaeScaleFactor, normalize: false, grayscale: false, binarize: false)
                .to(ScalarType.Float32);
            if (image.shape[1] != Nets[k].Config.ConditioningChannels)
                throw new DiffusersException(
                    $"{className}: {what} {k} has {image.shape[1]} channels, ControlNet {k} takes {Nets[k].Config.ConditioningChannels} (conditioning_channels)");
            long imageBatch = image.shape[0];
            if (imageBatch != 1 && imageBatch != batchSize / numImagesPerPrompt)
                throw new DiffusersException(
                    $"{className}: If image batch size is not 1, image batch size must be same as prompt batch size. image batch size: {imageBatch}, prompt batch size: {batchSize / numImagesPerPrompt}");
            image = image.repeat_interleave(imageBatch == 1 ? batchSize : numImagesPerPrompt, dim: 0)
                .to(Nets[k].DType, Nets[k].Device);
            if (cfg && !guessMode) image = torch.cat(new[] { image, image });
            prepared.Add(image);
            height ??= (int)image.shape[2];
            width ??= (int)image.shape[3];
        }
        return prepared;
    }

    /// <summary>The ControlNet strategy of one call, for the shared denoising loop.</summary>
    public ControlNetResiduals Residuals(IReadOnlyList<Tensor> images, double[] scales, double[] start, double[] end,
        bool guessMode, bool cfg) =>
        new(controlnet as MultiControlNetModel ?? Wrapped, images, scales, start, end, guessMode, cfg);

    private MultiControlNetModel Wrapped => _wrapped ??= new MultiControlNetModel(Nets);
    private MultiControlNetModel? _wrapped;
}
