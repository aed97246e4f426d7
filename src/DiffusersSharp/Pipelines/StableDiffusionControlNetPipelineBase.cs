using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// What diffusers' Stable Diffusion ControlNet pipelines (txt2img, img2img, inpaint; 0.25.1) share beyond
/// <see cref="StableDiffusionPipelineBase"/>: the <c>controlnet</c> component (one <see cref="ControlNetModel"/> or a
/// <see cref="MultiControlNetModel"/>), the checks that it fits the UNet and the text encoder, the control image
/// preprocessing (diffusers' <c>control_image_processor</c>: RGB, resized, [0, 1], repeated to the batch, doubled for
/// guidance unless in guess mode), the per-net scales and guidance windows, and the <see cref="ControlNetResiduals"/>
/// strategy the shared denoising loop calls.
/// </summary>
public abstract class StableDiffusionControlNetPipelineBase : StableDiffusionPipelineBase
{
    private readonly nn.Module _controlnet;

    private protected StableDiffusionControlNetPipelineBase(IVae vae, CLIPTextModel textEncoder, CLIPTokenizer tokenizer,
        UNet2DConditionModel unet, nn.Module controlnet, IScheduler scheduler, Action<string>? log)
        : base(vae, textEncoder, tokenizer, unet, scheduler, log)
    {
        ArgumentNullException.ThrowIfNull(controlnet);
        _controlnet = controlnet;
        Nets = controlnet switch
        {
            ControlNetModel single => [single],
            MultiControlNetModel multi => multi.Nets,
            _ => throw new ArgumentException($"controlnet must be a ControlNetModel or a MultiControlNetModel, got {controlnet.GetType().Name}", nameof(controlnet)),
        };
        for (int k = 0; k < Nets.Count; k++) CheckControlNetFits(Nets[k], k, unet, textEncoder.Config, vae.LatentChannels);
        foreach (var net in Nets) net.eval();
    }

    /// <summary>The <c>controlnet</c> component as given: a <see cref="ControlNetModel"/> or a <see cref="MultiControlNetModel"/>.</summary>
    public nn.Module Controlnet => _controlnet;

    /// <summary>The ControlNets, in order (one for a single <see cref="ControlNetModel"/>).</summary>
    public IReadOnlyList<ControlNetModel> Nets { get; }

    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Components => new Dictionary<string, object>(base.Components)
    {
        ["controlnet"] = _controlnet,
    };

