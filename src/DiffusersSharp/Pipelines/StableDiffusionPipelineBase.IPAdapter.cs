using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

public abstract partial class StableDiffusionPipelineBase : IIPAdapterPipeline
{
    /// <summary>
    /// diffusers' <c>image_encoder</c>: the CLIP vision model of IP-Adapter (set by <see cref="LoadIPAdapter"/> when
    /// none is; the pipeline owns it and disposes it with the others).
    /// </summary>
    public CLIPVisionModelWithProjection? ImageEncoder { get; set; }

    /// <summary>
    /// diffusers' <c>feature_extractor</c> for IP-Adapter images. When none is set, <see cref="LoadIPAdapter"/> takes the
    /// image encoder folder's <c>preprocessor_config.json</c> when it has one, else transformers' defaults at the encoder's
    /// <c>image_size</c> (diffusers makes <c>CLIPImageProcessor()</c>, 224, the size of h94's encoders).
    /// </summary>
    public CLIPImageProcessor? FeatureExtractor { get; set; }

    /// <summary>
    /// diffusers' <c>load_ip_adapter(pretrained_model_name_or_path, subfolder, weight_name)</c>: the IP-Adapter file
    /// <paramref name="weightName"/> in <paramref name="subfolder"/> of a folder or Hub id (h94/IP-Adapter, "models",
    /// "ip-adapter_sd15.bin"; .bin or .safetensors) into the UNet (<see cref="UNet2DConditionModel.LoadIPAdapter"/>), and,
    /// when the pipeline has no <see cref="ImageEncoder"/>, the encoder of <c>{subfolder}/image_encoder</c> in the UNet's
    /// dtype and on its device. <paramref name="options"/>: a Hub id's revision, cache and Hub settings.
    /// </summary>
    public void LoadIPAdapter(string pathOrId, string? subfolder, string weightName, LoadOptions? options = null)
    {
        Require(LoaderMixins.IPAdapter, nameof(LoadIPAdapter), "load_ip_adapter");
        (ImageEncoder, FeatureExtractor) = IPAdapterSupport.Load(Unet, ImageEncoder, FeatureExtractor, pathOrId, subfolder, weightName, options);
    }

    /// <summary>diffusers' <c>set_ip_adapter_scale</c>.</summary>
    public void SetIPAdapterScale(double scale)
    {
        Require(LoaderMixins.IPAdapter, nameof(SetIPAdapterScale), "set_ip_adapter_scale");
        Unet.SetIPAdapterScale(scale);
    }

    /// <inheritdoc/>
    public IImageProjection? IPAdapterImageProjection => Unet.IPAdapterImageProjection;

    /// <summary>
    /// diffusers' <c>encode_image</c> and its use in <c>__call__</c>: the image through <see cref="FeatureExtractor"/> and
    /// <see cref="ImageEncoder"/>; the image embeds (zeros for the negative) or, for adapters that read hidden states, the
    /// penultimate hidden states (those of a zeros image for the negative); each repeated <paramref name="numImagesPerPrompt"/>
    /// times; with guidance [negative; positive]. Null without an image. Every pipeline with <c>ip_adapter_image</c> calls
    /// it the same way; <paramref name="embedsOnly"/>: the pipeline's diffusers 0.25.1 <c>encode_image</c> call passes no
    /// <c>output_hidden_states</c> (ControlNet img2img), so the image embeds go to every adapter, and one whose projection
    /// reads hidden states, which diffusers then fails on with a shape error, is refused here with a message.
    /// </summary>
    private protected Tensor? EncodeIPAdapterImage(ImageInput image, int numImagesPerPrompt, bool cfg, bool embedsOnly = false) =>
        IPAdapterSupport.Encode(ClassName, Unet, ImageEncoder, FeatureExtractor, image, numImagesPerPrompt, cfg, embedsOnly);
}
