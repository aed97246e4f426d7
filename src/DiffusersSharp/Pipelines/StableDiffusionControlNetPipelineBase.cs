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
    private readonly ControlNetSet _set;

    private protected StableDiffusionControlNetPipelineBase(IVae vae, CLIPTextModel textEncoder, CLIPTokenizer tokenizer,
        UNet2DConditionModel unet, nn.Module controlnet, IScheduler scheduler, Action<string>? log)
        : base(vae, textEncoder, tokenizer, unet, scheduler, log)
    {
        _controlnet = controlnet;
        _set = new ControlNetSet(controlnet, ClassName, VaeScaleFactor);
        for (int k = 0; k < Nets.Count; k++) CheckControlNetFits(Nets[k], k, unet, textEncoder.Config, vae.LatentChannels);
        foreach (var net in Nets) net.eval();
    }

    /// <summary>The <c>controlnet</c> component as given: a <see cref="ControlNetModel"/> or a <see cref="MultiControlNetModel"/>.</summary>
    public nn.Module Controlnet => _controlnet;

    /// <summary>The ControlNets, in order (one for a single <see cref="ControlNetModel"/>).</summary>
    public IReadOnlyList<ControlNetModel> Nets => _set.Nets;

    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Components => new Dictionary<string, object>(base.Components)
    {
        ["controlnet"] = _controlnet,
    };

    /// <summary>
    /// A ControlNet must take the text encoder's states (its cross_attention_dim), the VAE's latents (its in_channels) and
    /// give the UNet's skip states (the same block_out_channels and as many residuals): otherwise a
    /// <see cref="ConfigException"/> naming the net and the key.
    /// </summary>
    public static void CheckControlNetFits(ControlNetModel net, int index, UNet2DConditionModel unet, CLIPTextConfig text, int latentChannels) =>
        CheckControlNetFits(net, index, unet, text.HiddenSize, latentChannels);

    /// <summary>
    /// <see cref="CheckControlNetFits(ControlNetModel, int, UNet2DConditionModel, CLIPTextConfig, int)"/> with the width of
    /// the text states the UNet gets (SDXL: both encoders' hidden sizes added).
    /// </summary>
    public static void CheckControlNetFits(ControlNetModel net, int index, UNet2DConditionModel unet, int textHiddenSize, int latentChannels)
    {
        var c = net.Config;
        string which = $"ControlNet {index}";
        if (c.CrossAttentionDim != textHiddenSize || unet.Config.CrossAttentionDim.Any(d => d != c.CrossAttentionDim))
            throw new ConfigException(
                $"{which} has cross_attention_dim {c.CrossAttentionDim}, but the UNet's is [{string.Join(", ", unet.Config.CrossAttentionDim.Distinct())}] and the text encoder's hidden_size {textHiddenSize}: the ControlNet was made for another model")
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

    /// <summary>Loads the <c>controlnet</c> component of a pipeline folder (see <see cref="ControlNetSet.LoadControlNets"/>).</summary>
    private protected static T WithControlNets<T>(PipelineIndex index, LoadOptions? options, Func<nn.Module, T> create) =>
        ControlNetSet.WithControlNets(index, options, create);

    /// <summary>The per-net scales and guidance windows (see <see cref="ControlNetSet.ControlArguments"/>).</summary>
    private protected (double[] Scales, double[] Start, double[] End) ControlArguments(IReadOnlyList<double>? scale, double defaultScale,
        IReadOnlyList<double>? start, IReadOnlyList<double>? end) => _set.ControlArguments(scale, defaultScale, start, end);

    /// <summary>guess_mode, or a net with <c>global_pool_conditions</c>.</summary>
    private protected bool GuessMode(bool guessMode) => _set.GuessMode(guessMode);

    /// <summary>The prepared control images (see <see cref="ControlNetSet.PrepareControlImages"/>).</summary>
    private protected List<Tensor> PrepareControlImages(IReadOnlyList<ImageInput>? images, string what, int? height, int? width,
        int batchSize, int numImagesPerPrompt, bool cfg, bool guessMode) =>
        _set.PrepareControlImages(images, what, height, width, batchSize, numImagesPerPrompt, cfg, guessMode);

    /// <summary>The ControlNet strategy of one call, for the shared denoising loop.</summary>
    private protected ControlNetResiduals Residuals(IReadOnlyList<Tensor> images, double[] scales, double[] start, double[] end,
        bool guessMode, bool cfg) => _set.Residuals(images, scales, start, end, guessMode, cfg);

    /// <summary>Records the control images (the first net's) for tests.</summary>
    private protected void RecordControl(IReadOnlyList<Tensor> images) => Record("control_image", images[0]);
}