    /// <summary>
    /// Loads the <c>controlnet</c> component of a pipeline folder written by diffusers' <c>save_pretrained</c>: the
    /// <c>controlnet</c> subfolder, and for a <c>MultiControlNetModel</c> also <c>controlnet_1</c>, <c>controlnet_2</c>, …
    /// (its layout), each with <paramref name="options"/>.
    /// </summary>
    private protected static nn.Module LoadControlNets(PipelineIndex index, LoadOptions? options)
    {
        string folder = Path.GetDirectoryName(index.Path)!;
        index.Require("controlnet");
        var nets = new List<ControlNetModel>();
        try
        {
            for (int k = 0; k == 0 || Directory.Exists(Path.Combine(folder, $"controlnet_{k}")); k++)
                nets.Add(ControlNetModel.FromPretrained(folder, k == 0 ? "controlnet" : $"controlnet_{k}", options));
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
    private protected static T WithControlNets<T>(PipelineIndex index, LoadOptions? options, Func<nn.Module, T> create)
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
    /// A ControlNet must take the text encoder's states (its cross_attention_dim), the VAE's latents (its in_channels) and
    /// give the UNet's skip states (the same block_out_channels and as many residuals): otherwise a
    /// <see cref="ConfigException"/> naming the net and the key.
    /// </summary>
    public static void CheckControlNetFits(ControlNetModel net, int index, UNet2DConditionModel unet, CLIPTextConfig text, int latentChannels)
    {
        var c = net.Config;
        string which = $"ControlNet {index}";
        if (c.CrossAttentionDim != text.HiddenSize || unet.Config.CrossAttentionDim.Any(d => d != c.CrossAttentionDim))
            throw new ConfigException(
                $"{which} has cross_attention_dim {c.CrossAttentionDim}, but the UNet's is [{string.Join(", ", unet.Config.CrossAttentionDim.Distinct())}] and the text encoder's hidden_size {text.HiddenSize}: the ControlNet was made for another model")
            { Key = "cross_attention_dim" };
        if (c.InChannels != latentChannels)
            throw new ConfigException($"{which} has in_channels {c.InChannels}, but the VAE makes latents of {latentChannels} channels") { Key = "in_channels" };
        var u = unet.Config;
        int skips = 1 + Enumerable.Range(0, u.BlockOutChannels.Length)
            .Sum(i => UNet2DConditionModelConfigValidation.At(u.LayersPerBlock, i) + (i < u.BlockOutChannels.Length - 1 ? 1 : 0));
        if (!c.BlockOutChannels.SequenceEqual(u.BlockOutChannels) || net.NumDownResiduals != skips)
            throw new ConfigException(
                $"{which} gives {net.NumDownResiduals} residuals for block_out_channels [{string.Join(", ", c.BlockOutChannels)}], but the UNet has {skips} skip states for [{string.Join(", ", u.BlockOutChannels)}]: the ControlNet was made for another model")
            { Key = "block_out_channels" };
    }

    /// <summary>
    /// diffusers' handling of <c>controlnet_conditioning_scale</c>, <c>control_guidance_start</c> / <c>_end</c>: one value
    /// (for every net) or one per net; each window 0 ≤ start &lt; end ≤ 1 (diffusers' messages).
    /// </summary>
    private protected (double[] Scales, double[] Start, double[] End) ControlArguments(IReadOnlyList<double>? scale, double defaultScale,
        IReadOnlyList<double>? start, IReadOnlyList<double>? end)
    {
        int n = Nets.Count;
        double[] PerNet(IReadOnlyList<double>? values, double fallback, string name)
        {
            if (values is null) return Enumerable.Repeat(fallback, n).ToArray();
            if (values.Count == 1) return Enumerable.Repeat(values[0], n).ToArray();
            if (values.Count != n)
                throw new DiffusersException($"{ClassName}: {name} has {values.Count} values, but there are {n} ControlNets; pass one value, or one per net");
            return values.ToArray();
        }
        var scales = PerNet(scale, defaultScale, "controlnet_conditioning_scale");
        foreach (var s in scales)
            if (!double.IsFinite(s)) throw new DiffusersException($"{ClassName}: controlnet_conditioning_scale must be finite, got {s}");
        var starts = PerNet(start, 0.0, "control_guidance_start");
        var ends = PerNet(end, 1.0, "control_guidance_end");
        for (int k = 0; k < n; k++)
        {
            if (!(starts[k] < ends[k]))
                throw new DiffusersException($"{ClassName}: control guidance start: {starts[k]} cannot be larger or equal to control guidance end: {ends[k]}.");
            if (starts[k] < 0.0) throw new DiffusersException($"{ClassName}: control guidance start: {starts[k]} can't be smaller than 0.");
            if (ends[k] > 1.0) throw new DiffusersException($"{ClassName}: control guidance end: {ends[k]} can't be larger than 1.0.");
        }
        return (scales, starts, ends);
    }

    /// <summary>guess_mode, or a net with <c>global_pool_conditions</c> (diffusers reads the first net's).</summary>
    private protected bool GuessMode(bool guessMode) => guessMode || Nets[0].Config.GlobalPoolConditions;

    /// <summary>
    /// diffusers' <c>prepare_image</c> for each net: the control image converted to RGB, resized to
    /// <paramref name="height"/> × <paramref name="width"/> (default: its own size rounded down to a multiple of the VAE
    /// scale factor; the later nets take the first one's size), in [0, 1]; one image is repeated to the batch, a batch is
    /// repeated per image; doubled for guidance unless in guess mode. One control image (or batch) per net.
    /// </summary>
    private protected List<Tensor> PrepareControlImages(IReadOnlyList<ImageInput>? images, string what, int? height, int? width,
        int batchSize, int numImagesPerPrompt, bool cfg, bool guessMode)
    {
        if (images is null || images.Count == 0 || images.Any(i => i.IsNone))
            throw new DiffusersException($"{ClassName}: a {what} is required for each of the {Nets.Count} ControlNet(s)");
        if (images.Count != Nets.Count)
            throw new DiffusersException(
                $"{ClassName}: `{what}` must have the same length as the number of controlnets, but got {images.Count} images and {Nets.Count} ControlNets.");
        var prepared = new List<Tensor>();
        for (int k = 0; k < images.Count; k++)
        {
            var input = images[k].Images is { } list ? (ImageInput)list.Select(im => im.ToRgb()).ToArray() : images[k];
            var image = input.Preprocess(what, height, width, VaeScaleFactor, normalize: false, grayscale: false, binarize: false)
                .to(ScalarType.Float32);
            if (image.shape[1] != Nets[k].Config.ConditioningChannels)
                throw new DiffusersException(
                    $"{ClassName}: {what} {k} has {image.shape[1]} channels, ControlNet {k} takes {Nets[k].Config.ConditioningChannels} (conditioning_channels)");
            long imageBatch = image.shape[0];
            if (imageBatch != 1 && imageBatch != batchSize / numImagesPerPrompt)
                throw new DiffusersException(
                    $"{ClassName}: If image batch size is not 1, image batch size must be same as prompt batch size. image batch size: {imageBatch}, prompt batch size: {batchSize / numImagesPerPrompt}");
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
    private protected ControlNetResiduals Residuals(IReadOnlyList<Tensor> images, double[] scales, double[] start, double[] end,
        bool guessMode, bool cfg) =>
        new(_controlnet as MultiControlNetModel ?? Wrapped, images, scales, start, end, guessMode, cfg);

    private MultiControlNetModel Wrapped => _wrapped ??= new MultiControlNetModel(Nets);
    private MultiControlNetModel? _wrapped;

    /// <summary>Records the control images (the first net's) for tests.</summary>
    private protected void RecordControl(IReadOnlyList<Tensor> images) => Record("control_image", images[0]);
}
